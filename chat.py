"""Chats and their messages. Every query is scoped to the current user: another user's
chat answers 404, exactly like a chat that does not exist."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from annotated_types import Ge, Le
from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from auth import CurrentUser
from database import Database, DatabaseDep
from models import Chat, Message
from schemas import (
    MAX_ID,
    ChatCreate,
    ChatPublic,
    ChatWithMessages,
    Deleted,
    MessageCreate,
    MessagePublic,
)

router = APIRouter()

# A history longer than this is streamed, this many messages per query.
HISTORY_PAGE = 1000
MESSAGE_LIST = TypeAdapter(list[MessagePublic])

NOT_FOUND = {404: {"description": "Chat not found (or not yours)"}}
# Path or query, whichever URL the request used (see create_message).
AnyChatId = Annotated[int, Ge(1), Le(MAX_ID)]
ChatId = Annotated[int, Path(ge=1, le=MAX_ID)]

CHAT_COLUMNS = (Chat.id, Chat.title, Chat.created_at, Chat.updated_at)
MESSAGE_COLUMNS = (Message.id, Message.chat_id, Message.role, Message.content, Message.created_at)

# Built once: these run on every request, and building a statement costs more than running it.
OWNED_CHAT = select(*CHAT_COLUMNS).where(Chat.id == bindparam("chat_id"), Chat.owner_id == bindparam("owner_id"))
# Appends to one chat queue on this row lock (a no-op on SQLite, whose writers are serial
# anyway), so message ids and created_at times rise together.
LOCK_OWNED_CHAT = OWNED_CHAT.with_only_columns(Chat.id).with_for_update()
MESSAGES_AFTER = (
    select(*MESSAGE_COLUMNS)
    .where(Message.chat_id == bindparam("chat_id"), Message.id > bindparam("after"))
    .order_by(Message.id)
    .limit(bindparam("limit"))
)
RECENT_CHATS = (
    select(*CHAT_COLUMNS)
    .where(Chat.owner_id == bindparam("owner_id"))
    .order_by(Chat.updated_at.desc(), Chat.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("skip"))
)
ADD_MESSAGE = insert(Message).returning(*MESSAGE_COLUMNS)
TOUCH_CHAT = update(Chat).where(Chat.id == bindparam("chat_id")).values(updated_at=bindparam("now"))
DELETE_CHAT = delete(Chat).where(Chat.id == bindparam("chat_id"), Chat.owner_id == bindparam("owner_id"))


def add_chat(db: Connection, owner_id: int, chat: ChatCreate) -> ChatPublic:
    now = datetime.now(UTC)
    row = db.execute(
        insert(Chat)
        .values(owner_id=owner_id, title=chat.title, created_at=now, updated_at=now)
        .returning(*CHAT_COLUMNS)
    ).one()
    return ChatPublic.model_validate(row)


def recent_chats(db: Connection, owner_id: int, skip: int, limit: int) -> list[ChatPublic]:
    rows = db.execute(RECENT_CHATS, {"owner_id": owner_id, "skip": skip, "limit": limit}).mappings()
    return [ChatPublic.model_validate(row) for row in rows]


def owned_chat_with_messages(
    db: Connection, owner_id: int, chat_id: int, limit: int
) -> tuple[ChatPublic, list[MessagePublic]] | None:
    """The chat and its first `limit` messages, if the chat is the owner's."""
    chat = db.execute(OWNED_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).mappings().one_or_none()
    if chat is None:
        return None
    return ChatPublic.model_validate(chat), messages_after(db, chat_id, 0, limit)


def messages_after(db: Connection, chat_id: int, after: int, limit: int) -> list[MessagePublic]:
    rows = db.execute(MESSAGES_AFTER, {"chat_id": chat_id, "after": after, "limit": limit}).mappings().all()
    return MESSAGE_LIST.validate_python(rows)


def add_message(db: Connection, owner_id: int, chat_id: int, message: MessageCreate) -> MessagePublic | None:
    if db.execute(LOCK_OWNED_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).first() is None:
        return None
    now = datetime.now(UTC)
    row = (
        db.execute(
            ADD_MESSAGE, {"chat_id": chat_id, "role": message.role, "content": message.content, "created_at": now}
        )
        .mappings()
        .one()
    )
    db.execute(TOUCH_CHAT, {"chat_id": chat_id, "now": now})
    return MessagePublic.model_validate(row)


def delete_chat(db: Connection, owner_id: int, chat_id: int) -> bool:
    return db.execute(DELETE_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).rowcount > 0


async def stream_history(db: Database, chat: ChatPublic, first_page: list[MessagePublic]) -> AsyncIterator[bytes]:
    """The body of ChatWithMessages, written a page of messages at a time, so a long
    history never sits in memory whole (as rows, models and JSON at once)."""
    yield chat.model_dump_json().encode()[:-1] + b',"messages":['
    page = first_page
    while page:
        yield MESSAGE_LIST.dump_json(page)[1:-1]
        page = await db.read(messages_after, chat.id, page[-1].id, HISTORY_PAGE)
        if page:
            yield b","
    yield b"]}"


def chat_not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "Chat not found")


@router.post("/", status_code=status.HTTP_201_CREATED, response_model=ChatPublic)
async def create_chat(chat: ChatCreate, user: CurrentUser, db: DatabaseDep) -> ChatPublic:
    return await db.write(add_chat, user.id, chat)


@router.get("/", response_model=list[ChatPublic])
async def list_chats(
    user: CurrentUser,
    db: DatabaseDep,
    skip: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[ChatPublic]:
    return await db.read(recent_chats, user.id, skip, limit)


# The seed documents both URLs (its workflow the path form, its curl example the query
# form); one handler serves both, reading chat_id from wherever the URL put it.
@router.post("/message", status_code=status.HTTP_201_CREATED, response_model=MessagePublic, responses=NOT_FOUND)
@router.post(
    "/{chat_id}/message", status_code=status.HTTP_201_CREATED, response_model=MessagePublic, responses=NOT_FOUND
)
async def create_message(
    chat_id: AnyChatId, message: MessageCreate, user: CurrentUser, db: DatabaseDep
) -> MessagePublic:
    created = await db.write(add_message, user.id, chat_id, message)
    if created is None:
        raise chat_not_found()
    return created


@router.get("/{chat_id}", response_model=ChatWithMessages, responses=NOT_FOUND)
async def read_chat(chat_id: ChatId, user: CurrentUser, db: DatabaseDep) -> ChatWithMessages | StreamingResponse:
    found = await db.read(owned_chat_with_messages, user.id, chat_id, HISTORY_PAGE + 1)
    if found is None:
        raise chat_not_found()
    chat, messages = found
    if len(messages) <= HISTORY_PAGE:
        return ChatWithMessages(**chat.__dict__, messages=messages)
    return StreamingResponse(stream_history(db, chat, messages[:HISTORY_PAGE]), media_type="application/json")


@router.delete("/{chat_id}", response_model=Deleted, responses=NOT_FOUND)
async def remove_chat(chat_id: ChatId, user: CurrentUser, db: DatabaseDep) -> Deleted:
    if not await db.write(delete_chat, user.id, chat_id):
        raise chat_not_found()
    return Deleted()
