"""The top-level items of an export's JSON files (a ZIP's, or one bare file), parsed as they stream,
in bounded memory whatever the input: one item is built at a time, and an item deeper than
MAX_DEPTH or heavier than MAX_ITEM_BYTES is dropped as soon as it is, the rest of it read past
without being built."""

import lzma
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from sys import getsizeof
from typing import BinaryIO

import ijson

from config import MiB
from service.imports.model import ExportFormatError, ImportTooLarge

# A conversation's JSON nested deeper than this is refused. LibreChat's messagesTree nests two
# levels per message, so a long conversation is legitimately deep; the builder below does not
# recurse, so depth costs no more than the weight it is counted in.
MAX_DEPTH = 2048
# What one conversation may weigh once parsed (estimated Python objects); a heavier one is skipped.
MAX_ITEM_BYTES = 24 * MiB
# The longest string (as written, escapes included) and number the parser may hold: the JSON
# parser buffers a whole token before handing it over, so without a cap one string could take
# the whole upload's size in memory. No message the service stores is that long.
MAX_STRING_BYTES = 4 * MiB
MAX_NUMBER_CHARS = 64
# What is read at a time; well under MAX_STRING_BYTES, since a string within one chunk is not measured.
CHUNK = 64 * 1024
# The weight of an item: what its Python objects take, a little over. A string weighs its size
# plus SLOT_WEIGHT (its place in a list, or a dict's entry); a container or a number, true, false or
# null, these fixed amounts.
CONTAINER_WEIGHT, SCALAR_WEIGHT, SLOT_WEIGHT = 96, 48, 24
# Stands in, in the parsed stream, for a string over MAX_STRING_BYTES (a NUL: no text can keep it).
OVERLONG = "\x00overlong"
CONTAINER_EVENTS = frozenset(("start_map", "start_array", "end_map", "end_array"))
OVERLONG_JSON = b'"\\u0000overlong"'

# The conversations of an export: conversations.json, or conversations-000.json, ... (in whichever
# folder of the ZIP); conversations.json first, then the numbered files in order.
CONVERSATION_FILE = re.compile(r"(?:^|/)conversations(?:-(\d+))?\.json$")
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
# Only an escaped backslash or quote can hide where a string ends.
ESCAPE = re.compile(rb'\\[\\"]')
NUMBER_CHARS = b"-+.0123456789eE"
# Number characters as "N", every other byte as a space: a long number is then a long run of N.
AS_NUMBER_RUNS = bytes(ord("N") if byte in NUMBER_CHARS else ord(" ") for byte in range(256))
LONG_NUMBER = b"N" * (MAX_NUMBER_CHARS + 1)
BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class Refused:
    """An item left unbuilt; `reason` says why."""

    reason: str


def export_items(upload: BinaryIO, max_bytes: int) -> Iterator[object | Refused]:
    """The items of the upload's conversation files in order. `upload` must be seekable."""
    if upload.read(2) != b"PK":
        upload.seek(0)
        yield from json_items(upload, "the upload")
        return
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
                yield from json_items(budget.reader(member, entry.filename), entry.filename)


