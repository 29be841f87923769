"""Conditional requests: a chat's or message's version is its ETag; `If-Match` makes a change
only if what it changes is still at that version, `If-None-Match` answers 304 when a read
would show nothing new."""

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Header, Response

IfMatch = Annotated[
    str | None,
    Header(max_length=1000, description='Only if the object is still at this version: its ETag, e.g. `"3"`'),
]
IfNoneMatch = Annotated[
    str | None, Header(max_length=1000, description="304 if the object is still at this version (its ETag)")
]


def etag(version: int) -> str:
    """A strong ETag: a chat's or message's version, raised by every change to what it shows."""
    return f'"{version}"'


def versions(header: str | None, weak: bool = False) -> frozenset[int] | None:
    """The versions an If-Match (or If-None-Match, `weak`) header names; None for none
    sent or `*` (any version). A tag that is no version of ours matches nothing."""
    if header is None or header.strip() == "*":
        return None
    found = set()
    for tag in header.split(","):
        tag = tag.strip()
        if weak and tag.startswith("W/"):
            tag = tag[2:]
        digits = tag[1:-1] if len(tag) > 2 and tag[0] == tag[-1] == '"' else ""
        if digits.isascii() and digits.isdigit() and len(digits) <= 19:
            found.add(int(digits))
    return frozenset(found)


def not_modified(header: str | None, version: int) -> bool:
    if header is None:
        return False
    wanted = versions(header, weak=True)
    return wanted is None or version in wanted


def tagged(response: Response, row: Mapping[str, Any]) -> Mapping[str, Any]:
    """`row`, a chat or message just written, with its version set as the answer's ETag."""
    response.headers["ETag"] = etag(row["version"])
    return row


class Versioned:
    """A change `If-Match` can make conditional: the versions it may change (`expected`;
    None for any), and the answer's ETag set from what it wrote (`tagged`)."""

    def __init__(self, response: Response, if_match: IfMatch = None) -> None:
        self.response = response
        self.expected = versions(if_match)

    def tagged(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        return tagged(self.response, row)


VersionedDep = Annotated[Versioned, Depends()]
