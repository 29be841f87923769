"""The chat-history service: `python main.py` serves it, `uvicorn main:app` deploys it."""

import gc
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import api_router
from api_docs import ASSETS, ASSETS_URL, docs_pages, docs_router
from config import settings
from database import database, migrate
from openapi import install as install_openapi
from schemas import Welcome

# The chat client at /app: static files, no build step (see static/).
CLIENT = Path(__file__).resolve().parent / "static"
CLIENT_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# API answers are data, never documents to render: nothing may load or run in them.
API_POLICY = "default-src 'none'; frame-ancestors 'none'"


class BodySizeLimit:
    """Refuses a request body over its limit with 413 before it is read into memory: at
    once when Content-Length says so, else as soon as the streamed bytes pass it.
    `max_bytes` holds everywhere but on the paths given their own limit in `paths`."""

    def __init__(self, app: ASGIApp, max_bytes: int, paths: dict[str, int]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.paths.get(scope["path"], self.max_bytes)
        detail = f"Request body is larger than {limit} bytes"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            response = JSONResponse({"detail": detail}, status.HTTP_413_CONTENT_TOO_LARGE)
            return await response(scope, receive, send)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail)
            return message

        await self.app(scope, limited_receive, send)


class SecurityHeaders:
    """Adds security headers to every response: no MIME sniffing, no referrer, no framing,
    and a Content-Security-Policy chosen by the path's first segment (`/app/...` is "app"),
    `default_policy` for the rest. The header lists are built once; a request costs a
    dict lookup and one list."""

    def __init__(self, app: ASGIApp, default_policy: str, policies: dict[str, str]) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]

        def headers(policy: str) -> list[tuple[bytes, bytes]]:
            return [*common, (b"content-security-policy", policy.encode())]

        self.default_headers = headers(default_policy)
        self.headers = {segment: headers(policy) for segment, policy in policies.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = self.headers.get(scope["path"][1:].partition("/")[0], self.default_headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    if settings.migrate_on_start:
        await anyio.to_thread.run_sync(migrate)
    # Everything loaded so far lives as long as the process: keeping it out of the
    # collector's scans removes most of the pauses that would otherwise hit p99 latency.
    gc.freeze()
    yield
    await database.close()


app = FastAPI(
    title="Chat History API",
    version="1.0.0",
    description="Keep your conversations with language models: register, log in with "
    "OAuth2 and JWT, and store chats with their system, user and assistant messages.",
    lifespan=lifespan,
    docs_url=None,
    redoc_url=None,
)
app.add_middleware(
    BodySizeLimit, max_bytes=settings.max_body_bytes, paths={"/v1/chats/import": settings.max_import_bytes}
)
if settings.cors_origins:
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        max_age=600,
    )
DOCS_PAGES = docs_pages(app.title, app.openapi_url)
app.add_middleware(
    SecurityHeaders,
    default_policy=API_POLICY,
    policies={"app": CLIENT_POLICY, **{path.strip("/"): page.policy for path, page in DOCS_PAGES.items()}},
)
app.include_router(api_router)
app.include_router(docs_router(DOCS_PAGES))
app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
app.mount("/app", StaticFiles(directory=CLIENT, html=True), name="app")
install_openapi(app)


@app.exception_handler(RequestValidationError)
async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
    # FastAPI's default echoes every rejected input back, which can be a password, a
    # megabyte of content, or a lone surrogate that UTF-8 cannot encode (a 500). The
    # errors keep where and why; ASCII-escaped JSON can carry any key they name.
    errors = [{key: value for key, value in error.items() if key != "input"} for error in exc.errors()]
    body = json.dumps({"detail": errors}, default=str)
    return Response(body, status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


@app.get("/v1", response_model=Welcome, tags=["meta"])
async def welcome() -> Welcome:
    return Welcome(message="Welcome to the Chat History API. Documentation: /docs")


if __name__ == "__main__":
    # The asyncio loop, not uvloop: under saturation uvloop served some connections several
    # rounds late (p99 latency 4-6x the median in bench/); asyncio's is fair.
    uvicorn.run("main:app", host=settings.host, port=settings.port, reload=settings.reload, loop="asyncio")
