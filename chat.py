"""The chat endpoints under /v1/chats: chats, their messages, search, import and export,
the trash, bulk actions and sync.
Routes only: the SQL is in chat_store.py, search_store.py and import_store.py; errors are
raised there as domain errors and answered by service/errors.py."""

import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from hashlib import sha256
from typing import Annotated, BinaryIO, Literal, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

import account_store
import chat_store
import import_store
import message_store
import search_store
from config import MiB
from schemas import (
    BatchSize,
    BulkRequest,
    BulkResult,
    ChangePage,
    ChangePublic,
    ChatCreate,
    ChatPublic,
    ChatUpdate,
    ChatWithMessages,
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
    Offset,
    OpenAIExport,
    PageSize,
    SearchHit,
    SearchPage,
    SkippedConversationPublic,
    TrashedChat,
)
from service import examples
from service.conditional import IfNoneMatch, VersionedDep, etag, not_modified, tagged
from service.deps import ChatOwner, ChatUser, DatabaseDep
from service.errors import ConfirmationMissing, NotAnExport, TooLarge, invalid
from service.exports import FORMATS, HISTORY_PAGE, MESSAGE_LIST, all_chats_json, chat_json, path_messages
from service.idempotency import KeyHeader, retryable, write_once
from service.imports import (
    ExportFormatError,
    ImportedConversation,
    ImportTooLarge,
    SkippedConversation,
    read_export,
)
from service.metrics import IMPORT_BYTES, IMPORT_MESSAGES
from service.openapi import ERROR_OR_INVALID_CONTENT
from service.rules import MAX_ID, METADATA_KEY_MAX, METADATA_KEYS_MAX, METADATA_VALUE_MAX, PAGE_MAX, storable
from service.search_terms import parse, parse_cursor, snippet

router = APIRouter()
T = TypeVar("T")

NOT_FOUND = {404: {"description": "Chat (or message) not found, or not yours"}}
RETRY_CONFLICT = {409: {"description": "Idempotency-Key already used with a different request"}}
Cursor = Annotated[Id | None, Query()]
PRECONDITION = {412: {"description": "If-Match names a version that is no longer current; the answer holds it"}}
# The answers of a change to one chat or message, which `If-Match` can make conditional.
VERSIONED = NOT_FOUND | PRECONDITION
MESSAGE = "/{chat_id}/messages/{message_id}"


def metadata_filter(request: Request) -> dict[str, str]:
    """The `metadata.<key>=<value>` pairs of the query."""
    pairs = {}
    for name, value in request.query_params.multi_items():
        if not name.startswith("metadata."):
            continue
        key = name.removeprefix("metadata.")
        try:
            storable(key)
            storable(value)
        except ValueError as error:
            raise invalid(("query", name[:METADATA_KEY_MAX]), str(error)) from None
        if not 1 <= len(key) <= METADATA_KEY_MAX or len(value) > METADATA_VALUE_MAX:
            message = f"keys are 1 to {METADATA_KEY_MAX} characters, values at most {METADATA_VALUE_MAX}"
            raise invalid(("query", name[:METADATA_KEY_MAX]), message)
        pairs[key] = value
    if len(pairs) > METADATA_KEYS_MAX:
        raise invalid(("query", "metadata"), f"at most {METADATA_KEYS_MAX} metadata filters")
    return pairs


def parent_of(body: MessageCreate | MessageBatch) -> int | message_store.Default | None:
    """The parent a body names: left out, the chat's current leaf."""
    return body.parent_id if "parent_id" in body.model_fields_set else message_store.DEFAULT


