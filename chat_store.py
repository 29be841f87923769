"""Chats and their messages: the SQL, and the functions that each run in one transaction
(see database.py). Every statement is scoped to the owner: another user's chat (or a
message in it) is ChatNotFound, exactly like one that does not exist. Functions return
rows; the routes shape them."""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping, bindparam, delete, insert, select, update

from models import Chat, Message
from service.errors import ChatNotFound, MessageNotFound
from service.rules import MAX_ID

# The tables, whose column names (`metadata`, not the models' `meta`) are the API's.
CHATS = Chat.__table__
MESSAGES = Message.__table__

CHAT_COLUMNS = tuple(
    CHATS.c[name] for name in ("id", "title", "pinned", "archived", "metadata", "created_at", "updated_at")
)
MESSAGE_COLUMNS = tuple(
    MESSAGES.c[name] for name in ("id", "chat_id", "role", "content", "name", "model", "metadata", "created_at")
)

# Built once: these run on every request, and building a statement costs more than running it.
OWNED_CHAT = select(*CHAT_COLUMNS).where(CHATS.c.id == bindparam("chat_id"), CHATS.c.owner_id == bindparam("owner_id"))
# Writes to one chat queue on its row lock (a no-op on SQLite, whose writers are serial
# anyway), so message ids and created_at times rise together.
LOCK_OWNED_CHAT = OWNED_CHAT.with_only_columns(CHATS.c.id).with_for_update()
MESSAGES_AFTER = (
    select(*MESSAGE_COLUMNS)
    .where(MESSAGES.c.chat_id == bindparam("chat_id"), MESSAGES.c.id > bindparam("after"))
    .order_by(MESSAGES.c.id)
    .limit(bindparam("limit"))
)
# A page between two ids (low excluded, high included), in either direction.
MESSAGES_BETWEEN = {
    ascending: select(*MESSAGE_COLUMNS)
    .where(
        MESSAGES.c.chat_id == bindparam("chat_id"),
        MESSAGES.c.id > bindparam("low"),
        MESSAGES.c.id <= bindparam("high"),
    )
    .order_by(MESSAGES.c.id.asc() if ascending else MESSAGES.c.id.desc())
    .limit(bindparam("limit"))
    for ascending in (True, False)
}
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
ADD_MESSAGES = insert(MESSAGES).returning(*MESSAGE_COLUMNS, sort_by_parameter_order=True)
TOUCH_CHAT = update(CHATS).where(CHATS.c.id == bindparam("chat_id")).values(updated_at=bindparam("now"))
DELETE_ALL_CHATS = delete(CHATS).where(CHATS.c.owner_id == bindparam("owner_id"))
DELETE_CHAT = delete(CHATS).where(CHATS.c.id == bindparam("chat_id"), CHATS.c.owner_id == bindparam("owner_id"))
# Not named after the columns: an UPDATE reserves those names for the values it sets.
MESSAGE_IN_CHAT = (MESSAGES.c.id == bindparam("the_message"), MESSAGES.c.chat_id == bindparam("the_chat"))
READ_MESSAGE = select(*MESSAGE_COLUMNS).where(*MESSAGE_IN_CHAT)
DELETE_MESSAGE = delete(MESSAGES).where(*MESSAGE_IN_CHAT)


def owned_chat(conn: Connection, owner_id: int, chat_id: int) -> RowMapping:
    chat = conn.execute(OWNED_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).mappings().one_or_none()
    if chat is None:
        raise ChatNotFound()
    return chat


def _lock_owned_chat(conn: Connection, owner_id: int, chat_id: int) -> datetime:
    """Locks the owner's chat for a change to its history; the time of that change."""
    if conn.execute(LOCK_OWNED_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).first() is None:
        raise ChatNotFound()
    now = datetime.now(UTC)
    conn.execute(TOUCH_CHAT, {"chat_id": chat_id, "now": now})
    return now


def _insert_messages(
    conn: Connection, owner_id: int, chat_id: int, messages: Iterable[dict[str, Any]], now: datetime
) -> Sequence[RowMapping]:
    owned = {"chat_id": chat_id, "owner_id": owner_id, "created_at": now}
    return conn.execute(ADD_MESSAGES, [{**message, **owned} for message in messages]).mappings().all()


