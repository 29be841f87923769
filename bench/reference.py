"""The bench's floor for SQLite: a bare FastAPI app that does what the service does to append
a message and to read a chat, and nothing else: the same JWT check (python-jose, HS256,
the signature checked once per token, the user and token generation read per request), the
owner check, and stdlib sqlite3 on the service's own database file.

    REFERENCE_DATABASE=bench.db SECRET_KEY=... PORT=8001 python bench/reference.py

bench/run.py --reference starts it beside the service and drives both with the same load.
"""

import json
import os
import sqlite3
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request, Response
from jose import JWTError, jwt

ROLES = ("system", "user", "assistant")
HISTORY_PAGE = 1000

db = sqlite3.connect(os.environ["REFERENCE_DATABASE"], isolation_level=None, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL")
db.execute(f"PRAGMA synchronous={os.environ.get('SQLITE_SYNCHRONOUS', 'FULL')}")
db.execute("PRAGMA busy_timeout=10000")
db.execute("PRAGMA foreign_keys=ON")
SECRET_KEY = os.environ["SECRET_KEY"]

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
UNAUTHORIZED = HTTPException(401, "Could not validate credentials", {"WWW-Authenticate": "Bearer"})


@lru_cache(maxsize=4096)
def claims(token: str) -> tuple[int, int, float] | None:
    try:
        decoded = jwt.decode(token, SECRET_KEY, algorithms=["HS256"])
    except JWTError:
        return None
    return decoded["uid"], decoded["gen"], decoded["exp"]


def current_user(authorization: str) -> int:
    scheme, _, token = authorization.partition(" ")
    found = claims(token) if scheme == "Bearer" else None
    if found is None or time.time() >= found[2]:
        raise UNAUTHORIZED
    user_id, generation, _ = found
    current = db.execute("SELECT 1 FROM users WHERE id = ? AND token_generation = ?", (user_id, generation))
    if current.fetchone() is None:
        raise UNAUTHORIZED
    return user_id


def found(row: tuple | None) -> tuple:
    """The row of a chat of the user's; 404 when there is none."""
    if row is None:
        raise HTTPException(404, "Chat not found")
    return row


def iso(stored: str) -> str:
    return stored.replace(" ", "T") + "Z"


@app.post("/v1/chats/{chat_id}/message", status_code=201)
async def append(chat_id: int, request: Request, authorization: Annotated[str, Header()] = "") -> Response:
    user_id = current_user(authorization)
    body = json.loads(await request.body())
    role, content = body.get("role"), body.get("content")
    if role not in ROLES or not isinstance(content, str):
        raise HTTPException(422, "role and content are required")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    db.execute("BEGIN IMMEDIATE")
    try:
        touched = "UPDATE chats SET updated_at = ? WHERE id = ? AND owner_id = ? RETURNING id"
        found(db.execute(touched, (now, chat_id, user_id)).fetchone())
        message_id = db.execute(
            "INSERT INTO messages (chat_id, owner_id, role, content, metadata, created_at) "
            "VALUES (?, ?, ?, ?, '{}', ?) RETURNING id",
            (chat_id, user_id, role, content, now),
        ).fetchone()[0]
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    message = {
        "id": message_id,
        "chat_id": chat_id,
        "role": role,
        "content": content,
        "name": None,
        "model": None,
        "metadata": {},
        "created_at": iso(now),
    }
    return Response(json.dumps(message), 201, media_type="application/json")


@app.get("/v1/chats/{chat_id}")
async def read_chat(chat_id: int, authorization: Annotated[str, Header()] = "") -> Response:
    user_id = current_user(authorization)
    columns = "id, title, pinned, archived, metadata, created_at, updated_at"
    chat = found(
        db.execute(f"SELECT {columns} FROM chats WHERE id = ? AND owner_id = ?", (chat_id, user_id)).fetchone()
    )
    rows = db.execute(
        "SELECT id, chat_id, role, content, name, model, metadata, created_at FROM messages "
        "WHERE chat_id = ? ORDER BY id LIMIT ?",
        (chat_id, HISTORY_PAGE),
    ).fetchall()
    keys = ("id", "chat_id", "role", "content", "name", "model", "metadata", "created_at")
    messages = [dict(zip(keys, (*row[:6], json.loads(row[6]), iso(row[7])), strict=True)) for row in rows]
    body = {
        "id": chat[0],
        "title": chat[1],
        "pinned": bool(chat[2]),
        "archived": bool(chat[3]),
        "metadata": json.loads(chat[4]),
        "created_at": iso(chat[5]),
        "updated_at": iso(chat[6]),
        "messages": messages,
    }
    return Response(json.dumps(body), media_type="application/json")


if __name__ == "__main__":
    # The service's single-worker choice (main.py): uvicorn on the asyncio loop.
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), loop="asyncio")
