"""LibreChat's conversation export (one conversation per file, JSON): `{conversationId, title,
endpoint, options: {model}, messages: [...]}`, where `messages` is flat, each message naming its
`parentMessageId` (the zero UUID, or null, for a first message), or, with `recursive: true` (and
in `messagesTree`), nested: each message holds its replies in `children`. A message is
`{messageId, parentMessageId, isCreatedByUser, sender, text, content: [parts], model, error,
createdAt (ISO 8601)}`.

The role is the user's when `isCreatedByUser`, else the assistant's (`sender` is a display
name). Kept: the message's `text`, or, when blank, the `text` parts of its `content`; `think`,
tool and other parts are skipped and counted, as are error messages and blank ones. The shown
leaf is the newest.
"""

from service.imports.fields import iso_time, model_of, source_id_of, text_of, title_of
from service.imports.model import Broken, ImportedConversation, Node, conversation, kept_message

NAME = "librechat"


def matches(item: object) -> bool:
    return (
        isinstance(item, dict)
        and ("messages" in item or "messagesTree" in item)
        and ("conversationId" in item or "endpoint" in item)
    )


def source_id(item: dict) -> str | None:
    return source_id_of(item.get("conversationId"))


def read(item: dict) -> ImportedConversation:
    nested = "messagesTree" in item or item.get("recursive") is True
    raw = item.get("messagesTree") if "messagesTree" in item else item.get("messages")
    if not isinstance(raw, list):
        raise Broken("`messages` must be a list")
    options = item.get("options")
    default_model = model_of(options.get("model")) if isinstance(options, dict) else None
    nodes: list[Node] = []
    skipped = 0
    for index, (message, tree_parent) in enumerate(walk(raw) if nested else ((m, None) for m in raw)):
        if not isinstance(message, dict):
            raise Broken(f"message {index} must be an object")
        key = message.get("messageId")
        if not isinstance(key, str) or not key:
            raise Broken(f"message {index}: `messageId` is missing")
        parent = tree_parent if nested else message.get("parentMessageId")
        if parent is not None and not isinstance(parent, str):
            raise Broken(f"message {key!r}: `parentMessageId` must be a message id")
        text, left_out = message_text(message, key)
        role = "user" if message.get("isCreatedByUser") is True else "assistant"
        when = iso_time(message.get("createdAt"), f"message {key!r}: `createdAt`")
        model = model_of(message.get("model"))
        kept = None if message.get("error") else kept_message(key, role, text, when, None, model, default_model)
        skipped += left_out or kept is None
        nodes.append(Node(key, parent, kept))
    title = title_of(item.get("title") or None)
    created_at = iso_time(item.get("createdAt"), "`createdAt`")
    return conversation(NAME, source_id(item), title, created_at, nodes, None, skipped)


def walk(tree: list) -> "list[tuple[object, str | None]]":
    """The messages of a nested tree, each with its parent's id, parents first (no recursion)."""
    found: list[tuple[object, str | None]] = []
    stack: list[tuple[object, str | None]] = [(message, None) for message in reversed(tree)]
    while stack:
        message, parent = stack.pop()
        found.append((message, parent))
        if isinstance(message, dict):
            children = message.get("children")
            if children is not None and not isinstance(children, list):
                raise Broken("`children` must be a list")
            key = message.get("messageId")
            stack.extend((child, key if isinstance(key, str) else None) for child in reversed(children or []))
    return found


def message_text(message: dict, key: str) -> tuple[str, int]:
    """The message's text, and how many parts of its content were left out."""
    text = message.get("text")
    if isinstance(text, str) and text.strip():
        return text_of(text, f"message {key!r}: the text"), 0
    parts = message.get("content")
    texts = []
    left_out = 0
    for part in parts if isinstance(parts, list) else ():
        value = part.get("text") if isinstance(part, dict) and part.get("type") == "text" else None
        if isinstance(value, dict):  # older parts: {"type": "text", "text": {"value": ...}}
            value = value.get("value")
        if isinstance(value, str):
            texts.append(value)
        else:
            left_out += 1
    return text_of("\n\n".join(part for part in texts if part.strip()), f"message {key!r}: the text"), left_out