# Adding a message is the most frequent request, so its routes are matched first (see
# api.py). Any static path must come before a `/{chat_id}` one of the same method.
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
    chat_id: Id, message: MessageCreate, owner: ChatOwner, db: DatabaseDep, key: KeyHeader = None
) -> MessagePublic:
    """Add a message below `parent_id` (left out: the chat's current leaf, so a client that
    never sends it builds a line); it becomes the chat's current leaf. Edit a question or
    regenerate an answer: send the new one with the old one's parent."""
    columns, parent = message.columns(), parent_of(message)
    # A parent left out and a null parent are different requests.
    parent_set = "parent_id" in message.model_fields_set
    retry = retryable(key, f"add message to {chat_id}", message.model_dump_json(), str(parent_set))
    if parent is message_store.DEFAULT and retry is None:
        # The most frequent request: its one statement checks the owner's token too.
        return MessagePublic.model_validate(await db.write(message_store.append_to_leaf, owner, chat_id, columns))
    # A replayed answer runs no statement of the chat's: the token is checked first.
    await db.read(account_store.check_current, owner)
    if parent is message_store.DEFAULT:
        args: tuple = (message_store.append_to_leaf, owner, chat_id, columns)
    else:
        args = (message_store.add_message, owner.id, chat_id, columns, parent)
    return await write_once(db, owner.id, retry, MessagePublic.model_validate, *args)


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=ChatPublic,
    responses=RETRY_CONFLICT | examples.example(201, examples.CHAT),
)
async def create_chat(chat: ChatCreate, user: ChatUser, db: DatabaseDep, key: KeyHeader = None) -> ChatPublic:
    """A new chat, with its messages if given: a line, or the tree an export describes
    with `id` and `parent_id` (mapped to new ids)."""
    items = [
        (m.columns(), m.id, m.parent_id if "parent_id" in m.model_fields_set else message_store.FOLLOWS)
        for m in chat.messages
    ]
    messages, current = message_store.tree_of(items, chat.current_message_id, "messages")
    retry = retryable(key, "create chat", chat.model_dump_json())
    columns = {"title": chat.title, "metadata": chat.metadata}
    return await write_once(
        db,
        user.id,
        retry,
        ChatPublic.model_validate,
        message_store.add_chat_with_tree,
        user.id,
        columns,
        messages,
        current,
    )


@router.get("/", response_model=list[ChatPublic] | list[TrashedChat], responses=examples.example(200, [examples.CHAT]))
async def list_chats(
    request: Request,
    user: ChatUser,
    db: DatabaseDep,
    skip: Offset = 0,
    limit: PageSize = 20,
    archived: Annotated[bool, Query(description="Include archived chats")] = False,
    trashed: Annotated[bool, Query(description="List the trash instead, most recently trashed first")] = False,
) -> list[ChatPublic] | list[TrashedChat]:
    """Your chats: pinned first, then the most recently active; archived ones only on request.
    `metadata.<key>=<value>` (repeatable, up to 16) keeps the chats whose metadata has each pair."""
    metadata = metadata_filter(request)
    if trashed:
        trash = await db.read(chat_store.trashed_chats, user.id, skip, limit)
        return [TrashedChat.model_validate(row) for row in trash]
    rows = await db.read(chat_store.listed_chats, user.id, skip, limit, archived, metadata)
    return [ChatPublic.model_validate(row) for row in rows]


@router.delete(
    "/",
    response_model=DeletedChats,
    responses={400: {"description": "confirm=true is missing"}} | examples.example(200, {"deleted": 3}),
)
async def remove_all_chats(
    user: ChatUser,
    db: DatabaseDep,
    confirm: Annotated[bool, Query(description="Must be true: this moves every chat you have to the trash")] = False,
) -> DeletedChats:
    """Move every chat of yours to the trash."""
    if not confirm:
        raise ConfirmationMissing()
    return DeletedChats(deleted=await db.write(chat_store.delete_all_chats, user.id))


@router.delete("/trash", response_model=DeletedChats, responses=examples.example(200, {"deleted": 3}))
async def empty_trash(user: ChatUser, db: DatabaseDep) -> DeletedChats:
    """Delete every chat in your trash for good, with its messages."""
    return DeletedChats(deleted=await db.write(chat_store.empty_trash, user.id))


@router.post("/bulk", response_model=BulkResult, responses=examples.example(200, {"ids": [1, 2], "not_found": [3]}))
async def bulk_action(body: BulkRequest, user: ChatUser, db: DatabaseDep) -> BulkResult:
    """One action on many chats, in one transaction: those named by `ids` (up to 1,000;
    ids that are not your chats, or not where the action applies, come back as
    `not_found`, untouched), or up to 1,000 that `filter` selects and the action changes
    (call again until `ids` is empty). `restore` acts on the trash, `delete` for good."""
    chat_filter = body.filter.model_dump() if body.filter else None
    done = await db.write(chat_store.bulk, user.id, body.action, body.ids, chat_filter)
    return BulkResult(ids=done.ids, not_found=done.not_found)


