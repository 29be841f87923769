"""Open WebUI's chat export: "Export All Chats" is a list of `{id, title, created_at (Unix seconds),
chat: {title, models, history: {currentId, messages: {id: message}}, messages: [...]}}`; one chat
exported alone is the same object (or its `chat`). A message is `{id, parentId, childrenIds, role,
content, timestamp (Unix seconds), model}`.

Kept: a message of role system, user or assistant with text in `content` (a string, or a list
whose `text` parts are kept). Open WebUI writes its reasoning and tool calls into the content as
`<details type="reasoning">`, `"tool_calls"` or `"code_interpreter"` blocks: those blocks are
removed, and a message left blank is skipped and counted. `history.currentId` is the shown leaf
(the newest leaf when missing). A chat without `history` but with a `messages` list is read as a
line. An assistant's message without `model` takes the chat's first model.
"""

import re

from service.imports.fields import model_of, role_of, source_id_of, text_of, title_of, unix_time
from service.imports.model import Broken, ImportedConversation, ImportedMessage, Node, conversation, kept_message

NAME = "openwebui"
MACHINERY = re.compile(r'<details\s+type="(?:reasoning|tool_calls|code_interpreter)"[^>]{0,500}>', re.IGNORECASE)
CLOSE = "</details>"
SPACE = re.compile(r"\s*")


def chat_of(item: object) -> dict | None:
    """The chat object of an exported item (or the item itself when it is one)."""
    if not isinstance(item, dict):
        return None
    chat = item.get("chat")
    if isinstance(chat, dict) and ("history" in chat or "messages" in chat):
        return chat
    return item if isinstance(item.get("history"), dict) else None


def matches(item: object) -> bool:
    return chat_of(item) is not None


def source_id(item: dict) -> str | None:
    chat = chat_of(item) or {}
    return source_id_of(item.get("id")) or source_id_of(chat.get("id"))


def read(item: dict) -> ImportedConversation:
    chat = chat_of(item)
    assert chat is not None  # the caller checked matches()
    models = chat.get("models")
    chat_model = model_of(models[0]) if isinstance(models, list) and models else None
    history = chat.get("history")
    if isinstance(history, dict):
        raw = history.get("messages")
        if not isinstance(raw, dict):
            raise Broken("`chat.history.messages` must be an object")
        entries = [(key, message, None) for key, message in raw.items()]
        shown = history.get("currentId")
    else:
        raw = chat.get("messages")
        if not isinstance(raw, list):
            raise Broken("`chat.messages` must be a list")
        entries = [(f"#{index}", message, f"#{index - 1}" if index else None) for index, message in enumerate(raw)]
        shown = None
    nodes: list[Node] = []
    skipped = 0
    for key, message, previous in entries:
        if not isinstance(message, dict):
            raise Broken(f"message {key!r} must be an object")
        parent = message.get("parentId") if isinstance(history, dict) else previous
        if parent is not None and not isinstance(parent, str):
            raise Broken(f"message {key!r}: `parentId` must be a message id")
        kept = read_message(key, message, chat_model)
        skipped += kept is None
        nodes.append(Node(key, parent, kept))
    title = title_of(item.get("title") or chat.get("title") or None)
    created_at = unix_time(item.get("created_at", chat.get("timestamp")), "`created_at`")
    return conversation(NAME, source_id(item), title, created_at, nodes, shown, skipped)


def read_message(key: str, message: dict, chat_model: str | None) -> ImportedMessage | None:
    role = role_of(message.get("role"))
    content = message.get("content")
    if isinstance(content, list):
        parts = (part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text")
        content = "\n\n".join(part for part in parts if isinstance(part, str))
    if role is None or not isinstance(content, str):
        return None
    text = without_machinery(text_of(content, f"message {key!r}: the text"))
    when = unix_time(message.get("timestamp"), f"message {key!r}: `timestamp`")
    return kept_message(key, role, text, when, None, model_of(message.get("model")), chat_model)


def without_machinery(text: str) -> str:
    """`text` without its reasoning and tool blocks (in one pass: an unclosed block ends the search)."""
    kept = []
    at = 0
    while (block := MACHINERY.search(text, at)) and (end := text.find(CLOSE, block.end())) >= 0:
        kept.append(text[at : block.start()])
        at = SPACE.match(text, end + len(CLOSE)).end()
    kept.append(text[at:])
    return "".join(kept)
