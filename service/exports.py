"""A chat's history written out as it is read, a page at a time, so a long history never
sits in memory whole: JSON (the chat with every message of every branch), Markdown, or
OpenAI's `messages` (both of the path the chat shows)."""

from collections.abc import AsyncIterator, Callable, Sequence

import anyio
from pydantic import TypeAdapter

import chat_store
import message_store
from database import Database
from schemas import ChatPublic, MessagePublic

# A history longer than this is streamed, this many messages per query.
HISTORY_PAGE = 1000
# An export of every chat reads this many chats per query.
CHATS_PAGE = 100
MESSAGE_LIST = TypeAdapter(list[MessagePublic])
OPENAI_TURNS = TypeAdapter(list[dict[str, str]])

Pages = AsyncIterator[Sequence[MessagePublic]]
Writer = Callable[[Database, ChatPublic], AsyncIterator[bytes]]


async def every_message(db: Database, chat_id: int) -> Pages:
    """Every message of the chat, of every branch, by id."""
    after = 0
    while True:
        page = MESSAGE_LIST.validate_python(await db.read(message_store.messages_after, chat_id, after, HISTORY_PAGE))
        if page:
            yield page
        if len(page) < HISTORY_PAGE:
            return
        after = page[-1].id
        # Inline SQLite reads never yield to the event loop: without this checkpoint a long
        # history would hold the loop, and a client that went away would not stop it.
        await anyio.sleep(0)


async def path_messages(db: Database, chat_id: int, ids: Sequence[int], first_page: Sequence[MessagePublic]) -> Pages:
    """The messages of a path (`ids`), of which the first page is read already."""
    if first_page:
        yield first_page
    for start in range(len(first_page), len(ids), HISTORY_PAGE):
        await anyio.sleep(0)
        rows = await db.read(message_store.messages_by_id, chat_id, ids[start : start + HISTORY_PAGE])
        yield MESSAGE_LIST.validate_python(rows)


async def shown_path(db: Database, chat: ChatPublic) -> Pages:
    ids = await db.read(message_store.path_ids, chat.id, chat.current_message_id)
    async for page in path_messages(db, chat.id, ids, []):
        yield page


async def chat_json(chat: ChatPublic, pages: Pages) -> AsyncIterator[bytes]:
    """The JSON of ChatWithMessages, written as the pages of its messages arrive."""
    yield chat.model_dump_json().encode()[:-1] + b',"messages":['
    separator = b""
    async for page in pages:
        yield separator + MESSAGE_LIST.dump_json(list(page))[1:-1]
        separator = b","
    yield b"]}"


async def export_json(db: Database, chat: ChatPublic) -> AsyncIterator[bytes]:
    async for part in chat_json(chat, every_message(db, chat.id)):
        yield part


async def export_markdown(db: Database, chat: ChatPublic) -> AsyncIterator[bytes]:
    yield f"# {chat.title}\n\n_Created {chat.created_at:%Y-%m-%d %H:%M} UTC_\n".encode()
    async for page in shown_path(db, chat):
        for message in page:
            speaker = message.role.capitalize() + (f" ({message.name})" if message.name else "")
            yield f"\n## {speaker}\n\n{message.content}\n".encode()


async def export_openai(db: Database, chat: ChatPublic) -> AsyncIterator[bytes]:
    yield b'{"messages":['
    separator = b""
    async for page in shown_path(db, chat):
        turns = [{"role": m.role, "content": m.content} | ({"name": m.name} if m.name else {}) for m in page]
        yield separator + OPENAI_TURNS.dump_json(turns)[1:-1]
        separator = b","
    yield b"]}"


# format: (writer, media type, file extension)
FORMATS: dict[str, tuple[Writer, str, str]] = {
    "json": (export_json, "application/json", "json"),
    "markdown": (export_markdown, "text/markdown; charset=utf-8", "md"),
    "openai": (export_openai, "application/json", "json"),
}


async def all_chats_json(db: Database, owner_id: int) -> AsyncIterator[bytes]:
    yield b"["
    separator, after = b"", 0
    while chats := await db.read(chat_store.chats_after, owner_id, after, CHATS_PAGE):
        for row in chats:
            yield separator
            async for part in export_json(db, ChatPublic.model_validate(row)):
                yield part
            separator = b","
        after = chats[-1]["id"]
    yield b"]"