@router.get(
    "/changes",
    response_model=ChangePage,
    responses={410: {"description": "The cursor is older than the change log kept: reload, then sync again"}}
    | examples.example(200, examples.CHANGES),
)
async def list_changes(
    user: ChatUser,
    db: DatabaseDep,
    since: Annotated[
        str | None, Query(max_length=20, pattern="^[0-9]+$", description="The `cursor` of the last call")
    ] = None,
    limit: BatchSize = PAGE_MAX,
) -> Response:
    """What changed in your chats and messages since the cursor, oldest first: each entry
    names its kind (`chat` or `message`), id, chat, and whether it was `created`,
    `updated` or `deleted` (a chat moved to the trash is deleted, with its messages; one
    restored is created again, with them). Without `since`: no entries, and the cursor
    to start from after loading everything."""
    cursor = None if since is None else int(since)
    if cursor is not None and cursor > MAX_ID:
        raise invalid(("query", "since"), "is not a cursor")
    rows, next_cursor, more = await db.read(chat_store.changes_since, user.id, cursor, limit)
    data = [
        ChangePublic(kind=r["kind"], id=r["object_id"], chat_id=r["chat_id"], change=r["change"], at=r["at"])
        for r in rows
    ]
    # Answered as serialised here: a page of 1,000 entries is not dumped and validated again.
    page = ChangePage(data=data, cursor=str(next_cursor), has_more=more)
    return Response(page.model_dump_json(), media_type="application/json")


async def spooled_upload(request: Request) -> BinaryIO:
    """The uploaded export in a temporary file (at its end): in memory while small, then on disk."""
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
    return upload


class ParsedExport:
    """An export read in a thread: its digest (what identifies a retry), its format, and
    its conversations spooled to a temporary file, one pickle each, so that neither the
    reading nor the storing ever holds more than one conversation."""

    def __init__(self, upload: BinaryIO, max_bytes: int) -> None:
        digest = sha256()
        while chunk := upload.read(MiB):
            digest.update(chunk)
        upload.seek(0)
        self.digest = digest.hexdigest()
        self.spool = tempfile.SpooledTemporaryFile(max_size=8 * MiB)  # noqa: SIM115 - closed by close()
        try:
            self.format, conversations = read_export(upload, max_bytes)
            for conversation in conversations:
                pickle.dump(conversation, self.spool, pickle.HIGHEST_PROTOCOL)
        except ImportTooLarge as error:
            self.close()
            raise TooLarge(str(error)) from None
        except ExportFormatError as error:
            self.close()
            raise NotAnExport(f"Not a chat export: {error}") from None
        except BaseException:
            self.close()
            raise

    def conversations(self) -> Iterator[ImportedConversation | SkippedConversation]:
        self.spool.seek(0)
        while True:
            try:
                yield pickle.load(self.spool)
            except EOFError:
                return

    def close(self) -> None:
        self.spool.close()


def import_result(imported: import_store.Imported) -> ImportResult:
    return ImportResult(
        format=imported.format,
        chats=[ChatPublic.model_validate(chat) for chat in imported.chats],
        messages=imported.messages,
        skipped_messages=imported.skipped_messages,
        skipped_conversations=imported.skipped_conversations,
        skipped_conversation_details=[
            SkippedConversationPublic(index=skipped.index, source_id=skipped.source_id, reason=skipped.reason)
            for skipped in imported.skipped
        ],
    )


# Two body types, both of which generated clients can send: a multipart upload, or the file's
# bytes as they are. Any other Content-Type (application/json, application/zip) is read as
# the bytes too; it is not declared, as generators refuse a ZIP body and mishandle a JSON list.
IMPORT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "title": "ImportUpload",
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary", "description": "The ZIP or its JSON"}},
                "required": ["file"],
            }
        },
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary", "description": "The ZIP or its JSON, as the body"}
        },
    },
}


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    response_model=ImportResult,
    responses=RETRY_CONFLICT
    | {413: {"description": "The upload, or what it unpacks to, is over MAX_IMPORT_BYTES"}}
    | {
        422: {
            "description": "Not a chat export, damaged past one conversation, or a form without `file`: `detail` "
            "is a string that says where. A bad Idempotency-Key: `detail` is a list naming it, as for every parameter.",
            "content": ERROR_OR_INVALID_CONTENT,
        }
    }
    | examples.example(201, examples.IMPORT_RESULT),
    openapi_extra={"requestBody": IMPORT_BODY},
)
async def import_chats(request: Request, user: ChatUser, db: DatabaseDep, key: KeyHeader = None) -> ImportResult:
    """Import a chat export of ChatGPT, Claude, Open WebUI or LibreChat (told by its content):
    the ZIP as downloaded, or its JSON, as a multipart upload (field `file`) or as the request
    body. Each conversation becomes a chat with every branch; a conversation that cannot be
    read is skipped, and the answer says why."""
    settings = request.app.state.settings
    with await spooled_upload(request) as upload:
        IMPORT_BYTES.observe(upload.seek(0, os.SEEK_END))
        upload.seek(0)
        # Imports are read a few at a time: each holds up to one conversation in memory.
        async with request.app.state.import_slots:
            export = await anyio.to_thread.run_sync(ParsedExport, upload, settings.max_import_bytes)
    try:
        retry = retryable(key, "import", export.digest)
        result = await write_once(
            db,
            user.id,
            retry,
            import_result,
            import_store.store_import,
            user.id,
            export.format,
            export.conversations(),
            settings.max_content_bytes,
        )
    finally:
        export.close()
    if isinstance(result, ImportResult):  # not a replay of an earlier answer
        IMPORT_MESSAGES.observe(result.messages)
    return result


