"""Chats and their messages. Every query is scoped to the current user: another user's
chat (or a message in it) answers 404, exactly like one that does not exist.

The functions that take a `Connection` run inside one transaction (see database.py);
they raise the 404 themselves, so that the transaction rolls back."""

import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from hashlib import sha256
from typing import Annotated, BinaryIO, Literal, TypeVar

import anyio
import anyio.to_thread
from annotated_types import Ge, Le
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter
from sqlalchemy import Connection, bindparam, delete, insert, select, update
from starlette.datastructures import UploadFile

import examples
from auth import CurrentUser
from chatgpt import ExportFormatError, ImportedConversation, ImportTooLarge, read_export
from config import MiB, settings
from database import Database, DatabaseDep
from idempotency import KeyHeader, create_once, retryable
from models import Chat, Message
from schemas import (
    MAX_ID,
    ChatCreate,
    ChatPublic,
    ChatUpdate,
    ChatWithMessages,
    Deleted,
    DeletedChats,
    ImportResult,
    MessageBatch,
    MessageCreate,
    MessageList,
    MessagePage,
    MessagePublic,
    MessageUpdate,
    OpenAIExport,
    SearchPage,
)
from search import parse, parse_cursor, search

router = APIRouter()
T = TypeVar("T")

# A history longer than this is streamed, this many messages per query.
HISTORY_PAGE = 1000
MESSAGE_LIST = TypeAdapter(list[MessagePublic])

NOT_FOUND = {404: {"description": "Chat (or message) not found, or not yours"}}
RETRY_CONFLICT = {409: {"description": "Idempotency-Key already used with a different request"}}
# Path or query, whichever URL the request used (see create_message).
AnyChatId = Annotated[int, Ge(1), Le(MAX_ID)]
ChatId = Annotated[int, Path(ge=1, le=MAX_ID)]
MessageId = Annotated[int, Path(ge=1, le=MAX_ID)]
Cursor = Annotated[int | None, Query(ge=1, le=MAX_ID)]

CHAT_COLUMNS = (
    Chat.id,
    Chat.title,
    Chat.pinned,
    Chat.archived,
    Chat.meta.label("metadata"),
    Chat.created_at,
    Chat.updated_at,
)
MESSAGE_COLUMNS = (
    Message.id,
    Message.chat_id,
    Message.role,
    Message.content,
    Message.name,
    Message.model,
    Message.meta.label("metadata"),
    Message.created_at,
)

# Built once: these run on every request, and building a statement costs more than running it.
OWNED_CHAT = select(*CHAT_COLUMNS).where(Chat.id == bindparam("chat_id"), Chat.owner_id == bindparam("owner_id"))
# Writes to one chat queue on its row lock (a no-op on SQLite, whose writers are serial
# anyway), so message ids and created_at times rise together.
LOCK_OWNED_CHAT = OWNED_CHAT.with_only_columns(Chat.id).with_for_update()
MESSAGES_AFTER = (
    select(*MESSAGE_COLUMNS)
    .where(Message.chat_id == bindparam("chat_id"), Message.id > bindparam("after"))
    .order_by(Message.id)
    .limit(bindparam("limit"))
)
# A page between two ids (low excluded, high included), in either direction.
MESSAGES_BETWEEN = {
    ascending: select(*MESSAGE_COLUMNS)
    .where(Message.chat_id == bindparam("chat_id"), Message.id > bindparam("low"), Message.id <= bindparam("high"))
    .order_by(Message.id.asc() if ascending else Message.id.desc())
    .limit(bindparam("limit"))
    for ascending in (True, False)
}
CHAT_ORDER = (Chat.pinned.desc(), Chat.updated_at.desc(), Chat.id.desc())
LISTED_CHATS = {
    include_archived: select(*CHAT_COLUMNS)
    .where(Chat.owner_id == bindparam("owner_id"), *([] if include_archived else [Chat.archived.is_(False)]))
    .order_by(*CHAT_ORDER)
    .limit(bindparam("limit"))
    .offset(bindparam("skip"))
    for include_archived in (False, True)
}
CHATS_AFTER = (
    select(*CHAT_COLUMNS)
    .where(Chat.owner_id == bindparam("owner_id"), Chat.id > bindparam("after"))
    .order_by(Chat.id)
    .limit(bindparam("limit"))
)
ADD_MESSAGES = insert(Message).returning(*MESSAGE_COLUMNS, sort_by_parameter_order=True)
TOUCH_CHAT = update(Chat).where(Chat.id == bindparam("chat_id")).values(updated_at=bindparam("now"))
DELETE_ALL_CHATS = delete(Chat).where(Chat.owner_id == bindparam("owner_id"))
DELETE_CHAT = delete(Chat).where(Chat.id == bindparam("chat_id"), Chat.owner_id == bindparam("owner_id"))
DELETE_MESSAGE = delete(Message).where(Message.id == bindparam("message_id"), Message.chat_id == bindparam("chat_id"))


