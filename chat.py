"""The chat endpoints under /v1/chats: chats, their messages, search, import and export.
Routes only: the SQL is in chat_store.py, search_store.py and import_store.py; errors are
raised there as domain errors and answered by service/errors.py."""

import tempfile
from collections.abc import Callable
from hashlib import sha256
from typing import Annotated, BinaryIO, Literal, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

import chat_store
import import_store
import search_store
from chatgpt import ExportFormatError, ImportedConversation, ImportTooLarge, read_export
from config import MiB
from schemas import (
    ChatCreate,
    ChatPublic,
    ChatUpdate,
    ChatWithMessages,
    Count,
    Deleted,
    DeletedChats,
    Id,
    ImportResult,
    MessageBatch,
    MessageCreate,
    MessageList,
    MessagePage,
    MessagePublic,
    MessageUpdate,
    OpenAIExport,
    SearchHit,
    SearchPage,
)
from service import examples
from service.deps import CurrentUser, DatabaseDep
from service.errors import ConfirmationMissing, NotAnExport, TooLarge, invalid
from service.exports import FORMATS, HISTORY_PAGE, MESSAGE_LIST, all_chats_json, chat_json
from service.idempotency import KeyHeader, retryable, write_once
from service.rules import MAX_ID, PAGE_MAX
from service.search_terms import parse, parse_cursor, snippet

router = APIRouter()
T = TypeVar("T")

NOT_FOUND = {404: {"description": "Chat (or message) not found, or not yours"}}
RETRY_CONFLICT = {409: {"description": "Idempotency-Key already used with a different request"}}
PageSize = Annotated[Count, Query(ge=1, le=PAGE_MAX)]
Cursor = Annotated[Id | None, Query()]


def message_rows(messages: list[MessageCreate]) -> list[dict]:
    """Request bodies as the messages' columns."""
    return [message.model_dump() for message in messages]


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatPublic,
    responses=RETRY_CONFLICT | examples.example(201, examples.CHAT),
)
async def create_chat(chat: ChatCreate, user: CurrentUser, db: DatabaseDep, key: KeyHeader = None) -> ChatPublic:
    retry = retryable(key, "create chat", chat.model_dump_json())
    return await write_once(
        db,
        user.id,
        retry,
        ChatPublic.model_validate,
        chat_store.add_chat,
        user.id,
        chat.title,
        chat.metadata,
        message_rows(chat.messages),
    )


@router.get("/", response_model=list[ChatPublic], responses=examples.example(200, [examples.CHAT]))
async def list_chats(
    user: CurrentUser,
    db: DatabaseDep,
    skip: Annotated[Count, Query(ge=0, le=MAX_ID)] = 0,
    limit: PageSize = 20,
    archived: Annotated[bool, Query(description="Include archived chats")] = False,
) -> list[ChatPublic]:
    """Your chats: pinned first, then the most recently active; archived ones only on request."""
    rows = await db.read(chat_store.listed_chats, user.id, skip, limit, archived)
    return [ChatPublic.model_validate(row) for row in rows]


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
        raise ConfirmationMissing()
    return DeletedChats(deleted=await db.write(chat_store.delete_all_chats, user.id))


async def spooled_upload(request: Request) -> BinaryIO:
    """The uploaded export in a temporary file: in memory while small, then on disk."""
    upload = tempfile.SpooledTemporaryFile(max_size=8 * MiB)  # noqa: SIM115 - the caller closes it
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            async with request.form(max_files=1, max_fields=10) as form:
                file = form.get("file")
                if not isinstance(file, UploadFile):
                    raise NotAnExport("Send the export in the multipart field `file`")
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


