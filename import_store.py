"""Storing an imported export: each conversation with a message to keep becomes a chat,
in the one transaction the import runs in (see database.py)."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, RowMapping, insert

from chat_store import ADD_CHAT, MESSAGES
from chatgpt import ImportedConversation


@dataclass
class Imported:
    chats: list[RowMapping] = field(default_factory=list)
    messages: int = 0
    skipped_messages: int = 0
    skipped_conversations: int = 0


ADD_IMPORTED_MESSAGES = insert(MESSAGES)


def store_import(
    conn: Connection, owner_id: int, conversations: Iterable[ImportedConversation], max_content_bytes: int
) -> Imported:
    """Stores the conversations as they come; the rest is counted as skipped."""
    now = datetime.now(UTC)
    imported = Imported()
    for conversation in conversations:
        kept = [m for m in conversation.messages if len(m.content.encode()) <= max_content_bytes]
        imported.skipped_messages += conversation.skipped + len(conversation.messages) - len(kept)
        if not kept:
            imported.skipped_conversations += 1
            continue
        created_at = conversation.created_at or now
        values = {
            "owner_id": owner_id,
            "title": conversation.title,
            "metadata": {"source": "chatgpt"}
            | ({"chatgpt_id": conversation.source_id} if conversation.source_id else {}),
            "created_at": created_at,
            "updated_at": max((m.created_at for m in kept if m.created_at), default=created_at),
        }
        chat = conn.execute(ADD_CHAT, values).mappings().one()
        imported.chats.append(chat)
        rows = [
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
        conn.execute(ADD_IMPORTED_MESSAGES, rows)
        imported.messages += len(rows)
    return imported