def conversation_entries(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The archive's conversation files; archives inside it are never opened."""
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


class TokenGuard:
    """The JSON bytes of `stream` as they are, but for what the parser would buffer without
    bound: a string over MAX_STRING_BYTES becomes OVERLONG, a number over MAX_NUMBER_CHARS is
    refused. A leading byte-order mark is dropped. An open string is held back (at most
    MAX_STRING_BYTES) until it closes, so that it can still be replaced."""

    def __init__(self, stream: BinaryIO | BudgetedReader, source: str) -> None:
        self.stream = stream
        self.source = source
        self.started = False
        self.in_string = False
        self.escaped = False  # the previous chunk ended inside an escape (a backslash)
        self.held = bytearray()  # the open string, from its quote
        self.dropping = False  # inside a string already over the limit
        self.number_tail = 0  # number characters at the end of what was passed on

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        while True:
            chunk = self.stream.read(CHUNK)
            if not self.started:
                self.started = True
                chunk = chunk.removeprefix(BOM)
            if not chunk:
                rest = bytes(self.held)  # an unterminated string: the parser reports it
                self.held.clear()
                return rest
            passed = self.scan(chunk)
            if passed:
                return passed

    def scan(self, chunk: bytes) -> bytes:
        # Same-length copy of the chunk where escapes are blanked: every quote left delimits a string.
        neutral = ESCAPE.sub(b"__", b"_" + chunk[1:] if self.escaped else chunk)
        self.escaped = neutral.endswith(b"\\")
        out = bytearray()
        start = 0
        if self.in_string:
            close = neutral.find(b'"')
            if close < 0:
                self.hold(chunk)
                return b""
            if self.dropping or len(self.held) - 1 + close > MAX_STRING_BYTES:
                out += OVERLONG_JSON
                self.dropping = False
            else:
                out += self.held
                out += chunk[: close + 1]
            self.held.clear()
            self.in_string = False
            self.number_tail = 0
            start = close + 1
        quotes = neutral.count(b'"', start)
        end = len(chunk)
        if quotes % 2:
            end = neutral.rfind(b'"')
            self.in_string = True
        self.check_numbers(neutral, start, end)
        out += chunk[start:end]
        if self.in_string:
            self.hold(chunk[end:])
        return bytes(out)

    def hold(self, part: bytes) -> None:
        if self.dropping:
            return
        self.held += part
        if len(self.held) - 1 > MAX_STRING_BYTES:  # the held string starts with its quote
            self.held.clear()
            self.dropping = True

    def check_numbers(self, neutral: bytes, start: int, end: int) -> None:
        """A number token longer than MAX_NUMBER_CHARS, outside strings, is refused."""
        lead = end - start - len(neutral[start:end].lstrip(NUMBER_CHARS))
        if lead == end - start:
            self.number_tail += lead
            if self.number_tail > MAX_NUMBER_CHARS:
                raise ExportFormatError(f"{self.source}: a number of more than {MAX_NUMBER_CHARS} characters")
            return
        if self.number_tail + lead > MAX_NUMBER_CHARS:
            raise ExportFormatError(f"{self.source}: a number of more than {MAX_NUMBER_CHARS} characters")
        outside = neutral[start:end]
        if LONG_NUMBER in outside.translate(AS_NUMBER_RUNS) and any(
            LONG_NUMBER in part.translate(AS_NUMBER_RUNS) for part in outside.split(b'"')[::2]
        ):
            raise ExportFormatError(f"{self.source}: a number of more than {MAX_NUMBER_CHARS} characters")
        # (When a string opens at `end`, its close sets number_tail to 0.)
        self.number_tail = len(outside) - len(outside.rstrip(NUMBER_CHARS))


def json_items(stream: BinaryIO | BudgetedReader, source: str) -> Iterator[object | Refused]:
    """The items of a JSON list, or the one object a file holds, built one at a time."""
    index = -1
    try:
        events = ijson.basic_parse(TokenGuard(stream, source), use_float=True)
        first = next(events, (None, None))
        if first[0] == "start_map":
            index = 0
            yield build(first, events, 0)
            for _ in events:  # nothing may follow it but whitespace; the parser checks
                pass
            return
        if first[0] != "start_array":
            raise ExportFormatError(f"{source}: must be a JSON list of conversations, or one conversation")
        for event in events:
            if event[0] == "end_array":
                break
            index += 1
            yield build(event, events, 1)
        for _ in events:  # nothing may follow the list but whitespace; the parser checks
            pass
    except ijson.JSONError as error:
        where = "" if index < 0 else f" after conversation {index}"
        raise ExportFormatError(f"{source}: invalid JSON{where}: {json_error(error)}") from None


def json_error(error: Exception) -> str:
    # The parser's message goes on to quote the input around the error: keep only its first
    # line. Some of yajl's come as the repr of bytes (b'...'), their line breaks escaped.
    text = str(error)
    if text.startswith(("b'", 'b"')):
        text = text[2:].replace("\\n", "\n")
    lines = text.splitlines()
    return lines[0] if lines else type(error).__name__


def build(first: tuple[str, object], events: Iterator[tuple[str, object]], depth: int) -> object | Refused:
    """The value that starts with event `first` (at `depth`), built without recursion, or Refused
    (its events then consumed with nothing kept) when it is too deep or too heavy."""
    event, value = first
    if event == "start_map":
        root: object = {}
    elif event == "start_array":
        root = []
    else:
        return Refused(f"holds a text of more than {MAX_STRING_BYTES // MiB} MiB") if value == OVERLONG else value
    stack: list = [root]
    top, key = root, None
    weight = CONTAINER_WEIGHT
    # The branches go from the most frequent event to the least; every value checks the weight.
    for event, value in events:
        if event == "map_key":
            key = value
            weight += getsizeof(value) + SLOT_WEIGHT
        elif event not in CONTAINER_EVENTS:  # a string, number, true, false or null
            if event != "string":
                weight += SCALAR_WEIGHT
            elif value == OVERLONG:
                return refused(events, len(stack), f"holds a text of more than {MAX_STRING_BYTES // MiB} MiB")
            else:
                weight += getsizeof(value) + SLOT_WEIGHT
            if key is None:
                top.append(value)
            else:
                top[key] = value
            if weight > MAX_ITEM_BYTES:
                return refused(events, len(stack), f"larger than {MAX_ITEM_BYTES // MiB} MiB once read")
        elif event == "start_map" or event == "start_array":
            child: dict | list = {} if event == "start_map" else []
            if key is None:
                top.append(child)
            else:
                top[key] = child
            stack.append(child)
            top, key = child, None
            weight += CONTAINER_WEIGHT
            if depth + len(stack) > MAX_DEPTH:
                return refused(events, len(stack), f"nested deeper than {MAX_DEPTH} levels")
            if weight > MAX_ITEM_BYTES:
                return refused(events, len(stack), f"larger than {MAX_ITEM_BYTES // MiB} MiB once read")
        else:  # end_map or end_array
            stack.pop()
            if not stack:
                return root
            # In an object, a key comes next (or its end), so the key need not be kept.
            top, key = stack[-1], None
    return root  # the parser ends the stream on an error before this


def refused(events: Iterator[tuple[str, object]], depth: int, reason: str) -> Refused:
    """Refused(reason), once the rest of the value (`depth` levels open) has gone by."""
    for event, _ in events:
        if event == "start_map" or event == "start_array":
            depth += 1
        elif event == "end_map" or event == "end_array":
            depth -= 1
            if depth == 0:
                break
    return Refused(reason)
