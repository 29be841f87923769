"""Fixed-window rate limits on the endpoints that guess or spend passwords: counted in
Redis when REDIS_URL is set (shared by all workers), else in this worker's memory."""

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio
from fastapi import HTTPException, Request, status

from config import settings

logger = logging.getLogger(__name__)

SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Limit:
    name: str
    count: int
    window: int

    @classmethod
    def parse(cls, name: str, text: str) -> "Limit":
        count, unit = text.split("/")
        return cls(name, int(count), SECONDS[unit])


LOGIN = Limit.parse("login", settings.rate_limit_login)
REGISTER = Limit.parse("register", settings.rate_limit_register)
REFRESH = Limit.parse("refresh", settings.rate_limit_refresh)
PASSWORD = Limit.parse("password", settings.rate_limit_password)


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


memory = MemoryCounter()
shared = RedisCounter(settings.redis_url) if settings.redis_url else None


async def _hit(key: str, window: int) -> tuple[int, float]:
    if shared is not None:
        try:
            return await shared.hit(key, window)
        except redis.RedisError as error:
            # Still limited, per worker, rather than not at all.
            logger.warning("Rate limiting in memory, Redis is unavailable: %s", error)
    return memory.hit(key, window)


def client_address(request: Request) -> str:
    """The peer's address (behind a proxy, uvicorn's --proxy-headers makes it the client's)."""
    return request.client.host if request.client else "unknown"


async def check(limit: Limit, request: Request, username: str | None) -> None:
    """Counts one attempt by this address and for this username; 429 when either is over."""
    for kind, who in (("address", client_address(request)), ("username", username)):
        if who is None:
            continue
        # Valid usernames are at most 50 characters; longer ones need no key of their own.
        key = f"{settings.rate_limit_prefix}:{limit.name}:{kind}:{who[:64]}"
        hits, remaining = await _hit(key, limit.window)
        if hits > limit.count:
            retry_after = max(1, math.ceil(remaining))
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"Too many {limit.name} attempts; try again in {retry_after} seconds",
                headers={"Retry-After": str(retry_after)},
            )