def read_conversations(upload: BinaryIO, max_bytes: int) -> tuple[str, list[ImportedConversation]]:
    """The upload's digest (what identifies a retry) and its conversations, read in a
    thread: parsing a large export is CPU work that must not hold up the event loop."""
    digest = sha256()
    while chunk := upload.read(MiB):
        digest.update(chunk)
    upload.seek(0)
    try:
        return digest.hexdigest(), list(read_export(upload, max_bytes))
    except ImportTooLarge as error:
        raise TooLarge(str(error)) from None
    except ExportFormatError as error:
        raise NotAnExport(f"Not a ChatGPT export: {error}") from None


def import_result(imported: import_store.Imported) -> ImportResult:
    return ImportResult(
        chats=[ChatPublic.model_validate(chat) for chat in imported.chats],
        messages=imported.messages,
        skipped_messages=imported.skipped_messages,
        skipped_conversations=imported.skipped_conversations,
    )


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
    settings = request.app.state.settings
    with await spooled_upload(request) as upload:
        digest, conversations = await anyio.to_thread.run_sync(read_conversations, upload, settings.max_import_bytes)
    retry = retryable(key, "import", digest)
    return await write_once(
        db,
        user.id,
        retry,
        import_result,
        import_store.store_import,
        user.id,
        conversations,
        settings.max_content_bytes,
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
        raise invalid(("query", name), str(error)) from None


@router.get("/search", response_model=SearchPage, responses=examples.example(200, examples.SEARCH_PAGE))
async def search_chats(
    user: CurrentUser,
    db: DatabaseDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Words to find (see the README)")],
    limit: PageSize = 20,
    after: Annotated[str | None, Query(max_length=20, description="last_id of the previous page")] = None,
) -> SearchPage:
    """Your chats whose title matches, then your messages that match, newest first."""
    terms = parsed_query("q", parse, q)
    cursor = None if after is None else parsed_query("after", parse_cursor, after)
    chats, messages = await db.read(search_store.search, user.id, terms, limit, cursor)
    pattern = terms.pattern()
    hits = [
        SearchHit(
            id=f"c{chat['id']}",
            chat_id=chat["id"],
            chat_title=chat["title"],
            message_id=None,
            role=None,
            snippet=snippet(chat["title"], pattern),
            created_at=chat["created_at"],
        )
        for chat in chats
    ] + [
        SearchHit(
            id=f"m{message['id']}",
            chat_id=message["chat_id"],
            chat_title=message["title"],
            message_id=message["id"],
            role=message["role"],
            snippet=snippet(message["content"], pattern),
            created_at=message["created_at"],
        )
        for message in messages
    ]
    return SearchPage.of(hits, limit)


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
    chat_id: Id, message: MessageCreate, user: CurrentUser, db: DatabaseDep, key: KeyHeader = None
) -> MessagePublic:
    retry = retryable(key, f"add message to {chat_id}", message.model_dump_json())
    return await write_once(
        db, user.id, retry, MessagePublic.model_validate, chat_store.add_message, user.id, chat_id, message.model_dump()
    )


@router.get(
    "/{chat_id}",
    response_model=ChatWithMessages,
    responses=NOT_FOUND | examples.example(200, examples.CHAT_WITH_MESSAGES),
)
async def read_chat(chat_id: Id, user: CurrentUser, db: DatabaseDep) -> ChatWithMessages | StreamingResponse:
    chat, messages = await db.read(chat_store.chat_with_first_messages, user.id, chat_id, HISTORY_PAGE)
    if len(messages) < HISTORY_PAGE:
        return ChatWithMessages(**chat, messages=messages)
    first_page = MESSAGE_LIST.validate_python(messages)
    return StreamingResponse(chat_json(db, ChatPublic.model_validate(chat), first_page), media_type="application/json")


@router.patch("/{chat_id}", response_model=ChatPublic, responses=NOT_FOUND | examples.example(200, examples.CHAT))
async def edit_chat(
    chat_id: Id,
    changes: Annotated[ChatUpdate, Body(openapi_examples=examples.CHAT_CHANGES)],
    user: CurrentUser,
    db: DatabaseDep,
) -> ChatPublic:
    """Rename, pin, archive, or replace the metadata of a chat; fields left out stay as they are."""
    updated = await db.write(chat_store.update_chat, user.id, chat_id, changes.model_dump(exclude_unset=True))
    return ChatPublic.model_validate(updated)


