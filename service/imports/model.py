"""What every export reader produces, and how it makes a tree of a source's messages."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

# The parent id some exports give a conversation's first message: LibreChat's zero UUID,
# Claude's 00000000-0000-4000-8000-000000000000.
NO_PARENT = re.compile(r"[0-]*|00000000-0000-4000-8000-000000000000")


class ExportFormatError(Exception):
    """The upload as a whole is not an export that can be read; the message says where."""


class ImportTooLarge(Exception):
    """The export unpacks to more than the limit."""


class Broken(Exception):
    """One conversation cannot be read; the message is the short reason it is skipped."""


@dataclass(slots=True)
class ImportedMessage:
    key: str  # the source's id of the message, unique within its conversation
    parent_key: str | None  # key of the nearest kept ancestor; None for a root
    role: str  # "system" | "user" | "assistant"
    content: str
    name: str | None
    model: str | None
    created_at: datetime | None


@dataclass(slots=True)
class ImportedConversation:
    source: str  # "chatgpt" | "claude" | "openwebui" | "librechat"
    source_id: str | None  # the original conversation id
    title: str
    created_at: datetime | None
    messages: list[ImportedMessage]  # every kept message of every branch, parents before children
    current_key: str | None  # the shown leaf
    skipped: int  # messages (or their parts) not kept: tool calls, hidden, blank, reasoning...


@dataclass(slots=True)
class SkippedConversation:
    index: int  # the conversation's place in the export, from 0, across all of its files
    source_id: str | None
    reason: str


@dataclass(slots=True)
class Node:
    """One message of a source's tree, before the tree is arranged: `message` is None when
    the source's message is not kept (its kept children then hang from its nearest kept ancestor)."""

    key: str
    parent: str | None
    message: ImportedMessage | None


def conversation(
    source: str,
    source_id: str | None,
    title: str,
    created_at: datetime | None,
    nodes: list[Node],
    shown: object,
    skipped: int,
) -> ImportedConversation:
    """The conversation of `nodes` arranged as a tree (see `arrange`); one without a time of
    its own is as old as its first message."""
    messages, current = arrange(nodes, shown)
    created_at = created_at or (messages[0].created_at if messages else None)
    return ImportedConversation(source, source_id, title, created_at, messages, current, skipped)


def kept_message(
    key: str,
    role: str | None,
    text: str,
    created_at: datetime | None,
    name: str | None = None,
    model: str | None = None,
    chat_model: str | None = None,
) -> ImportedMessage | None:
    """The message as kept, or None when it has no role kept here or no text. An assistant
    message that names no model was written by the conversation's (`chat_model`)."""
    if role is None or not text.strip():
        return None
    model = model or (chat_model if role == "assistant" else None)
    return ImportedMessage(key, None, role, text, name, model, created_at)


def is_root(parent: object) -> bool:
    return parent is None or (isinstance(parent, str) and NO_PARENT.fullmatch(parent) is not None)


def arrange(nodes: list[Node], shown: object) -> tuple[list[ImportedMessage], str | None]:
    """The kept messages of a tree, parents before children (siblings in the source's order),
    each hung from its nearest kept ancestor; and the shown leaf: `shown` (or its nearest kept
    ancestor) when it names a node, else the newest leaf."""
    keys: set[str] = set()
    children: dict[str | None, list[Node]] = {}
    for node in nodes:
        if node.key in keys:
            raise Broken(f"message {node.key!r} appears twice")
        keys.add(node.key)
    for node in nodes:
        if node.parent is not None and node.parent not in keys:
            if not is_root(node.parent):
                raise Broken(f"message {node.key!r} has a parent that is not in the conversation")
            node.parent = None
        children.setdefault(node.parent, []).append(node)
    # Depth first from the roots, without recursion: a tree may be as deep as it is long.
    kept_ancestor: dict[str, str | None] = {}
    ordered: list[ImportedMessage] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        node = stack.pop()
        above = kept_ancestor[node.parent] if node.parent is not None else None
        if node.message is not None:
            node.message.parent_key = above
            ordered.append(node.message)
            above = node.key
        kept_ancestor[node.key] = above
        stack.extend(reversed(children.get(node.key, [])))
    if len(kept_ancestor) < len(nodes):
        looped = next(node.key for node in nodes if node.key not in kept_ancestor)
        raise Broken(f"message {looped!r} is its own ancestor")
    current = kept_ancestor.get(shown) if isinstance(shown, str) else None
    return ordered, current if current is not None else newest_leaf(ordered)


def newest_leaf(messages: list[ImportedMessage]) -> str | None:
    parents = {message.parent_key for message in messages}
    oldest = datetime.min.replace(tzinfo=UTC)
    leaves = [(m.created_at or oldest, i, m.key) for i, m in enumerate(messages) if m.key not in parents]
    return max(leaves)[2] if leaves else None


def current_path(conversation: ImportedConversation) -> list[ImportedMessage]:
    """The messages from the root to `current_key`: the branch the source last showed."""
    by_key = {message.key: message for message in conversation.messages}
    path: list[ImportedMessage] = []
    key = conversation.current_key
    while key is not None and key in by_key:
        path.append(by_key[key])
        key = by_key[key].parent_key
    path.reverse()
    return path
