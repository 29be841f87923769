"""The rules every export reader reads a field by: text, names, times; a field that breaks one
makes the conversation `Broken`."""

import math
from datetime import UTC, datetime

from service.imports.model import Broken
from service.rules import MODEL_MAX, NAME_MAX, ROLES, SOURCE_ID_MAX, TITLE_MAX, UNTITLED, storable


def title_of(value: object) -> str:
    if value is None:
        return UNTITLED
    if not isinstance(value, str):
        raise Broken("`title` must be a string")
    return text_of(value, "`title`").strip()[:TITLE_MAX].strip() or UNTITLED


def text_of(value: str, where: str) -> str:
    try:
        return storable(value)
    except ValueError as error:
        raise Broken(f"{where} {error}") from None


def role_of(value: object) -> str | None:
    return value if value in ROLES else None


def short(value: object, limit: int) -> str | None:
    """A name, model or id as stored: a non-empty string within `limit`, else nothing."""
    if isinstance(value, str) and 0 < len(value) <= limit:
        try:
            return storable(value)
        except ValueError:
            return None
    return None


def name_of(value: object) -> str | None:
    return short(value, NAME_MAX)


def model_of(value: object) -> str | None:
    return short(value, MODEL_MAX)


def source_id_of(value: object) -> str | None:
    return short(value, SOURCE_ID_MAX)


def unix_time(value: object, where: str) -> datetime | None:
    """Seconds since 1970 (values past the year 5138 are read as milliseconds)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Broken(f"{where} must be a Unix time")
    if abs(value) >= 1e11:
        value = value / 1000
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise Broken(f"{where} is out of range") from None


def iso_time(value: object, where: str) -> datetime | None:
    """An ISO 8601 time; one without an offset is UTC."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise Broken(f"{where} must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Broken(f"{where} must be an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
