"""Reading the chat exports of other tools (ChatGPT, Claude, Open WebUI, LibreChat) into one shape:
a stream of ImportedConversation, or SkippedConversation with its reason. The format is told by
the content, not by the file's name or type; each reader's module describes its format."""

from collections.abc import Iterator
from itertools import chain
from typing import BinaryIO

from service.imports import chatgpt, claude, librechat, openwebui
from service.imports.model import (
    Broken,
    ExportFormatError,
    ImportedConversation,
    ImportedMessage,
    ImportTooLarge,
    SkippedConversation,
    current_path,
)
from service.imports.stream import Refused, export_items

__all__ = [
    "FORMATS",
    "ExportFormatError",
    "ImportTooLarge",
    "ImportedConversation",
    "ImportedMessage",
    "SkippedConversation",
    "current_path",
    "read_export",
]

READERS = (chatgpt, claude, openwebui, librechat)
FORMATS = tuple(reader.NAME for reader in READERS)
# An export whose first items are none of them a conversation in a known shape is not an export.
LOOK_AHEAD = 100


def read_export(upload: BinaryIO, max_bytes: int) -> tuple[str, Iterator[ImportedConversation | SkippedConversation]]:
    """The export's format (`"empty"` when it holds no conversation) and its conversations, read
    as they are consumed: one conversation in memory at a time. `upload` must be seekable.

    Raises ExportFormatError (when reading starts, or while the stream is consumed) for an upload
    that is not an export or is damaged past one conversation (invalid JSON, a damaged ZIP), and
    ImportTooLarge when it unpacks to more than `max_bytes`."""
    items = enumerate(export_items(upload, max_bytes))
    passed: list[SkippedConversation] = []
    for index, item in items:
        reader = next((reader for reader in READERS if reader.matches(item)), None)
        if reader is not None:
            first = conversation(reader, index, item)
            return reader.NAME, chain(passed, [first], (conversation(reader, i, each) for i, each in items))
        passed.append(SkippedConversation(index, None, not_a_conversation(item)))
        if len(passed) == LOOK_AHEAD:
            break
    if passed:
        kinds = ", ".join(reader.NAME for reader in READERS)
        raise ExportFormatError(f"no conversation in the shape {kinds} exports have ({passed[0].reason}, first item)")
    return "empty", iter(())


def conversation(reader: object, index: int, item: object) -> ImportedConversation | SkippedConversation:
    if isinstance(item, Refused):
        return SkippedConversation(index, None, item.reason)
    if not reader.matches(item):
        return SkippedConversation(index, None, f"not a {reader.NAME} conversation ({not_a_conversation(item)})")
    try:
        imported = reader.read(item)
    except Broken as error:
        return SkippedConversation(index, reader.source_id(item), str(error))
    if not imported.messages:
        return SkippedConversation(index, imported.source_id, "no text")
    return imported


def not_a_conversation(item: object) -> str:
    if isinstance(item, Refused):
        return item.reason
    if not isinstance(item, dict):
        return "must be an object"
    return "none of the fields a conversation has"
