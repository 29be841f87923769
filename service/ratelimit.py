"""Fixed-window rate limits on the endpoints that guess or spend passwords: counted in
Redis when REDIS_URL is set (shared by all workers), else in this worker's memory."""

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio
from fastapi import Request

from config import Settings
from service.errors import RateLimited
from service.metrics import RATE_LIMIT_REFUSALS

logger = logging.getLogger(__name__)

SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# Valid usernames are at most 50 characters; longer ones need no key of their own.
KEY_CHARS = 64


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    window: int

    @classmethod
    def parse(cls, name: str, text: str) -> "Limit":
        count, unit = text.split("/")
        return cls(name, int(count), SECONDS[unit])


class MemoryCounter:
    # Expired windows are swept once the table grows past this many keys.
    SWEEP_AT = 10_000

    def __init__(self) -> None:
        self.windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str, window: int) -> tuple[int, float]:
        """Counts a hit: (hits in the current window, seconds until it ends)."""
        now = time.monotonic()
        ends, hits = self.windows.get(key, (0.0, 0))
        if ends <= now:
            ends, hits = now + window, 0
            if len(self.windows) >= self.SWEEP_AT:
                self.windows = {k: v for k, v in self.windows.items() if v[0] > now}
        self.windows[key] = (ends, hits + 1)
        return hits + 1, ends - now


class RedisCounter:
    def __init__(self, url: str) -> None:
        self.client = redis.asyncio.from_url(url)

    async def hit(self, key: str, window: int) -> tuple[int, float]:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=window, nx=True).incr(key).pttl(key)
            _, hits, ttl_ms = await pipe.execute()
        return int(hits), max(ttl_ms, 0) / 1000


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.rate_limit_prefix
        self.login = Limit.parse("login", settings.rate_limit_login)
        self.register = Limit.parse("register", settings.rate_limit_register)
        self.refresh = Limit.parse("refresh", settings.rate_limit_refresh)
        self.password = Limit.parse("password", settings.rate_limit_password)
        self.memory = MemoryCounter()
        self.shared = RedisCounter(settings.redis_url) if settings.redis_url else None

    async def _hit(self, key: str, window: int) -> tuple[int, float]:
        if self.shared is not None:
            try:
                return await self.shared.hit(key, window)
            except redis.RedisError as error:
                # Still limited, per worker, rather than not at all.
                logger.warning("Rate limiting in memory, Redis is unavailable: %s", error)
        return self.memory.hit(key, window)

    async def check(self, limit: Limit, request: Request, username: str | None) -> None:
        """Counts one attempt by this address and for this username; RateLimited when either is over."""
        for kind, who in (("address", client_address(request)), ("username", username)):
            if who is None:
                continue
            hits, remaining = await self._hit(f"{self.prefix}:{limit.name}:{kind}:{who[:KEY_CHARS]}", limit.window)
            if hits > limit.count:
                RATE_LIMIT_REFUSALS.labels(limit.name).inc()
                raise RateLimited(limit.name, max(1, math.ceil(remaining)))

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.client.aclose()


def client_address(request: Request) -> str:
    """The TCP peer's address, or the client's as told by a trusted proxy (TRUSTED_PROXIES)."""
    return request.client.host if request.client else "unknown"
