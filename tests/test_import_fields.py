"""The rules a field is read by, shared by the readers (`service/imports/fields.py`), where no
reader's own tests show them: ISO 8601 times, as Claude and LibreChat write them."""

from datetime import UTC, datetime

import pytest
from test_import_readers import claude_message, read

from service.imports import ImportedConversation, SkippedConversation

LONGEST = "2025-01-02T03:04:05." + "1" * 38 + "+00:00"  # 64 characters: the longest time read


def claude_conversation(created_at: object) -> dict:
    message = claude_message("h", "human", [{"type": "text", "text": "hi"}])
    return {"uuid": "c", "name": "Times", "created_at": created_at, "chat_messages": [message]}


@pytest.mark.parametrize(
    ("created_at", "moment"),
    [
        ("2025-01-02T05:04:05+02:00", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-01-02T03:04:05", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (LONGEST, datetime(2025, 1, 2, 3, 4, 5, 111111, tzinfo=UTC)),
    ],
)
def test_an_iso_time_is_read_at_its_offset_or_else_as_utc(created_at: str, moment: datetime) -> None:
    _, [imported] = read([claude_conversation(created_at)])
    assert isinstance(imported, ImportedConversation) and imported.created_at == moment


@pytest.mark.parametrize("created_at", [1_735_787_045, "yesterday", LONGEST[:-6] + "1+00:00"])
def test_a_time_that_is_not_an_iso_string_of_at_most_64_characters_skips_its_conversation(created_at: object) -> None:
    _, [skipped] = read([claude_conversation(created_at)])
    assert isinstance(skipped, SkippedConversation)
    assert (skipped.source_id, skipped.reason) == ("c", "`created_at` must be an ISO 8601 time")