def chat_not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "Chat not found")


def owned_chat(db: Connection, owner_id: int, chat_id: int) -> ChatPublic:
    chat = db.execute(OWNED_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).mappings().one_or_none()
    if chat is None:
        raise chat_not_found()
    return ChatPublic.model_validate(chat)


def lock_owned_chat(db: Connection, owner_id: int, chat_id: int) -> datetime:
    """Locks the owner's chat for a change to its history; the time of that change."""
    if db.execute(LOCK_OWNED_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).first() is None:
        raise chat_not_found()
    now = datetime.now(UTC)
    db.execute(TOUCH_CHAT, {"chat_id": chat_id, "now": now})
    return now


def insert_messages(
    db: Connection, owner_id: int, chat_id: int, messages: Iterable[MessageCreate], now: datetime
) -> list[MessagePublic]:
    # Core executemany takes column names: the "metadata" column, not the model's `meta`.
    owned = {"chat_id": chat_id, "owner_id": owner_id, "created_at": now}
    rows = [{**message.model_dump(), **owned} for message in messages]
    return MESSAGE_LIST.validate_python(db.execute(ADD_MESSAGES, rows).mappings().all())


def add_chat(db: Connection, owner_id: int, chat: ChatCreate) -> ChatPublic:
    now = datetime.now(UTC)
    values = {"owner_id": owner_id, "title": chat.title, "meta": chat.metadata, "created_at": now, "updated_at": now}
    created = db.execute(insert(Chat).values(values).returning(*CHAT_COLUMNS)).mappings().one()
    if chat.messages:
        insert_messages(db, owner_id, created["id"], chat.messages, now)
    return ChatPublic.model_validate(created)


def add_messages(db: Connection, owner_id: int, chat_id: int, messages: list[MessageCreate]) -> list[MessagePublic]:
    return insert_messages(db, owner_id, chat_id, messages, lock_owned_chat(db, owner_id, chat_id))


def add_message(db: Connection, owner_id: int, chat_id: int, message: MessageCreate) -> MessagePublic:
    return add_messages(db, owner_id, chat_id, [message])[0]


def listed_chats(db: Connection, owner_id: int, skip: int, limit: int, archived: bool) -> list[ChatPublic]:
    rows = db.execute(LISTED_CHATS[archived], {"owner_id": owner_id, "skip": skip, "limit": limit}).mappings()
    return [ChatPublic.model_validate(row) for row in rows]


def chats_after(db: Connection, owner_id: int, after: int, limit: int) -> list[ChatPublic]:
    rows = db.execute(CHATS_AFTER, {"owner_id": owner_id, "after": after, "limit": limit}).mappings()
    return [ChatPublic.model_validate(row) for row in rows]


