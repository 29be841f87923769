"""The rules a field is read by, shared by the readers (`service/imports/fields.py`), where no
reader's own tests show them (ISO 8601 and Unix times, names, titles), and how an export's
first items tell its format (`read_export`)."""

from datetime import UTC, datetime

import pytest
from test_import_readers import chatgpt_conversation, chatgpt_node, claude_message, read, text

from service.imports import LOOK_AHEAD, ExportFormatError, ImportedConversation, SkippedConversation
from service.rules import MODEL_MAX, NAME_MAX

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


def chatgpt_export(**fields: object) -> list[dict]:
    node = chatgpt_node("u", "root", "assistant", text("hi"), metadata=fields.pop("metadata", {}))
    node["message"]["author"]["name"] = fields.pop("name", None)
    return [chatgpt_conversation([node], "u", **fields)]


@pytest.mark.parametrize(
    ("seconds", "moment"),
    [
        (99_999_999_999, datetime(5138, 11, 16, 9, 46, 39, tzinfo=UTC)),  # the last time read as seconds
        (100_000_000_000, datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),  # and the first read as milliseconds
    ],
)
def test_a_unix_time_from_1e11_on_is_read_as_milliseconds(seconds: int, moment: datetime) -> None:
    _, [imported] = read(chatgpt_export(create_time=seconds))
    assert isinstance(imported, ImportedConversation) and imported.created_at == moment


def test_a_model_or_author_name_is_kept_up_to_its_limit_and_dropped_past_it() -> None:
    for length, kept in ((MODEL_MAX, True), (MODEL_MAX + 1, False)):
        _, [imported] = read(chatgpt_export(metadata={"model_slug": "m" * length}))
        assert imported.messages[0].model == ("m" * length if kept else None)
    for length, kept in ((NAME_MAX, True), (NAME_MAX + 1, False)):
        _, [imported] = read(chatgpt_export(name="n" * length))
        assert imported.messages[0].name == ("n" * length if kept else None)


def test_a_title_that_cannot_be_stored_skips_its_conversation_and_says_why() -> None:
    _, [skipped] = read(chatgpt_export(title="a\x00b"))
    assert isinstance(skipped, SkippedConversation)
    assert (skipped.source_id, skipped.reason) == ("c", "`title` contains a NUL character")


def test_items_before_the_first_conversation_are_reported_skipped_up_to_the_look_ahead() -> None:
    [good] = chatgpt_export()
    export_format, conversations = read([7, "x", good])
    assert export_format == "chatgpt"
    assert [(c.index, c.source_id, c.reason) for c in conversations if isinstance(c, SkippedConversation)] == [
        (0, None, "must be an object"),
        (1, None, "must be an object"),
    ]
    assert [c.source_id for c in conversations if isinstance(c, ImportedConversation)] == ["c"]

    _, conversations = read([7] * (LOOK_AHEAD - 1) + [good])
    assert [isinstance(c, SkippedConversation) for c in conversations] == [True] * (LOOK_AHEAD - 1) + [False]
    # A conversation only after LOOK_AHEAD items that are none: not an export.
    with pytest.raises(ExportFormatError, match=r"no conversation in the shape .* \(must be an object, first item\)"):
        read([7] * LOOK_AHEAD + [good])


def test_an_export_with_no_conversation_at_all_is_the_empty_format() -> None:
    assert read([]) == ("empty", [])