@router.get(
    "/export", response_model=list[ChatWithMessages], responses=examples.example(200, [examples.CHAT_WITH_MESSAGES])
)
async def export_all_chats(user: ChatUser, db: DatabaseDep) -> StreamingResponse:
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
    user: ChatUser,
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


@router.get(
    "/{chat_id}",
    response_model=ChatWithMessages,
    responses=NOT_FOUND
    | {304: {"description": "If-None-Match named the current version: no body"}}
    | examples.example(200, examples.CHAT_WITH_MESSAGES),
)
async def read_chat(
    chat_id: Id,
    owner: ChatOwner,
    db: DatabaseDep,
    message_id: Annotated[Id | None, Query(description="Show the path through this message instead")] = None,
    if_none_match: IfNoneMatch = None,
) -> ChatWithMessages | StreamingResponse | Response:
    """The chat with `messages`: the path from the root to the leaf it shows, oldest first,
    as on screen (with `message_id`, the path through that message to its newest leaf;
    the chat is not changed). `ETag` is the chat's version; with `If-None-Match` naming
    it, 304 and no body."""
    chat, ids, messages = await db.read(message_store.chat_with_path, owner, chat_id, message_id, HISTORY_PAGE)
    headers = {"ETag": etag(chat["version"])}
    if not_modified(if_none_match, chat["version"]):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if ids is None:  # the whole path is read already
        body = ChatWithMessages(**chat, messages=messages).model_dump_json()
        return Response(body, media_type="application/json", headers=headers)
    pages = path_messages(db, chat_id, ids, MESSAGE_LIST.validate_python(messages))
    body = chat_json(ChatPublic.model_validate(chat), pages)
    return StreamingResponse(body, media_type="application/json", headers=headers)


@router.patch("/{chat_id}", response_model=ChatPublic, responses=VERSIONED | examples.example(200, examples.CHAT))
async def edit_chat(
    chat_id: Id,
    changes: Annotated[ChatUpdate, Body(openapi_examples=examples.CHAT_CHANGES)],
    user: ChatUser,
    db: DatabaseDep,
    change: VersionedDep,
) -> ChatPublic:
    """Rename, pin, archive, replace the metadata of a chat, or show another branch
    (`current_message_id`); fields left out stay as they are. With `If-Match`, only if
    the chat is still at that version (412 otherwise)."""
    changed = changes.model_dump(exclude_unset=True)
    updated = await db.write(message_store.edit_chat, user.id, chat_id, changed, change.expected)
    return ChatPublic.model_validate(change.tagged(updated))


@router.delete("/{chat_id}", response_model=Deleted, responses=VERSIONED | examples.example(200, examples.DELETED))
async def remove_chat(
    chat_id: Id,
    user: ChatUser,
    db: DatabaseDep,
    change: VersionedDep,
    permanent: Annotated[bool, Query(description="Delete for good (from the trash too), not to the trash")] = False,
) -> Deleted:
    """Move the chat to the trash (restorable for TRASH_DAYS), or delete it for good."""
    await db.write(chat_store.delete_chat, user.id, chat_id, permanent, change.expected)
    return Deleted()