def chat_with_first_messages(
    db: Connection, owner_id: int, chat_id: int, limit: int
) -> tuple[ChatPublic, list[MessagePublic]]:
    return owned_chat(db, owner_id, chat_id), messages_after(db, chat_id, 0, limit)


def messages_after(db: Connection, chat_id: int, after: int, limit: int) -> list[MessagePublic]:
    rows = db.execute(MESSAGES_AFTER, {"chat_id": chat_id, "after": after, "limit": limit}).mappings().all()
    return MESSAGE_LIST.validate_python(rows)


def message_page(
    db: Connection,
    owner_id: int,
    chat_id: int,
    limit: int,
    after: int | None,
    before: int | None,
    order: Literal["asc", "desc"],
) -> MessagePage:
    """A page of the chat's messages by id, OpenAI-style: `after` and `before` are ids
    that bound the page in the order asked for. With only `before`, the page is the one
    just before it (walking backwards); `has_more` looks further the same way."""
    owned_chat(db, owner_id, chat_id)
    ascending = order == "asc"
    lower, upper = (after, before) if ascending else (before, after)
    backwards = before is not None and after is None
    forward_in_ids = ascending != backwards
    bounds = {"low": lower or 0, "high": upper - 1 if upper else MAX_ID}
    query = MESSAGES_BETWEEN[forward_in_ids]
    rows = db.execute(query, {"chat_id": chat_id, **bounds, "limit": limit + 1}).mappings().all()
    data = MESSAGE_LIST.validate_python(rows[:limit])
    if backwards:
        data.reverse()
    return MessagePage(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=len(rows) > limit,
    )


def update_chat(db: Connection, owner_id: int, chat_id: int, changes: ChatUpdate) -> ChatPublic:
    values = changes.model_dump(exclude_unset=True)
    if "metadata" in values:
        values["meta"] = values.pop("metadata")
    if not values:
        return owned_chat(db, owner_id, chat_id)
    query = (
        update(Chat)
        .where(Chat.id == chat_id, Chat.owner_id == owner_id)
        .values(**values, updated_at=datetime.now(UTC))
        .returning(*CHAT_COLUMNS)
    )
    updated = db.execute(query).mappings().one_or_none()
    if updated is None:
        raise chat_not_found()
    return ChatPublic.model_validate(updated)


def update_message(
    db: Connection, owner_id: int, chat_id: int, message_id: int, changes: MessageUpdate
) -> MessagePublic:
    lock_owned_chat(db, owner_id, chat_id)
    values = changes.model_dump(exclude_unset=True)
    if "metadata" in values:
        values["meta"] = values.pop("metadata")
    query = select(*MESSAGE_COLUMNS).where(Message.id == message_id, Message.chat_id == chat_id)
    if values:
        query = (
            update(Message)
            .where(Message.id == message_id, Message.chat_id == chat_id)
            .values(**values)
            .returning(*MESSAGE_COLUMNS)
        )
    updated = db.execute(query).mappings().one_or_none()
    if updated is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Message not found")
    return MessagePublic.model_validate(updated)


def delete_message(db: Connection, owner_id: int, chat_id: int, message_id: int) -> Deleted:
    lock_owned_chat(db, owner_id, chat_id)
    if db.execute(DELETE_MESSAGE, {"message_id": message_id, "chat_id": chat_id}).rowcount == 0:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Message not found")
    return Deleted()


def delete_chat(db: Connection, owner_id: int, chat_id: int) -> Deleted:
    if db.execute(DELETE_CHAT, {"chat_id": chat_id, "owner_id": owner_id}).rowcount == 0:
        raise chat_not_found()
    return Deleted()


def delete_all_chats(db: Connection, owner_id: int) -> DeletedChats:
    return DeletedChats(deleted=db.execute(DELETE_ALL_CHATS, {"owner_id": owner_id}).rowcount)


