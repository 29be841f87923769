"""Storing an imported export: each conversation with a message to keep becomes a chat,
in the one transaction the import runs in (see database.py)."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, RowMapping

from chatgpt import ImportedConversation
from message_store import NewMessage, add_chat_with_tree


@dataclass
class Imported:
    chats: list[RowMapping] = field(default_factory=list)
    messages: int = 0
    skipped_messages: int = 0
    skipped_conversations: int = 0


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
        chat = {
            "title": conversation.title,
            "metadata": {"source": "chatgpt"}
            | ({"chatgpt_id": conversation.source_id} if conversation.source_id else {}),
            "created_at": created_at,
            "updated_at": max((m.created_at for m in kept if m.created_at), default=created_at),
        }
        messages = [
            NewMessage(
                {
                    "role": message.role,
                    "content": message.content,
                    "name": message.name,
                    "model": message.model,
                    "metadata": {},
                    "created_at": message.created_at or created_at,
                },
                ("new", i - 1) if i else None,
            )
            for i, message in enumerate(kept)
        ]
        imported.chats.append(add_chat_with_tree(conn, owner_id, chat, messages))
        imported.messages += len(messages)
    return imported
