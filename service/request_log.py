"""Gives every request an id, echoed in X-Request-ID on its response, and writes one JSON
line per request when asked to: what was asked, of which route, by whom, with what result."""

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.asgi import RouteTemplates, request_method
from service.errors import UNEXPECTED_BODY, UNEXPECTED_HEADERS

HEADER = b"x-request-id"
# A client's own id is kept when it is this safe to log and to echo; any other is replaced.
WELL_FORMED = re.compile(rb"[A-Za-z0-9._-]{1,128}")


class RequestLog:
    """`log`: where the JSON lines go (None: nowhere). A line holds the time the request
    arrived, its id, method, route template, status, duration in ms and the user id once
    the current-user dependency knows it (`request.state.user_id`); never a path, query,
    header or body, which can hold tokens, passwords or content."""

    def __init__(self, app: ASGIApp, route_template: RouteTemplates, log: TextIO | None) -> None:
        self.app = app
        self.route_template = route_template
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = next((value for name, value in scope["headers"] if name == HEADER), b"")
        if not WELL_FORMED.fullmatch(request_id):
            request_id = uuid.uuid4().hex.encode()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id.decode()
        status = 0
        arrived, started = time.time(), time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Starlette's own answer to an exception would go out past this middleware,
            # without the id: answer here, and let the exception on to be logged.
            if not status:
                status = 500
                headers = [*UNEXPECTED_HEADERS, (b"content-type", b"application/json"), (HEADER, request_id)]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": UNEXPECTED_BODY})
            raise
        finally:
            if self.log is not None:
                line = {
                    "time": datetime.fromtimestamp(arrived, UTC).isoformat(timespec="milliseconds"),
                    "request_id": state["request_id"],
                    "method": request_method(scope),
                    "route": self.route_template(scope),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user_id": state.get("user_id"),
                }
                self.log.write(json.dumps(line) + "\n")
                self.log.flush()