def add_chat(
    conn: Connection, owner_id: int, title: str, metadata: dict[str, str], messages: Sequence[dict[str, Any]]
) -> RowMapping:
    """A new chat, with its first messages (dicts of the messages' columns) if any."""
    now = datetime.now(UTC)
    values = {"owner_id": owner_id, "title": title, "metadata": metadata, "created_at": now, "updated_at": now}
    created = conn.execute(ADD_CHAT, values).mappings().one()
    if messages:
        _insert_messages(conn, owner_id, created["id"], messages, now)
    return created


def add_messages(
    conn: Connection, owner_id: int, chat_id: int, messages: Sequence[dict[str, Any]]
) -> Sequence[RowMapping]:
    """Appends messages (dicts of their columns) to the owner's chat, in order."""
    return _insert_messages(conn, owner_id, chat_id, messages, _lock_owned_chat(conn, owner_id, chat_id))


def add_message(conn: Connection, owner_id: int, chat_id: int, message: dict[str, Any]) -> RowMapping:
    return add_messages(conn, owner_id, chat_id, [message])[0]


def listed_chats(conn: Connection, owner_id: int, skip: int, limit: int, archived: bool) -> Sequence[RowMapping]:
    return conn.execute(LISTED_CHATS[archived], {"owner_id": owner_id, "skip": skip, "limit": limit}).mappings().all()


def chats_after(conn: Connection, owner_id: int, after: int, limit: int) -> Sequence[RowMapping]:
    return conn.execute(CHATS_AFTER, {"owner_id": owner_id, "after": after, "limit": limit}).mappings().all()


def chat_with_first_messages(
    conn: Connection, owner_id: int, chat_id: int, limit: int
) -> tuple[RowMapping, Sequence[RowMapping]]:
    return owned_chat(conn, owner_id, chat_id), messages_after(conn, chat_id, 0, limit)


def messages_after(conn: Connection, chat_id: int, after: int, limit: int) -> Sequence[RowMapping]:
    return conn.execute(MESSAGES_AFTER, {"chat_id": chat_id, "after": after, "limit": limit}).mappings().all()


def message_page(
    conn: Connection,
    owner_id: int,
    chat_id: int,
    limit: int,
    after: int | None,
    before: int | None,
    order: Literal["asc", "desc"],
) -> Sequence[RowMapping]:
    """Up to limit + 1 of the chat's messages by id, OpenAI-style, in the order asked for:
    `after` and `before` are ids that bound the page in that order. With only `before`,
    the page is the one just before it (walking backwards)."""
    owned_chat(conn, owner_id, chat_id)
    ascending = order == "asc"
    lower, upper = (after, before) if ascending else (before, after)
    backwards = before is not None and after is None
    bounds = {"low": lower or 0, "high": upper - 1 if upper else MAX_ID}
    rows = conn.execute(MESSAGES_BETWEEN[ascending != backwards], {"chat_id": chat_id, **bounds, "limit": limit + 1})
    page = rows.mappings().all()
    if backwards:
        # The one extra row read tells whether more follow; it stays at the far end.
        return [*reversed(page[:limit]), *page[limit:]]
    return page


def update_chat(conn: Connection, owner_id: int, chat_id: int, changes: dict[str, Any]) -> RowMapping:
    """Sets the given columns (title, pinned, archived, metadata); none: the chat as it is."""
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


def update_message(
    conn: Connection, owner_id: int, chat_id: int, message_id: int, changes: dict[str, Any]
) -> RowMapping:
    """Sets the given columns (content, metadata) of a message; its chat counts as updated."""
    _lock_owned_chat(conn, owner_id, chat_id)
    ids = {"the_message": message_id, "the_chat": chat_id}
    query = update(MESSAGES).where(*MESSAGE_IN_CHAT).values(**changes).returning(*MESSAGE_COLUMNS)
    updated = conn.execute(query if changes else READ_MESSAGE, ids).mappings().one_or_none()
    if updated is None:
        raise MessageNotFound()
    return updated


def delete_message(conn: Connection, owner_id: int, chat_id: int, message_id: int) -> None:
    _lock_owned_chat(conn, owner_id, chat_id)
    if conn.execute(DELETE_MESSAGE, {"the_message": message_id, "the_chat": chat_id}).rowcount == 0:
        raise MessageNotFound()


def delete_chat(conn: Connection, owner_id: int, chat_id: int) -> None:
    if conn.execute(DELETE_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).rowcount == 0:
        raise ChatNotFound()


def delete_all_chats(conn: Connection, owner_id: int) -> int:
    return conn.execute(DELETE_ALL_CHATS, {"owner_id": owner_id}).rowcount
