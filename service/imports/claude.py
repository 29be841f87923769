"""claude.ai's data export: `conversations.json` (in its ZIP, or bare), a list of conversations
`{uuid, name, created_at (ISO 8601), chat_messages: [...]}`. A message is `{uuid, sender: "human" |
"assistant", created_at, text, content: [blocks], parent_message_uuid}`; a block is `{type: "text",
text}`, `{type: "thinking", thinking}`, `{type: "tool_use", ...}`, `{type: "tool_result", ...}`...

Kept: a message's text blocks, joined by a blank line (its `text` when it has no blocks). Thinking,
tool and unknown blocks are skipped and counted, as is a message left without text. Newer exports
give `parent_message_uuid` (the first message's is 00000000-0000-4000-8000-000000000000): the
messages form a tree; older ones do not: each message follows the one before. The shown leaf is
the newest. A conversation with no text at all is skipped.
"""

from service.imports.fields import iso_time, source_id_of, text_of, title_of
from service.imports.model import Broken, ImportedConversation, Node, conversation, kept_message

NAME = "claude"
ROLES = {"human": "user", "assistant": "assistant"}


def matches(item: object) -> bool:
    return isinstance(item, dict) and "chat_messages" in item


def source_id(item: dict) -> str | None:
    return source_id_of(item.get("uuid"))


def read(item: dict) -> ImportedConversation:
    chat_messages = item.get("chat_messages")
    if not isinstance(chat_messages, list):
        raise Broken("`chat_messages` must be a list")
    nodes: list[Node] = []
    skipped = 0
    previous: str | None = None
    for index, message in enumerate(chat_messages):
        if not isinstance(message, dict):
            raise Broken(f"message {index} must be an object")
        key = message.get("uuid")
        key = key if isinstance(key, str) and key else f"#{index}"
        parent = message.get("parent_message_uuid", previous)
        if parent is not None and not isinstance(parent, str):
            raise Broken(f"message {key!r}: `parent_message_uuid` must be a message id")
        text, left_out = message_text(message, key)
        when = iso_time(message.get("created_at"), f"message {key!r}: `created_at`")
        kept = kept_message(key, ROLES.get(message.get("sender")), text, when)
        skipped += left_out or kept is None
        nodes.append(Node(key, parent, kept))
        previous = key
    title = title_of(item.get("name") or None)
    created_at = iso_time(item.get("created_at"), "`created_at`")
    return conversation(NAME, source_id(item), title, created_at, nodes, None, skipped)


def message_text(message: dict, key: str) -> tuple[str, int]:
    """The message's text, and how many of its blocks were left out."""
    blocks = message.get("content")
    if isinstance(blocks, list) and blocks:
        texts = []
        left_out = 0
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            else:
                left_out += 1
        text = "\n\n".join(part for part in texts if part.strip())
    else:
        text, left_out = message.get("text"), 0
        text = text if isinstance(text, str) else ""
    return text_of(text, f"message {key!r}: the text"), left_out
