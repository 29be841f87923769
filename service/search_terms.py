"""A search query's words and a hit's snippet: the part of search that is not SQL.

A query is parsed here into plain words, never handed to the database's own query
language, so no input can be a syntax error there. Words match whole words, any case;
CJK text has no spaces between words, so it matches as a substring."""

import html
import re
from dataclasses import dataclass

from service.rules import MAX_ID

# As in migration 0003: the CJK characters.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"

MAX_TERMS = 16
MIN_PREFIX = 3  # a shorter prefix would match a large part of the vocabulary
SNIPPET_CHARS = 160

TOKENS = re.compile(r'"([^"]*)"?|([^\s"]+)')
PIECES = re.compile(rf"[{CJK}]+|[^\W_{CJK}]+")
IS_CJK = re.compile(rf"[{CJK}]")
CURSOR = re.compile(r"([cm])([1-9][0-9]{0,18})")


@dataclass(frozen=True)
class Terms:
    phrases: tuple[tuple[str, ...], ...]  # lower-cased words in order; most are a phrase of one
    prefixes: tuple[str, ...]
    cjk: tuple[str, ...]

    def pattern(self) -> re.Pattern[str]:
        """Where the terms occur in a text, for the snippet."""
        word, end = r"(?<![^\W_])", r"(?![^\W_])"
        words = {w for phrase in self.phrases for w in phrase}
        alternatives = (
            [word + re.escape(w) + end for w in words]
            + [word + re.escape(p) + r"[^\W_]*" for p in self.prefixes]
            + [re.escape(t) for t in self.cjk]
        )
        return re.compile("|".join(sorted(alternatives, key=len, reverse=True)), re.IGNORECASE)


def parse(q: str) -> Terms:
    """The words of a query; ValueError if it has none, or too many."""
    phrases: dict[tuple[str, ...], None] = {}
    prefixes: dict[str, None] = {}
    cjk: dict[str, None] = {}
    for match in TOKENS.finditer(q):
        quoted, bare = match.groups()
        pieces = PIECES.findall(quoted if quoted is not None else bare)
        words = [piece.lower() for piece in pieces if not IS_CJK.match(piece)]
        cjk.update(dict.fromkeys(piece for piece in pieces if IS_CJK.match(piece)))
        prefix = bare is not None and bare.endswith("*") and pieces and not IS_CJK.match(pieces[-1])
        if prefix and len(words[-1]) >= MIN_PREFIX:
            prefixes[words.pop()] = None
        if words:
            phrases[tuple(words)] = None
    if not (phrases or prefixes or cjk):
        raise ValueError("The query has no words to search for")
    if sum(map(len, phrases)) + len(prefixes) + len(cjk) > MAX_TERMS:
        raise ValueError(f"The query has too many words (at most {MAX_TERMS})")
    return Terms(tuple(phrases), tuple(prefixes), tuple(cjk))


def parse_cursor(after: str) -> tuple[str, int]:
    """("c", chat id) or ("m", message id) from a result's id; ValueError if it is not one."""
    match = CURSOR.fullmatch(after)
    if match is None or int(match[2]) > MAX_ID:
        raise ValueError("after must be the id of a search result, such as m123 or c45")
    return match[1], int(match[2])


def snippet(text: str, pattern: re.Pattern[str]) -> str:
    """Up to SNIPPET_CHARS of text around the first match, HTML-escaped, matches in <mark>."""
    first = pattern.search(text)
    start = max(0, first.start() - SNIPPET_CHARS // 4) if first else 0
    end = min(len(text), start + SNIPPET_CHARS)
    parts, position = [], start
    for match in pattern.finditer(text, start, end):
        parts += [html.escape(text[position : match.start()]), f"<mark>{html.escape(match[0])}</mark>"]
        position = match.end()
    parts.append(html.escape(text[position:end]))
    return ("…" if start else "") + "".join(parts) + ("…" if end < len(text) else "")