@router.post(
    "/{chat_id}/restore",
    response_model=ChatPublic,
    responses={404: {"description": "No chat of yours in the trash with this id"}}
    | examples.example(200, examples.CHAT),
)
async def restore_chat(chat_id: Id, user: ChatUser, db: DatabaseDep, response: Response) -> ChatPublic:
    """Take a chat out of the trash, with its messages."""
    restored = await db.write(chat_store.restore_chat, user.id, chat_id)
    return ChatPublic.model_validate(tagged(response, restored))


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
    user: ChatUser,
    db: DatabaseDep,
    format: Literal["json", "markdown", "openai"] = "json",
) -> StreamingResponse:
    """The chat as JSON (the chat and every message of every branch), a Markdown transcript
    of the path it shows, or that path as `{"messages": [{role, content}]}`, ready for a
    chat-completions API."""
    chat = ChatPublic.model_validate(await db.read(chat_store.owned_chat, user.id, chat_id))
    write, media_type, extension = FORMATS[format]
    headers = {"Content-Disposition": f'attachment; filename="chat-{chat_id}.{extension}"'}
    return StreamingResponse(write(db, chat), media_type=media_type, headers=headers)


@router.get(
    "/{chat_id}/messages", response_model=MessagePage, responses=NOT_FOUND | examples.example(200, examples.PAGE)
)
async def list_messages(
    chat_id: Id,
    user: ChatUser,
    db: DatabaseDep,
    limit: PageSize = 50,
    after: Cursor = None,
    before: Cursor = None,
    order: Literal["asc", "desc"] = "asc",
) -> MessagePage:
    """A page of the chat's messages of every branch, by id (for sync); pass `last_id` as
    `after` for the next page, or `first_id` as `before` for the previous one."""
    rows = await db.read(message_store.message_page, user.id, chat_id, limit, after, before, order)
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
    user: ChatUser,
    db: DatabaseDep,
    key: KeyHeader = None,
) -> list[MessagePublic] | Response:
    """Append 1 to 1,000 messages in order, all or none: a line below `parent_id`."""
    retry = retryable(key, f"add messages to {chat_id}", batch.model_dump_json())
    columns = [message.columns() for message in batch.messages]
    created = await write_once(
        db,
        user.id,
        retry,
        MessageList.model_validate,
        message_store.add_messages,
        user.id,
        chat_id,
        columns,
        parent_of(batch),
    )
    return created.root if isinstance(created, MessageList) else created


@router.patch(MESSAGE, response_model=MessagePublic, responses=VERSIONED | examples.example(200, examples.ANSWER))
async def edit_message(
    chat_id: Id,
    message_id: Id,
    changes: Annotated[MessageUpdate, Body(openapi_examples=examples.MESSAGE_CHANGES)],
    user: ChatUser,
    db: DatabaseDep,
    change: VersionedDep,
) -> MessagePublic:
    """Change a message's content or metadata; `ETag` is its version, and `If-Match` makes
    the change only if it is still at that version (412 otherwise)."""
    changed = changes.model_dump(exclude_unset=True)
    updated = await db.write(message_store.update_message, user.id, chat_id, message_id, changed, change.expected)
    return MessagePublic.model_validate(change.tagged(updated))


@router.delete(MESSAGE, response_model=Deleted, responses=VERSIONED | examples.example(200, examples.DELETED))
async def remove_message(
    chat_id: Id,
    message_id: Id,
    user: ChatUser,
    db: DatabaseDep,
    change: VersionedDep,
    subtree: Annotated[bool, Query(description="Remove every message below it too")] = False,
) -> Deleted:
    """Remove a message. Its children move up to its parent, so a line stays a line;
    with `subtree=true` they go with it. A removed current leaf moves to the newest
    surviving leaf below the removed message's parent."""
    await db.write(message_store.delete_message, user.id, chat_id, message_id, subtree, change.expected)
    return Deleted()


@router.get("/{chat_id}/path", response_model=MessagePage, responses=NOT_FOUND | examples.example(200, examples.PAGE))
async def read_path(
    chat_id: Id,
    user: ChatUser,
    db: DatabaseDep,
    message_id: Annotated[
        Id | None, Query(description="The path through this message (default: the one shown)")
    ] = None,
    limit: PageSize = 50,
    before: Cursor = None,
    after: Cursor = None,
) -> MessagePage:
    """A page of a path, oldest first. No cursor: the page that ends at the leaf; then
    `first_id` as `before` for the page before it (toward the root, `has_more` while there
    is more that way), or `last_id` as `after` for the page after it (toward the leaf)."""
    rows, more = await db.read(message_store.path_page, user.id, chat_id, message_id, limit, before, after)
    page = MessagePage.of(MESSAGE_LIST.validate_python(rows), limit)
    page.has_more = more
    return page