def store_import(db: Connection, owner_id: int, conversations: list[ImportedConversation]) -> ImportResult:
    """Each conversation with a message to keep becomes a chat; the rest is counted as skipped."""
    now = datetime.now(UTC)
    chats: list[ChatPublic] = []
    rows: list[dict] = []
    skipped_messages = skipped_conversations = 0
    for conversation in conversations:
        kept = [m for m in conversation.messages if len(m.content.encode()) <= settings.max_content_bytes]
        skipped_messages += conversation.skipped + len(conversation.messages) - len(kept)
        if not kept:
            skipped_conversations += 1
            continue
        created_at = conversation.created_at or now
        values = {
            "owner_id": owner_id,
            "title": conversation.title,
            "meta": {"source": "chatgpt"} | ({"chatgpt_id": conversation.source_id} if conversation.source_id else {}),
            "created_at": created_at,
            "updated_at": max((m.created_at for m in kept if m.created_at), default=created_at),
        }
        chat = db.execute(insert(Chat).values(values).returning(*CHAT_COLUMNS)).mappings().one()
        chats.append(ChatPublic.model_validate(chat))
        rows += [
            {
                "chat_id": chat["id"],
                "owner_id": owner_id,
                "role": message.role,
                "content": message.content,
                "name": message.name,
                "model": message.model,
                "metadata": {},
                "created_at": message.created_at or created_at,
            }
            for message in kept
        ]
    if rows:
        db.execute(insert(Message), rows)
    return ImportResult(
        chats=chats, messages=len(rows), skipped_messages=skipped_messages, skipped_conversations=skipped_conversations
    )


async def spooled_upload(request: Request) -> BinaryIO:
    """The uploaded export in a temporary file: in memory while small, then on disk."""
    upload = tempfile.SpooledTemporaryFile(max_size=8 * MiB)  # noqa: SIM115 - the caller closes it
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            async with request.form(max_files=1, max_fields=10) as form:
                file = form.get("file")
                if not isinstance(file, UploadFile):
                    raise HTTPException(
                        status.HTTP_422_UNPROCESSABLE_CONTENT, "Send the export in the multipart field `file`"
                    )
                while chunk := await file.read(MiB):
                    upload.write(chunk)
        else:
            async for chunk in request.stream():
                upload.write(chunk)
    except BaseException:
        upload.close()
        raise
    upload.seek(0)
    return upload


def read_conversations(upload: BinaryIO) -> tuple[str, list[ImportedConversation]]:
    """The upload's digest (what identifies a retry) and its conversations, read in a
    thread: parsing a large export is CPU work that must not hold up the event loop."""
    digest = sha256()
    while chunk := upload.read(MiB):
        digest.update(chunk)
    upload.seek(0)
    try:
        return digest.hexdigest(), list(read_export(upload, settings.max_import_bytes))
    except ImportTooLarge as error:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(error)) from None
    except ExportFormatError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"Not a ChatGPT export: {error}") from None


IMPORT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
        "application/zip": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {
            "schema": {"type": "array", "items": {"type": "object"}},
            "example": examples.CHATGPT_CONVERSATIONS,
        },
    },
}


async def history(db: Database, chat_id: int, first_page: list[MessagePublic]) -> AsyncIterator[list[MessagePublic]]:
    """A chat's messages a page at a time, so a long history never sits in memory whole."""
    page = first_page
    while page:
        yield page
        if len(page) < HISTORY_PAGE:
            return
        # Inline SQLite reads never yield to the event loop: without this checkpoint a long
        # history would hold the loop, and a client that went away would not stop it.
        await anyio.sleep(0)
        page = await db.read(messages_after, chat_id, page[-1].id, HISTORY_PAGE)


async def chat_json(db: Database, chat: ChatPublic, first_page: list[MessagePublic]) -> AsyncIterator[bytes]:
    """The JSON of ChatWithMessages, written as the pages of its history arrive."""
    yield chat.model_dump_json().encode()[:-1] + b',"messages":['
    separator = b""
    async for page in history(db, chat.id, first_page):
        yield separator + MESSAGE_LIST.dump_json(page)[1:-1]
        separator = b","
    yield b"]}"


