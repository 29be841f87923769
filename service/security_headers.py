"""Security headers on every response: no MIME sniffing, no referrer, no framing, a
Content-Security-Policy chosen by the path's first segment (`/app/...` is "app"), and
`Cache-Control: no-store` on the API's answers, which carry tokens and users' data."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SecurityHeaders:
    """`default_policy` covers the API (every path not named in `policies`). The header
    lists are built once; a request costs a dict lookup and one list."""

    def __init__(self, app: ASGIApp, default_policy: str, policies: dict[str, str]) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]

        def headers(policy: str) -> list[tuple[bytes, bytes]]:
            return [*common, (b"content-security-policy", policy.encode())]

        self.default_headers = [*headers(default_policy), (b"cache-control", b"no-store")]
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
