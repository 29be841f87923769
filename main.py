"""The chat-history service: `python main.py` serves it, `uvicorn main:app` deploys it.
`create_app(settings)` builds it, so a test can build one with other settings."""

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import anyio.to_thread
import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import chat_store
from api import api_router
from config import Settings
from database import Database
from schemas import Welcome
from security import PasswordHasher, TokenSigner
from service import errors, openapi
from service.api_docs import ASSETS, ASSETS_URL, docs_pages, docs_router
from service.asgi import RouteTemplates
from service.health import health_router
from service.metrics import forget_this_process, metrics_router
from service.ratelimit import RateLimiter
from service.request_limits import RequestLimits
from service.request_log import RequestLog
from service.request_metrics import RequestMetrics
from service.security_headers import SecurityHeaders

# The chat client at /app: static files, no build step (see static/).
CLIENT = Path(__file__).resolve().parent / "static"
CLIENT_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# API answers are data, never documents to render: nothing may load or run in them.
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
IMPORT_PATH = "/v1/chats/import"
# Exports read at once per worker (each holds at most one conversation while it reads);
# further imports wait their turn.
IMPORTS_AT_ONCE = 2
# How often each worker deletes the chats whose time in the trash is up (and prunes the
# sync log): a few hours late at most, no cron job needed.
PURGE_SECONDS = 3600

logger = logging.getLogger(__name__)


async def purge(app: FastAPI) -> int:
    """Deletes the chats in the trash for longer than TRASH_DAYS; how many."""
    return await app.state.database.write(chat_store.purge_expired, app.state.settings.trash_days)


async def purge_forever(app: FastAPI) -> None:
    while True:
        try:
            await purge(app)
        except Exception:
            logger.exception("Purging the trash failed; trying again later")
        await asyncio.sleep(PURGE_SECONDS)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    settings.signing_key  # noqa: B018 - refuses to start without a key every node shares
    if settings.migrate_on_start:
        await anyio.to_thread.run_sync(app.state.database.migrate)
    # Everything loaded so far lives as long as the process: keeping it out of the
    # collector's scans removes most of the pauses that would otherwise hit p99 latency.
    gc.freeze()
    purger = asyncio.create_task(purge_forever(app))
    yield
    # uvicorn has finished the requests in flight (SIGTERM) before this runs.
    purger.cancel()
    with suppress(asyncio.CancelledError):
        await purger
    await app.state.database.close()
    await app.state.limiter.close()
    app.state.hasher.close()
    forget_this_process(bool(settings.prometheus_multiproc_dir))


async def welcome() -> Welcome:
    return Welcome(message="Welcome to the Chat History API. Documentation: /docs")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Chat History API",
        version="1.0.0",
        description="Keep your conversations with language models: register, log in with "
        "OAuth2 and JWT, and store chats with their system, user and assistant messages.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # The docs' sections in reading order, whatever order the routes are matched in.
        openapi_tags=[{"name": name} for name in ("meta", "auth", "chats")],
    )
    app.state.settings = settings
    app.state.database = Database(settings)
    app.state.hasher = PasswordHasher(settings)
    app.state.signer = TokenSigner(settings)
    app.state.limiter = RateLimiter(settings)
    app.state.import_slots = anyio.CapacityLimiter(IMPORTS_AT_ONCE)

    app.add_middleware(
        RequestLimits,
        max_head_bytes=settings.max_head_bytes,
        max_body_bytes=settings.max_body_bytes,
        max_content_bytes=settings.max_content_bytes,
        paths={IMPORT_PATH: settings.max_import_bytes},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            max_age=600,
        )
    pages = docs_pages(app.title, app.openapi_url)
    app.add_middleware(
        SecurityHeaders,
        default_policy=API_POLICY,
        policies={"app": CLIENT_POLICY, **{path.strip("/"): page.policy for path, page in pages.items()}},
    )
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    route_templates = RouteTemplates(app.routes)
    if settings.metrics_token:
        app.add_middleware(RequestMetrics, route_template=route_templates)
    # Outermost: every response carries its request id, even an error answered further out.
    app.add_middleware(
        RequestLog, route_template=route_templates, log=sys.stdout if settings.log_format == "json" else None
    )

    app.add_api_route("/v1", welcome, response_model=Welcome, tags=["meta"])
    # Matched in order: the API before the probes, the metrics and the pages (see api.py).
    app.include_router(api_router)
    limiter: RateLimiter = app.state.limiter
    app.include_router(health_router(app.state.database, limiter.shared.client if limiter.shared else None))
    if settings.metrics_token:
        app.include_router(metrics_router(settings.metrics_token, bool(settings.prometheus_multiproc_dir)))
    app.include_router(docs_router(pages))
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    app.mount("/app", StaticFiles(directory=CLIENT, html=True), name="app")
    errors.install(app)
    openapi.install(app)
    return app


app = create_app()

if __name__ == "__main__":
    settings: Settings = app.state.settings
    # The asyncio loop, not uvloop: under saturation uvloop served some connections several
    # rounds late (p99 latency several times the median in bench/); asyncio's is fair.
    # Proxy headers are the app's to believe (TRUSTED_PROXIES), not uvicorn's: by default
    # uvicorn trusts X-Forwarded-For from any local process.
    uvicorn.run(
        "main:app",
        host=settings.host,
        port=settings.port,
        reload=settings.reload,
        loop="asyncio",
        proxy_headers=False,
        # With LOG_FORMAT=json the app writes each request's line; uvicorn's own would
        # repeat it as text, with the path and query, which may carry what must not be logged.
        access_log=settings.log_format != "json",
    )
