"""Reading a ChatGPT data export (its ZIP, or a bare conversations.json), one conversation at a time."""

import lzma
import math
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

import ijson

from service import rules

# The conversations of an export: conversations.json, or, in newer exports, conversations-000.json,
# conversations-001.json, ... (in whichever folder of the ZIP).
CONVERSATION_FILE = re.compile(r"(?:^|/)conversations(?:-(\d+))?\.json$")
ROLES = frozenset(rules.ROLES)
# Content types whose text is the message; the others (code run by a tool, its output,
# browsing, reasoning, custom instructions...) are the machinery around the conversation.
TEXT_TYPES = frozenset({"text", "multimodal_text"})
# What zipfile and its decompressors raise on a damaged archive (a corrupt offset, for
# one, is a ValueError from seek; an unknown method or version, NotImplementedError).
DAMAGED_ZIP = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
)


class ExportFormatError(Exception):
    """The export is not what ChatGPT writes; the message says where."""


class ImportTooLarge(Exception):
    """The export unpacks to more than the limit."""


@dataclass(slots=True)
class ImportedMessage:
    role: str
    content: str
    name: str | None
    model: str | None
    created_at: datetime | None


@dataclass(slots=True)
class ImportedConversation:
    title: str
    created_at: datetime | None
    source_id: str | None
    messages: list[ImportedMessage] = field(default_factory=list)
    # Messages on the conversation's path that were not kept: hidden, empty, tools', not text.
    skipped: int = 0


def read_export(upload: BinaryIO, max_bytes: int) -> Iterator[ImportedConversation]:
    """The conversations of an export, in the order of its files. `upload` must be seekable."""
    if upload.read(2) != b"PK":
        upload.seek(0)
        yield from conversations_in(upload, "the upload")
        return
    upload.seek(0)
    try:
        archive = zipfile.ZipFile(upload)
    except DAMAGED_ZIP as error:
        raise ExportFormatError(f"not a readable ZIP archive ({error})") from None
    with archive:
        entries = conversation_entries(archive)
        declared = sum(entry.file_size for entry in entries)
        if declared > max_bytes:
            raise ImportTooLarge(f"The export's conversations unpack to {declared} bytes, over {max_bytes}")
        budget = UnpackBudget(max_bytes)
        for entry in entries:
            try:
                member = archive.open(entry)
            except DAMAGED_ZIP as error:
                raise ExportFormatError(f"{entry.filename}: cannot be unpacked ({error})") from None
            with member:
                yield from conversations_in(budget.reader(member, entry.filename), entry.filename)


