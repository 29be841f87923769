"""GET /healthz (the process answers) and GET /readyz (and so do the database and, when the
service uses it, Redis), for load balancers and orchestrators: no token, no rate limit."""

import logging
from collections.abc import Awaitable

import anyio
from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from sqlalchemy import Connection

from database import Database

logger = logging.getLogger(__name__)

# A dependency slower than this to answer counts as down: a balancer's check gives up soon.
CHECK_SECONDS = 2.0


def _select_one(connection: Connection) -> None:
    connection.exec_driver_sql("SELECT 1").scalar_one()


def health_router(db: Database, redis: Redis | None) -> APIRouter:
    """`redis`: the client the service itself uses, if any."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = {"database": await _check("database", db.read(_select_one))}
        if redis is not None:
            checks["redis"] = await _check("redis", redis.ping())
        failed = [name for name, result in checks.items() if result != "ok"]
        if failed:
            detail = f"Not ready: {', '.join(failed)} unavailable"
            return JSONResponse({"detail": detail, "checks": checks}, status.HTTP_503_SERVICE_UNAVAILABLE)
        return JSONResponse({"status": "ready", "checks": checks})

    return router


async def _check(name: str, answer: Awaitable[object]) -> str:
    """ "ok", or what kind of failure (its message, which may name hosts, goes to the log only)."""
    try:
        with anyio.fail_after(CHECK_SECONDS):
            await answer
    except Exception as error:
        logger.warning("Readiness: %s unavailable: %r", name, error)
        return "timed out" if isinstance(error, TimeoutError) else f"failed ({type(error).__name__})"
    return "ok"
