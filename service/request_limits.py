"""Bounds what one request may send before any work is done for it: its head (431), its
body (413, before it is read into memory), and the message content schemas validate."""

from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.rules import content_limit


@dataclass(slots=True)
class RequestLimits:
    """`max_body_bytes` holds everywhere but on the paths given their own limit in `paths`."""

    app: ASGIApp
    max_head_bytes: int
    max_body_bytes: int
    max_content_bytes: int
    paths: dict[str, int]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        head = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
        head += sum(len(name) + len(value) for name, value in scope["headers"])
        if head > self.max_head_bytes:
            detail = f"Request line and headers are larger than {self.max_head_bytes} bytes"
            return await JSONResponse({"detail": detail}, 431)(scope, receive, send)
        limit = self.paths.get(scope["path"], self.max_body_bytes)
        detail = f"Request body is larger than {limit} bytes"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await JSONResponse({"detail": detail}, 413)(scope, receive, send)
        content_limit.set(self.max_content_bytes)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # An HTTP error, not a domain one: FastAPI turns any other error raised
                # while it reads a body into a 400.
                raise HTTPException(413, detail)
            return message

        await self.app(scope, limited_receive, send)