def conversation_entries(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    found = []
    for entry in archive.infolist():
        match = CONVERSATION_FILE.search(entry.filename)
        if match and not entry.is_dir():
            if entry.flag_bits & 0x1:
                raise ExportFormatError(f"{entry.filename}: encrypted; export it again without a password")
            found.append((int(match[1] or -1), entry.filename, entry))
    if not found:
        raise ExportFormatError("the ZIP holds no conversations.json (nor conversations-000.json, ...)")
    return [entry for *_, entry in sorted(found, key=lambda item: item[:2])]


class UnpackBudget:
    """Counts what the ZIP's members unpack to, in case their declared sizes lie. (Python's
    zipfile also stops a member at its declared size and then fails its CRC check; the
    count keeps the limit without relying on that.)"""

    def __init__(self, max_bytes: int) -> None:
        self.left = max_bytes
        self.max_bytes = max_bytes

    def reader(self, member: BinaryIO, name: str) -> "BudgetedReader":
        return BudgetedReader(member, name, self)


class BudgetedReader:
    def __init__(self, member: BinaryIO, name: str, budget: UnpackBudget) -> None:
        self.member = member
        self.name = name
        self.budget = budget

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.member.read(size if size >= 0 else self.budget.left + 1)
        except DAMAGED_ZIP as error:
            raise ExportFormatError(f"{self.name}: cannot be unpacked ({error})") from None
        self.budget.left -= len(data)
        if self.budget.left < 0:
            raise ImportTooLarge(f"The export's conversations unpack to more than {self.budget.max_bytes} bytes")
        return data


def conversations_in(stream: BinaryIO | BudgetedReader, source: str) -> Iterator[ImportedConversation]:
    """The conversations of one JSON file, parsed as it streams: only one is held at a time."""
    index = -1
    try:
        events = ijson.parse(stream, use_float=True)
        if next(events, (None, None))[1] != "start_array":
            raise ExportFormatError(f"{source}: must be a JSON list of conversations")
        for index, item in enumerate(ijson.items(events, "item")):
            yield conversation(item, f"{source}, conversation {index}")
    except ijson.JSONError as error:
        where = "" if index < 0 else f" after conversation {index}"
        raise ExportFormatError(f"{source}: invalid JSON{where}: {json_error(error)}") from None


def json_error(error: Exception) -> str:
    # The parser's message goes on to quote the input around the error: keep only its first line.
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[2:] if text[:2] in ("b'", 'b"') else text


def conversation(item: object, where: str) -> ImportedConversation:
    if not isinstance(item, dict):
        raise ExportFormatError(f"{where}: must be an object")
    mapping = item.get("mapping")
    if not isinstance(mapping, dict):
        raise ExportFormatError(f"{where}: `mapping` must be an object")
    title = item.get("title")
    if title is not None and not isinstance(title, str):
        raise ExportFormatError(f"{where}: `title` must be a string")
    title = storable(title or "", f"{where}: `title`").strip()[: rules.TITLE_MAX].strip() or rules.UNTITLED
    source_id = item.get("conversation_id") or item.get("id")
    if not (isinstance(source_id, str) and 0 < len(source_id) <= rules.SOURCE_ID_MAX and "\x00" not in source_id):
        source_id = None
    imported = ImportedConversation(title, timestamp(item.get("create_time"), f"{where}: `create_time`"), source_id)
    for node_id, node in current_path(mapping, item.get("current_node"), where):
        message = node.get("message")
        if message is None:
            continue
        kept = kept_message(message, f"{where}, node {node_id!r}")
        if kept is None:
            imported.skipped += 1
        else:
            imported.messages.append(kept)
    return imported


def current_path(mapping: dict, current_node: object, where: str) -> list[tuple[str, dict]]:
    """The nodes from the root to `current_node`: the branch ChatGPT last showed."""
    if current_node is None and not mapping:
        return []
    if not isinstance(current_node, str) or current_node not in mapping:
        raise ExportFormatError(f"{where}: `current_node` is not a node of its `mapping`")
    path: list[tuple[str, dict]] = []
    seen: set[str] = set()
    node_id: object = current_node
    while node_id is not None:
        if not isinstance(node_id, str) or node_id not in mapping:
            raise ExportFormatError(f"{where}: node {path[-1][0]!r} has a parent that is not in `mapping`")
        if node_id in seen:
            raise ExportFormatError(f"{where}: node {node_id!r} is its own ancestor")
        seen.add(node_id)
        node = mapping[node_id]
        if not isinstance(node, dict):
            raise ExportFormatError(f"{where}: node {node_id!r} must be an object")
        path.append((node_id, node))
        node_id = node.get("parent")
    path.reverse()
    return path


def kept_message(message: object, where: str) -> ImportedMessage | None:
    """The message as stored, or None when it is not one of the conversation's visible turns."""
    if not isinstance(message, dict):
        raise ExportFormatError(f"{where}: `message` must be an object or null")
    author, content = message.get("author"), message.get("content")
    if not isinstance(author, dict) or not isinstance(author.get("role"), str):
        raise ExportFormatError(f"{where}: `author.role` is missing")
    if not isinstance(content, dict) or not isinstance(content.get("content_type"), str):
        raise ExportFormatError(f"{where}: `content.content_type` is missing")
    metadata = message.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    if (
        author["role"] not in ROLES
        or content["content_type"] not in TEXT_TYPES
        or metadata.get("is_visually_hidden_from_conversation")
        # An assistant's message to a tool (a search, an image prompt) is not shown either.
        or message.get("recipient", "all") != "all"
    ):
        return None
    parts = content.get("parts")
    if not isinstance(parts, list):
        raise ExportFormatError(f"{where}: `content.parts` must be a list")
    # A multimodal message keeps its text; its images and audio are files the export links to.
    text = storable("\n\n".join(part for part in parts if isinstance(part, str) and part), f"{where}: the text")
    if not text.strip():
        return None
    name, model = author.get("name"), metadata.get("model_slug")
    return ImportedMessage(
        role=author["role"],
        content=text,
        name=name if isinstance(name, str) and 0 < len(name) <= rules.NAME_MAX and "\x00" not in name else None,
        model=model if isinstance(model, str) and 0 < len(model) <= rules.MODEL_MAX and "\x00" not in model else None,
        created_at=timestamp(message.get("create_time"), f"{where}: `create_time`"),
    )


def storable(text: str, where: str) -> str:
    try:
        return rules.storable(text)
    except ValueError as error:
        raise ExportFormatError(f"{where} {error}") from None


def timestamp(value: object, where: str) -> datetime | None:
    """A Unix time in seconds, as the export writes them."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ExportFormatError(f"{where} must be a Unix time in seconds")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise ExportFormatError(f"{where} is out of range") from None
