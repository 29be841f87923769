"""Every limit and enum of the domain, defined once: models, schemas, importers and the
documentation read them from here."""

from contextvars import ContextVar

ROLES = ("system", "user", "assistant")

TITLE_MAX = 200
USERNAME_MIN, USERNAME_MAX = 3, 50
USERNAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
PASSWORD_MIN, PASSWORD_MAX = 8, 128
EMAIL_MAX = 320
NAME_MAX = 64
MODEL_MAX = 100
METADATA_KEYS_MAX = 16
METADATA_KEY_MAX = 64
METADATA_VALUE_MAX = 512
SOURCE_ID_MAX = 512
BATCH_MAX = 1000
PAGE_MAX = 100

# Ids are 64-bit; anything larger cannot name a row and is refused as invalid input.
MAX_ID = 2**63 - 1
ID_PATTERN = r"^[0-9]{1,19}$"

UNTITLED = "Untitled chat"

# Sync: what a change names, and what happened to it.
CHANGE_KINDS = ("chat", "message")
CHANGE_TYPES = ("created", "updated", "deleted")
# API keys: what a key may do; a key is KEY_PREFIX and a secret, and listed by its first KEY_SHOWN characters.
SCOPES = ("read", "write")
KEY_PREFIX = "chk_"
KEY_SHOWN = 12
KEYS_MAX = 100
# Bulk actions on chats.
BULK_ACTIONS = ("archive", "unarchive", "pin", "unpin", "trash", "restore", "delete")
# How many skipped conversations an import's answer lists (it counts them all).
SKIPPED_LISTED = 100

# The largest message content in UTF-8 bytes: a setting (MAX_CONTENT_BYTES), which the
# app's request-limits middleware puts here for the request it serves.
content_limit: ContextVar[int] = ContextVar("content_limit", default=1024 * 1024)


def storable(text: str) -> str:
    """`text`, if every database can keep it; ValueError if not.

    PostgreSQL cannot store NUL in text and no database can store a lone surrogate:
    refusing both everywhere keeps every backend alike."""
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (a lone surrogate)") from None
    return text


def is_id(value: object, low: int = 1) -> bool:
    return type(value) is int and low <= value <= MAX_ID