async def chat_markdown(db: Database, chat: ChatPublic, first_page: list[MessagePublic]) -> AsyncIterator[bytes]:
    yield f"# {chat.title}\n\n_Created {chat.created_at:%Y-%m-%d %H:%M} UTC_\n".encode()
    async for page in history(db, chat.id, first_page):
        for message in page:
            speaker = message.role.capitalize() + (f" ({message.name})" if message.name else "")
            yield f"\n## {speaker}\n\n{message.content}\n".encode()


async def chat_openai(db: Database, chat: ChatPublic, first_page: list[MessagePublic]) -> AsyncIterator[bytes]:
    yield b'{"messages":['
    separator = b""
    async for page in history(db, chat.id, first_page):
        turns = [{"role": m.role, "content": m.content} | ({"name": m.name} if m.name else {}) for m in page]
        yield separator + OPENAI_TURNS.dump_json(turns)[1:-1]
        separator = b","
    yield b"]}"


OPENAI_TURNS = TypeAdapter(list[dict[str, str]])
EXPORTS = {
    "json": (chat_json, "application/json", "json"),
    "markdown": (chat_markdown, "text/markdown; charset=utf-8", "md"),
    "openai": (chat_openai, "application/json", "json"),
}


async def all_chats_json(db: Database, owner_id: int) -> AsyncIterator[bytes]:
    yield b"["
    separator, after = b"", 0
    while chats := await db.read(chats_after, owner_id, after, 100):
        for chat in chats:
            first_page = await db.read(messages_after, chat.id, 0, HISTORY_PAGE)
            yield separator
            async for part in chat_json(db, chat, first_page):
                yield part
            separator = b","
        after = chats[-1].id
    yield b"]"


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatPublic,
    responses=RETRY_CONFLICT | examples.example(201, examples.CHAT),
)
async def create_chat(chat: ChatCreate, user: CurrentUser, db: DatabaseDep, key: KeyHeader = None) -> ChatPublic:
    retry = retryable(key, "create chat", chat.model_dump_json())
    return await db.write(create_once, user.id, retry, lambda connection: add_chat(connection, user.id, chat))


@router.get("/", response_model=list[ChatPublic], responses=examples.example(200, [examples.CHAT]))
async def list_chats(
    user: CurrentUser,
    db: DatabaseDep,
    skip: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    archived: Annotated[bool, Query(description="Include archived chats")] = False,
) -> list[ChatPublic]:
    """Your chats: pinned first, then the most recently active; archived ones only on request."""
    return await db.read(listed_chats, user.id, skip, limit, archived)


@router.delete(
    "/",
    response_model=DeletedChats,
    responses={400: {"description": "confirm=true is missing"}} | examples.example(200, {"deleted": 3}),
)
async def remove_all_chats(
    user: CurrentUser,
    db: DatabaseDep,
    confirm: Annotated[bool, Query(description="Must be true: this deletes every chat you have")] = False,
) -> DeletedChats:
    if not confirm:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Add ?confirm=true to delete all of your chats")
    return await db.write(delete_all_chats, user.id)


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    response_model=ImportResult,
    responses=RETRY_CONFLICT
    | {413: {"description": "The upload, or what it unpacks to, is over MAX_IMPORT_BYTES"}}
    | {422: {"description": "Not a ChatGPT export; `detail` says where"}}
    | examples.example(201, examples.IMPORT_RESULT),
    openapi_extra={"requestBody": IMPORT_BODY},
)
async def import_chats(request: Request, user: CurrentUser, db: DatabaseDep, key: KeyHeader = None) -> ImportResult:
    """Import a ChatGPT data export: the ZIP as downloaded, or its `conversations.json`,
    as a multipart upload (field `file`) or as the request body. Each conversation
    becomes a chat, with the messages of the branch last shown in ChatGPT."""
    with await spooled_upload(request) as upload:
        digest, conversations = await anyio.to_thread.run_sync(read_conversations, upload)
    retry = retryable(key, "import", digest)
    return await db.write(
        create_once, user.id, retry, lambda connection: store_import(connection, user.id, conversations)
    )


