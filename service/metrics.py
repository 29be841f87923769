"""The service's Prometheus metrics, and GET /metrics that reads them.

They are served only when METRICS_TOKEN is set, and requests are timed (RequestMetrics)
only then; the other counters cost less than a microsecond each and are recorded always.
Under `uvicorn --workers`, PROMETHEUS_MULTIPROC_DIR in the environment names an empty
directory where every worker writes its values, so that any worker's /metrics reads the
sum of them all.
"""

import hmac
import os
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

KiB = 1024
REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "http_requests_total",
    "Requests answered, by route template, method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
IN_PROGRESS = Gauge(
    "http_requests_in_progress", "Requests being answered now", multiprocess_mode="livesum", registry=REGISTRY
)
TRANSACTION_SECONDS = Histogram(
    "db_transaction_seconds",
    "Time a read or write transaction took, from asking for a connection to its end",
    ["kind"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
    registry=REGISTRY,
)
POOL_WAIT_SECONDS = Histogram(
    "db_pool_wait_seconds",
    "Time a transaction queued for one of the worker's DB_POOL_SIZE connections (PostgreSQL)",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
    registry=REGISTRY,
)
IMPORT_BYTES = Histogram(
    "chat_import_bytes",
    "Size of each imported export as uploaded",
    buckets=tuple(KiB * 4**power for power in range(11)),  # 1 KiB to 1 GiB
    registry=REGISTRY,
)
IMPORT_MESSAGES = Histogram(
    "chat_import_messages",
    "Messages stored by each import",
    buckets=(10, 100, 1_000, 10_000, 100_000, 1_000_000),
    registry=REGISTRY,
)
RATE_LIMIT_REFUSALS = Counter(
    "rate_limit_refusals_total", "Requests refused with 429, by limit", ["limit"], registry=REGISTRY
)
LOGIN_FAILURES = Counter("login_failures_total", "Logins refused for a wrong username or password", registry=REGISTRY)


def metrics_router(token: str, multiprocess: bool) -> APIRouter:
    """GET /metrics in Prometheus' text format, for requests bearing `token`."""
    expected = f"Bearer {token}".encode()
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics(authorization: Annotated[str, Header()] = "") -> Response:
        if not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "Send the METRICS_TOKEN as a Bearer token", {"WWW-Authenticate": "Bearer"}
            )
        registry = REGISTRY
        if multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def forget_this_process(multiprocess: bool) -> None:
    """At a worker's exit: its requests in progress no longer count."""
    if multiprocess:
        mark_process_dead(os.getpid())
