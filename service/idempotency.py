"""Idempotency-Key: a creating POST retried with the same key and body gets the first
answer again (same status, same body) and creates nothing; the same key with another
body is a 409. Keys are kept per user for 24 hours."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Annotated, TypeVar

from fastapi import Header, Response
from pydantic import BaseModel
from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from database import Database
from models import IdempotencyKey
from service.errors import IdempotencyConflict

LIFETIME = timedelta(hours=24)
T = TypeVar("T")

KeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Send the same key when retrying a POST: the first answer is replayed, nothing is created twice.",
    ),
]

EXPIRED = delete(IdempotencyKey).where(
    IdempotencyKey.owner_id == bindparam("owner_id"), IdempotencyKey.created_at < bindparam("cutoff")
)
STORED = select(IdempotencyKey.fingerprint, IdempotencyKey.status_code, IdempotencyKey.response).where(
    IdempotencyKey.owner_id == bindparam("owner_id"), IdempotencyKey.key == bindparam("key")
)
ANSWER = (
    update(IdempotencyKey)
    .where(IdempotencyKey.owner_id == bindparam("owner"), IdempotencyKey.key == bindparam("claimed_key"))
    .values(status_code=bindparam("answer_status"), response=bindparam("answer"))
)
# Waits for a concurrent claim of the same key to commit (PostgreSQL) or is serialised
# behind it (SQLite), then does nothing: the retry replays what the first one stored.
CLAIM = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(IdempotencyKey)
    .on_conflict_do_nothing()
    .returning(IdempotencyKey.key)
    for dialect in (postgresql, sqlite)
}


@dataclass(frozen=True)
class Retryable:
    key: str
    fingerprint: str
    status_code: int


def retryable(key: str | None, operation: str, *body: str | bytes, status_code: int = 201) -> Retryable | None:
    """What identifies this request if it carries a key: the operation and its body."""
    if key is None:
        return None
    digest = sha256(operation.encode())
    for part in body:
        digest.update(b"\0" + (part.encode() if isinstance(part, str) else part))
    return Retryable(key, digest.hexdigest(), status_code)


def _once(
    conn: Connection,
    owner_id: int,
    request: Retryable,
    answer: Callable[[T], BaseModel],
    create: Callable[..., T],
    args: tuple,
) -> BaseModel | Response:
    """Runs `create` in this transaction, at most once per key; a replay is a Response."""
    now = datetime.now(UTC)
    ids = {"owner_id": owner_id, "key": request.key}
    conn.execute(EXPIRED, {"owner_id": owner_id, "cutoff": now - LIFETIME})
    claim = {**ids, "fingerprint": request.fingerprint, "status_code": 0, "response": "", "created_at": now}
    if conn.execute(CLAIM[conn.dialect.name], claim).first() is None:
        stored = conn.execute(STORED, ids).one()
        if stored.fingerprint != request.fingerprint:
            raise IdempotencyConflict()
        return Response(stored.response, stored.status_code, media_type="application/json")
    created = answer(create(conn, *args))
    kept = {"answer_status": request.status_code, "answer": created.model_dump_json()}
    conn.execute(ANSWER, {"owner": owner_id, "claimed_key": request.key, **kept})
    return created


async def write_once(
    db: Database,
    owner_id: int,
    request: Retryable | None,
    answer: Callable[[T], BaseModel],
    create: Callable[..., T],
    *args: object,
) -> BaseModel | Response:
    """`answer(create(conn, *args))` from one write transaction, kept under the request's
    key when it has one: a retry gets that answer again (a Response) and creates nothing."""
    if request is None:
        return answer(await db.write(create, *args))
    return await db.write(_once, owner_id, request, answer, create, args)
