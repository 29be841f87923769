"""Storing an imported export: each conversation with a message to keep becomes a chat with
every branch of its tree, in the one transaction the import runs in (see database.py)."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, RowMapping

from message_store import NewMessage, add_chat_with_tree
from service.imports import ImportedConversation, SkippedConversation
from service.rules import SKIPPED_LISTED


@dataclass
class Imported:
    format: str
    chats: list[RowMapping] = field(default_factory=list)
    messages: int = 0
    skipped_messages: int = 0
    skipped_conversations: int = 0
    skipped: list[SkippedConversation] = field(default_factory=list)


def tree_of(conversation: ImportedConversation, max_content_bytes: int) -> tuple[list[NewMessage], int | None]:
    """The conversation's messages that can be stored, each below its nearest stored
    ancestor (a message over the content limit is skipped, its children bridged over it),
    and the index of the one nearest the leaf the source showed."""
    messages: list[NewMessage] = []
    # key -> the index of the message, or of its nearest kept ancestor (None: a root)
    place: dict[str, int | None] = {}
    for message in conversation.messages:
        parent = place.get(message.parent_key) if message.parent_key is not None else None
        if len(message.content.encode()) > max_content_bytes:
            place[message.key] = parent
            continue
        columns = {
            "role": message.role,
            "content": message.content,
            "name": message.name,
            "model": message.model,
            "metadata": {},
        }
        if message.created_at is not None:
            columns["created_at"] = message.created_at
        place[message.key] = len(messages)
        messages.append(NewMessage(columns, None if parent is None else ("new", parent)))
    current = place.get(conversation.current_key) if conversation.current_key is not None else None
    return messages, current


def store_import(
    conn: Connection,
    owner_id: int,
    export_format: str,
    conversations: Iterable[ImportedConversation | SkippedConversation],
    max_content_bytes: int,
) -> Imported:
    """Stores the conversations as they come; the rest is counted as skipped."""
    now = datetime.now(UTC)
    imported = Imported(export_format)
    for conversation in conversations:
        if isinstance(conversation, SkippedConversation):
            imported.skipped_conversations += 1
            if len(imported.skipped) < SKIPPED_LISTED:
                imported.skipped.append(conversation)
            continue
        messages, current = tree_of(conversation, max_content_bytes)
        imported.skipped_messages += conversation.skipped + len(conversation.messages) - len(messages)
        if not messages:
            imported.skipped_conversations += 1
            continue
        created_at = conversation.created_at or now
        times = [message.columns["created_at"] for message in messages if "created_at" in message.columns]
        source_id = {f"{conversation.source}_id": conversation.source_id} if conversation.source_id else {}
        chat = {
            "title": conversation.title,
            "metadata": {"source": conversation.source} | source_id,
            "created_at": created_at,
            "updated_at": max(times, default=created_at),
        }
        imported.chats.append(add_chat_with_tree(conn, owner_id, chat, messages, current))
        imported.messages += len(messages)
    return imported
