"""ChatGPT's data export: `conversations.json` (newer exports: conversations-000.json, ...) in a ZIP,
a list of conversations `{title, create_time (Unix seconds), conversation_id, current_node,
default_model_slug, mapping: {node id: {parent, children, message}}}`. A message is null (the
root) or `{author: {role, name}, create_time, content: {content_type, parts | text | thoughts...},
metadata: {model_slug, is_visually_hidden_from_conversation, citations}, recipient}`.

Kept: a message of role system, user or assistant, addressed to all, not hidden, whose content is
`text` or `multimodal_text` with text in its string parts (images and audio are files the export
links to). Every other message is skipped and counted: tool messages and calls to tools,
`code`, `execution_output`, `thoughts`, `reasoning_recap`, browsing results, custom instructions,
content types not known yet, blank text. Every branch of `mapping` is read; `current_node` is the
shown leaf (its nearest kept ancestor), or, when it is not in `mapping`, the newest leaf. An
assistant's message without `model_slug` takes the conversation's `default_model_slug`. Citation
markers (`【3:0†source】`, `【5†source】`) become a Markdown link when `metadata.citations` names the
web page the marker stands at, and are dropped otherwise. Other fields (`async_status`, ...) are
not read.
"""

import re

from service.imports.fields import model_of, name_of, role_of, source_id_of, text_of, title_of, unix_time
from service.imports.model import Broken, ImportedConversation, ImportedMessage, Node, conversation, kept_message

NAME = "chatgpt"
TEXT_TYPES = frozenset({"text", "multimodal_text"})
CITATION = re.compile(r"【\d+(?::\d+)?†[^【】]*】")


def matches(item: object) -> bool:
    return isinstance(item, dict) and "mapping" in item


def source_id(item: dict) -> str | None:
    return source_id_of(item.get("conversation_id")) or source_id_of(item.get("id"))


def read(item: dict) -> ImportedConversation:
    mapping = item.get("mapping")
    if not isinstance(mapping, dict):
        raise Broken("`mapping` must be an object")
    default_model = model_of(item.get("default_model_slug"))
    nodes: list[Node] = []
    skipped = 0
    for key, node in mapping.items():
        if not isinstance(node, dict):
            raise Broken(f"node {key!r} must be an object")
        parent = node.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise Broken(f"node {key!r}: `parent` must be a node id")
        message = node.get("message")
        kept = None if message is None else read_message(key, message, default_model)
        skipped += message is not None and kept is None
        nodes.append(Node(key, parent, kept))
    title = title_of(item.get("title"))
    created_at = unix_time(item.get("create_time"), "`create_time`")
    return conversation(NAME, source_id(item), title, created_at, nodes, item.get("current_node"), skipped)


def read_message(key: str, message: object, default_model: str | None) -> ImportedMessage | None:
    """The message as stored, or None when it is not one of the conversation's visible turns."""
    where = f"node {key!r}"
    if not isinstance(message, dict):
        raise Broken(f"{where}: `message` must be an object or null")
    author, content = message.get("author"), message.get("content")
    if not isinstance(author, dict) or not isinstance(author.get("role"), str):
        raise Broken(f"{where}: `author.role` is missing")
    if not isinstance(content, dict) or not isinstance(content.get("content_type"), str):
        raise Broken(f"{where}: `content.content_type` is missing")
    metadata = message.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    role = role_of(author["role"])
    if (
        role is None
        or content["content_type"] not in TEXT_TYPES
        or metadata.get("is_visually_hidden_from_conversation")
        # An assistant's message to a tool (a search, an image prompt) is not shown either.
        or message.get("recipient", "all") != "all"
    ):
        return None
    parts = content.get("parts")
    if not isinstance(parts, list):
        raise Broken(f"{where}: `content.parts` must be a list")
    text = text_of("\n\n".join(part for part in parts if isinstance(part, str) and part), f"{where}: the text")
    if "【" in text:
        text = with_citations(text, metadata.get("citations"))
    model = model_of(metadata.get("model_slug"))
    when = unix_time(message.get("create_time"), f"{where}: `create_time`")
    return kept_message(key, role, text, when, name_of(author.get("name")), model, default_model)


def with_citations(text: str, citations: object) -> str:
    """`text` with each citation marker made a link to the page it cites (the citation whose
    `start_ix` is where the marker starts), or dropped when none does."""
    pages: dict[int, str] = {}
    for citation in citations if isinstance(citations, list) else ():
        if not isinstance(citation, dict) or type(citation.get("start_ix")) is not int:
            continue
        page = citation.get("metadata")
        link = markdown_link(page.get("title"), page.get("url")) if isinstance(page, dict) else None
        if link:
            pages[citation["start_ix"]] = link
    return CITATION.sub(lambda marker: pages.get(marker.start(), ""), text)


def markdown_link(title: object, url: object) -> str | None:
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or any(c in url for c in " \n<>"):
        return None
    label = title.strip() if isinstance(title, str) and title.strip() else url
    label = re.sub(r"([\\\[\]])", r"\\\1", " ".join(label.split()))
    return f" ([{label}]({url.replace('(', '%28').replace(')', '%29')}))"
