"""Counts and times every request for /metrics: by route template, method and status."""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.asgi import RouteTemplates, request_method
from service.metrics import IN_PROGRESS, REQUEST_SECONDS, REQUESTS


class RequestMetrics:
    def __init__(self, app: ASGIApp, route_template: RouteTemplates) -> None:
        self.app = app
        self.route_template = route_template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        counted = False

        async def send_counting(message: Message) -> None:
            nonlocal counted
            if message["type"] == "http.response.start":
                # Counted before the client can see the answer, so a scrape that follows it
                # finds it counted.
                REQUESTS.labels(self.route_template(scope), request_method(scope), str(message["status"])).inc()
                counted = True
            await send(message)

        started = time.perf_counter()
        IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_counting)
        finally:
            IN_PROGRESS.dec()
            route, method = self.route_template(scope), request_method(scope)
            if not counted:  # an exception, answered with 500 further out
                REQUESTS.labels(route, method, "500").inc()
            REQUEST_SECONDS.labels(route, method).observe(time.perf_counter() - started)