@router.delete("/{chat_id}", response_model=Deleted, responses=NOT_FOUND | examples.example(200, examples.DELETED))
async def remove_chat(chat_id: Id, user: CurrentUser, db: DatabaseDep) -> Deleted:
    await db.write(chat_store.delete_chat, user.id, chat_id)
    return Deleted()


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
    chat_id: Id,
    user: CurrentUser,
    db: DatabaseDep,
    format: Literal["json", "markdown", "openai"] = "json",
) -> StreamingResponse:
    """The chat as JSON (chat and messages), a Markdown transcript, or `{"messages": [{role,
    content}]}` ready for a chat-completions API."""
    chat, messages = await db.read(chat_store.chat_with_first_messages, user.id, chat_id, HISTORY_PAGE)
    write, media_type, extension = FORMATS[format]
    headers = {"Content-Disposition": f'attachment; filename="chat-{chat_id}.{extension}"'}
    first_page = MESSAGE_LIST.validate_python(messages)
    return StreamingResponse(
        write(db, ChatPublic.model_validate(chat), first_page), media_type=media_type, headers=headers
    )


@router.get(
    "/{chat_id}/messages", response_model=MessagePage, responses=NOT_FOUND | examples.example(200, examples.PAGE)
)
async def list_messages(
    chat_id: Id,
    user: CurrentUser,
    db: DatabaseDep,
    limit: Annotated[Count, Query(ge=1, le=PAGE_MAX)] = 50,
    after: Cursor = None,
    before: Cursor = None,
    order: Literal["asc", "desc"] = "asc",
) -> MessagePage:
    """A page of the chat's messages; pass `last_id` as `after` for the next page, or
    `first_id` as `before` for the previous one."""
    rows = await db.read(chat_store.message_page, user.id, chat_id, limit, after, before, order)
    return MessagePage.of(MESSAGE_LIST.validate_python(rows), limit)


@router.post(
    "/{chat_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=list[MessagePublic],
    responses=NOT_FOUND | RETRY_CONFLICT | examples.example(201, examples.MESSAGES),
)
async def create_messages(
    chat_id: Id,
    batch: Annotated[MessageBatch, Body(openapi_examples=examples.SENT_MESSAGES)],
    user: CurrentUser,
    db: DatabaseDep,
    key: KeyHeader = None,
) -> list[MessagePublic] | Response:
    """Append 1 to 1,000 messages in order, all or none."""
    retry = retryable(key, f"add messages to {chat_id}", batch.model_dump_json())
    created = await write_once(
        db,
        user.id,
        retry,
        MessageList.model_validate,
        chat_store.add_messages,
        user.id,
        chat_id,
        message_rows(batch.messages),
    )
    return created.root if isinstance(created, MessageList) else created


@router.patch(
    "/{chat_id}/messages/{message_id}",
    response_model=MessagePublic,
    responses=NOT_FOUND | examples.example(200, examples.ANSWER),
)
async def edit_message(
    chat_id: Id,
    message_id: Id,
    changes: Annotated[MessageUpdate, Body(openapi_examples=examples.MESSAGE_CHANGES)],
    user: CurrentUser,
    db: DatabaseDep,
) -> MessagePublic:
    changed = changes.model_dump(exclude_unset=True)
    return MessagePublic.model_validate(
        await db.write(chat_store.update_message, user.id, chat_id, message_id, changed)
    )


@router.delete(
    "/{chat_id}/messages/{message_id}",
    response_model=Deleted,
    responses=NOT_FOUND | examples.example(200, examples.DELETED),
)
async def remove_message(chat_id: Id, message_id: Id, user: CurrentUser, db: DatabaseDep) -> Deleted:
    await db.write(chat_store.delete_message, user.id, chat_id, message_id)
    return Deleted()
