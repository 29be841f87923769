"""A chat's history written out as it is read, a page at a time, so a long history never
sits in memory whole: JSON (the chat with its messages), Markdown, or OpenAI's `messages`."""

from collections.abc import AsyncIterator, Callable, Sequence

import anyio
from pydantic import TypeAdapter

import chat_store
from database import Database
from schemas import ChatPublic, MessagePublic

# A history longer than this is streamed, this many messages per query.
HISTORY_PAGE = 1000
MESSAGE_LIST = TypeAdapter(list[MessagePublic])
OPENAI_TURNS = TypeAdapter(list[dict[str, str]])

Writer = Callable[[Database, ChatPublic, Sequence[MessagePublic]], AsyncIterator[bytes]]


async def history(
    db: Database, chat_id: int, first_page: Sequence[MessagePublic]
) -> AsyncIterator[Sequence[MessagePublic]]:
    page = first_page
    while page:
        yield page
        if len(page) < HISTORY_PAGE:
            return
        # Inline SQLite reads never yield to the event loop: without this checkpoint a long
        # history would hold the loop, and a client that went away would not stop it.
        await anyio.sleep(0)
        page = MESSAGE_LIST.validate_python(
            await db.read(chat_store.messages_after, chat_id, page[-1].id, HISTORY_PAGE)
        )


async def chat_json(db: Database, chat: ChatPublic, first_page: Sequence[MessagePublic]) -> AsyncIterator[bytes]:
    """The JSON of ChatWithMessages, written as the pages of its history arrive."""
    yield chat.model_dump_json().encode()[:-1] + b',"messages":['
    separator = b""
    async for page in history(db, chat.id, first_page):
        yield separator + MESSAGE_LIST.dump_json(list(page))[1:-1]
        separator = b","
    yield b"]}"


async def chat_markdown(db: Database, chat: ChatPublic, first_page: Sequence[MessagePublic]) -> AsyncIterator[bytes]:
    yield f"# {chat.title}\n\n_Created {chat.created_at:%Y-%m-%d %H:%M} UTC_\n".encode()
    async for page in history(db, chat.id, first_page):
        for message in page:
            speaker = message.role.capitalize() + (f" ({message.name})" if message.name else "")
            yield f"\n## {speaker}\n\n{message.content}\n".encode()


async def chat_openai(db: Database, chat: ChatPublic, first_page: Sequence[MessagePublic]) -> AsyncIterator[bytes]:
    yield b'{"messages":['
    separator = b""
    async for page in history(db, chat.id, first_page):
        turns = [{"role": m.role, "content": m.content} | ({"name": m.name} if m.name else {}) for m in page]
        yield separator + OPENAI_TURNS.dump_json(turns)[1:-1]
        separator = b","
    yield b"]}"


# format: (writer, media type, file extension)
FORMATS: dict[str, tuple[Writer, str, str]] = {
    "json": (chat_json, "application/json", "json"),
    "markdown": (chat_markdown, "text/markdown; charset=utf-8", "md"),
    "openai": (chat_openai, "application/json", "json"),
}


async def all_chats_json(db: Database, owner_id: int) -> AsyncIterator[bytes]:
    yield b"["
    separator, after = b"", 0
    while chats := await db.read(chat_store.chats_after, owner_id, after, 100):
        for row in chats:
            chat = ChatPublic.model_validate(row)
            first_page = MESSAGE_LIST.validate_python(
                await db.read(chat_store.messages_after, chat.id, 0, HISTORY_PAGE)
            )
            yield separator
            async for part in chat_json(db, chat, first_page):
                yield part
            separator = b","
        after = chats[-1]["id"]
    yield b"]"