@router.get(
    "/export", response_model=list[ChatWithMessages], responses=examples.example(200, [examples.CHAT_WITH_MESSAGES])
)
async def export_all_chats(user: CurrentUser, db: DatabaseDep) -> StreamingResponse:
    """All your chats with their messages, as JSON, streamed."""
    headers = {"Content-Disposition": 'attachment; filename="chats.json"'}
    return StreamingResponse(all_chats_json(db, user.id), media_type="application/json", headers=headers)


def parsed_query(name: str, parse_value: Callable[[str], T], value: str) -> T:
    """`value` parsed, or a 422 in the shape of every other one: a list naming the parameter."""
    try:
        return parse_value(value)
    except ValueError as error:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": str(error)}]) from None


@router.get("/search", response_model=SearchPage, responses=examples.example(200, examples.SEARCH_PAGE))
async def search_chats(
    user: CurrentUser,
    db: DatabaseDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Words to find (see the README)")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=20, description="last_id of the previous page")] = None,
) -> SearchPage:
    """Your chats whose title matches, then your messages that match, newest first."""
    terms = parsed_query("q", parse, q)
    cursor = None if after is None else parsed_query("after", parse_cursor, after)
    return await db.read(search, user.id, terms, limit, cursor)


# The seed documents both URLs (its workflow the path form, its curl example the query
# form); one handler serves both, reading chat_id from wherever the URL put it.
@router.post(
    "/message",
    status_code=status.HTTP_201_CREATED,
    response_model=MessagePublic,
    responses=NOT_FOUND | RETRY_CONFLICT | examples.example(201, examples.QUESTION),
)
@router.post(
    "/{chat_id}/message",
    status_code=status.HTTP_201_CREATED,
    response_model=MessagePublic,
    responses=NOT_FOUND | RETRY_CONFLICT | examples.example(201, examples.QUESTION),
)
async def create_message(
    chat_id: AnyChatId, message: MessageCreate, user: CurrentUser, db: DatabaseDep, key: KeyHeader = None
) -> MessagePublic:
    if key is None:  # the hot path, without the idempotency machinery
        return await db.write(add_message, user.id, chat_id, message)
    retry = retryable(key, f"add message to {chat_id}", message.model_dump_json())
    return await db.write(
        create_once, user.id, retry, lambda connection: add_message(connection, user.id, chat_id, message)
    )


@router.get(
    "/{chat_id}",
    response_model=ChatWithMessages,
    responses=NOT_FOUND | examples.example(200, examples.CHAT_WITH_MESSAGES),
)
async def read_chat(chat_id: ChatId, user: CurrentUser, db: DatabaseDep) -> ChatWithMessages | StreamingResponse:
    chat, messages = await db.read(chat_with_first_messages, user.id, chat_id, HISTORY_PAGE)
    if len(messages) < HISTORY_PAGE:
        return ChatWithMessages(**chat.__dict__, messages=messages)
    return StreamingResponse(chat_json(db, chat, messages), media_type="application/json")


@router.patch("/{chat_id}", response_model=ChatPublic, responses=NOT_FOUND | examples.example(200, examples.CHAT))
async def edit_chat(
    chat_id: ChatId,
    changes: Annotated[ChatUpdate, Body(openapi_examples=examples.CHAT_CHANGES)],
    user: CurrentUser,
    db: DatabaseDep,
) -> ChatPublic:
    """Rename, pin, archive, or replace the metadata of a chat; fields left out stay as they are."""
    return await db.write(update_chat, user.id, chat_id, changes)


