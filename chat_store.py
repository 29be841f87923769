"""Chats: the SQL, and the functions that each run in one transaction (see database.py).
Every statement is scoped to the owner: another user's chat is ChatNotFound, exactly
like one that does not exist. Functions return rows; the routes shape them. A chat's
messages are in message_store.py."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, delete, insert, select, update

from models import Chat
from service.errors import ChatNotFound

# The table, whose column names (`metadata`, not the model's `meta`) are the API's.
CHATS = Chat.__table__

CHAT_COLUMNS = tuple(
    CHATS.c[name]
    for name in ("id", "title", "pinned", "archived", "metadata", "current_message_id", "created_at", "updated_at")
)

# Built once: these run on every request, and building a statement costs more than running it.
OWNED = (CHATS.c.id == bindparam("chat_id"), CHATS.c.owner_id == bindparam("owner_id"))
OWNED_CHAT = select(*CHAT_COLUMNS).where(*OWNED)
CHAT_ORDER = (CHATS.c.pinned.desc(), CHATS.c.updated_at.desc(), CHATS.c.id.desc())
LISTED_CHATS = {
    include_archived: select(*CHAT_COLUMNS)
    .where(CHATS.c.owner_id == bindparam("owner_id"), *([] if include_archived else [CHATS.c.archived.is_(False)]))
    .order_by(*CHAT_ORDER)
    .limit(bindparam("limit"))
    .offset(bindparam("skip"))
    for include_archived in (False, True)
}
CHATS_AFTER = (
    select(*CHAT_COLUMNS)
    .where(CHATS.c.owner_id == bindparam("owner_id"), CHATS.c.id > bindparam("after"))
    .order_by(CHATS.c.id)
    .limit(bindparam("limit"))
)
ADD_CHAT = insert(CHATS).returning(*CHAT_COLUMNS)
DELETE_ALL_CHATS = delete(CHATS).where(CHATS.c.owner_id == bindparam("owner_id"))
DELETE_CHAT = delete(CHATS).where(*OWNED)


def owned_chat(conn: Connection, owner_id: int, chat_id: int) -> RowMapping:
    chat = conn.execute(OWNED_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).mappings().one_or_none()
    if chat is None:
        raise ChatNotFound()
    return chat


def add_chat(conn: Connection, owner_id: int, title: str, metadata: dict[str, str], now: datetime) -> RowMapping:
    values = {"owner_id": owner_id, "title": title, "metadata": metadata, "created_at": now, "updated_at": now}
    return conn.execute(ADD_CHAT, values).mappings().one()


def listed_chats(conn: Connection, owner_id: int, skip: int, limit: int, archived: bool) -> Sequence[RowMapping]:
    return conn.execute(LISTED_CHATS[archived], {"owner_id": owner_id, "skip": skip, "limit": limit}).mappings().all()


def chats_after(conn: Connection, owner_id: int, after: int, limit: int) -> Sequence[RowMapping]:
    return conn.execute(CHATS_AFTER, {"owner_id": owner_id, "after": after, "limit": limit}).mappings().all()


def update_chat(conn: Connection, owner_id: int, chat_id: int, changes: dict[str, Any]) -> RowMapping:
    """Sets the given columns (title, pinned, archived, metadata, current_message_id);
    none: the chat as it is."""
    if not changes:
        return owned_chat(conn, owner_id, chat_id)
    query = (
        update(CHATS)
        .where(CHATS.c.id == chat_id, CHATS.c.owner_id == owner_id)
        .values(**changes, updated_at=datetime.now(UTC))
        .returning(*CHAT_COLUMNS)
    )
    updated = conn.execute(query).mappings().one_or_none()
    if updated is None:
        raise ChatNotFound()
    return updated


def delete_chat(conn: Connection, owner_id: int, chat_id: int) -> None:
    if conn.execute(DELETE_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).rowcount == 0:
        raise ChatNotFound()


def delete_all_chats(conn: Connection, owner_id: int) -> int:
    return conn.execute(DELETE_ALL_CHATS, {"owner_id": owner_id}).rowcount