@router.delete("/{chat_id}", response_model=Deleted, responses=NOT_FOUND | examples.example(200, examples.DELETED))
async def remove_chat(chat_id: ChatId, user: CurrentUser, db: DatabaseDep) -> Deleted:
    return await db.write(delete_chat, user.id, chat_id)


@router.get(
    "/{chat_id}/export",
    response_model=ChatWithMessages | OpenAIExport,
    responses=NOT_FOUND
    | {
        200: {
            "description": "`format=json`: the chat with its messages; `format=openai`: only `messages`; "
            "`format=markdown`: a transcript",
            "content": {
                "application/json": {
                    "examples": {
                        "json": {"value": examples.CHAT_WITH_MESSAGES},
                        "openai": {"value": examples.OPENAI},
                    }
                },
                "text/markdown": {"schema": {"type": "string"}, "example": examples.MARKDOWN},
            },
        }
    },
)
async def export_chat(
    chat_id: ChatId,
    user: CurrentUser,
    db: DatabaseDep,
    format: Literal["json", "markdown", "openai"] = "json",
) -> StreamingResponse:
    """The chat as JSON (chat and messages), a Markdown transcript, or `{"messages": [{role,
    content}]}` ready for a chat-completions API."""
    chat, messages = await db.read(chat_with_first_messages, user.id, chat_id, HISTORY_PAGE)
    write, media_type, extension = EXPORTS[format]
    headers = {"Content-Disposition": f'attachment; filename="chat-{chat_id}.{extension}"'}
    return StreamingResponse(write(db, chat, messages), media_type=media_type, headers=headers)


@router.get(
    "/{chat_id}/messages", response_model=MessagePage, responses=NOT_FOUND | examples.example(200, examples.PAGE)
)
async def list_messages(
    chat_id: ChatId,
    user: CurrentUser,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    after: Cursor = None,
    before: Cursor = None,
    order: Literal["asc", "desc"] = "asc",
) -> MessagePage:
    """A page of the chat's messages; pass `last_id` as `after` for the next page, or
    `first_id` as `before` for the previous one."""
    return await db.read(message_page, user.id, chat_id, limit, after, before, order)


@router.post(
    "/{chat_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=list[MessagePublic],
    responses=NOT_FOUND | RETRY_CONFLICT | examples.example(201, examples.MESSAGES),
)
async def create_messages(
    chat_id: ChatId,
    batch: Annotated[MessageBatch, Body(openapi_examples=examples.SENT_MESSAGES)],
    user: CurrentUser,
    db: DatabaseDep,
    key: KeyHeader = None,
) -> list[MessagePublic] | Response:
    """Append 1 to 1,000 messages in order, all or none."""
    retry = retryable(key, f"add messages to {chat_id}", batch.model_dump_json())
    created = await db.write(
        create_once,
        user.id,
        retry,
        lambda connection: MessageList(add_messages(connection, user.id, chat_id, batch.messages)),
    )
    return created.root if isinstance(created, MessageList) else created


@router.patch(
    "/{chat_id}/messages/{message_id}",
    response_model=MessagePublic,
    responses=NOT_FOUND | examples.example(200, examples.ANSWER),
)
async def edit_message(
    chat_id: ChatId,
    message_id: MessageId,
    changes: Annotated[MessageUpdate, Body(openapi_examples=examples.MESSAGE_CHANGES)],
    user: CurrentUser,
    db: DatabaseDep,
) -> MessagePublic:
    return await db.write(update_message, user.id, chat_id, message_id, changes)


@router.delete(
    "/{chat_id}/messages/{message_id}",
    response_model=Deleted,
    responses=NOT_FOUND | examples.example(200, examples.DELETED),
)
async def remove_message(chat_id: ChatId, message_id: MessageId, user: CurrentUser, db: DatabaseDep) -> Deleted:
    return await db.write(delete_message, user.id, chat_id, message_id)
