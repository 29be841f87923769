"""The Open WebUI reader on files shaped as Open WebUI writes them. "Export All Chats" is a list of
`{id, title, created_at (seconds), chat: {title, models, history: {currentId, messages}, messages,
timestamp (milliseconds)}}`; a chat downloaded alone is the chat object itself. A message is
`{id, parentId, childrenIds, role, content, timestamp (seconds), model}`."""

import json
from datetime import UTC, datetime

import pytest
from test_import_readers import read, shape, webui_chat, webui_message

from service.imports import ImportedConversation, SkippedConversation
from service.imports.stream import MAX_DEPTH

T0 = 1_700_000_000


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def one(export: list | dict) -> ImportedConversation:
    export_format, [imported] = read(export)
    assert export_format == "openwebui"
    return imported


def test_each_chat_of_an_export_keeps_its_id_title_and_times() -> None:
    first = webui_chat([webui_message("u", None, "user", "hello", timestamp=T0 + 100)], "u", created_at=T0 + 10)
    first["chat"]["timestamp"] = (T0 + 5) * 1000  # the chat's own, in milliseconds: the export's `created_at` wins
    second = webui_chat(
        [webui_message("u", None, "user", "again", timestamp=T0 + 300)], "u", id="w2", title="Two", created_at=T0 + 200
    )
    export_format, conversations = read([first, second])
    assert export_format == "openwebui"
    assert [(c.source, c.source_id, c.title, c.created_at) for c in conversations] == [
        ("openwebui", "w1", "Open WebUI chat", at(T0 + 10)),
        ("openwebui", "w2", "Two", at(T0 + 200)),
    ]
    assert [c.messages[0].created_at for c in conversations] == [at(T0 + 100), at(T0 + 300)]


def test_a_chat_downloaded_alone_is_dated_by_its_timestamp_in_milliseconds() -> None:
    wrapped = webui_chat([webui_message("u", None, "user", "alone", timestamp=T0 + 100)], "u")
    alone = wrapped["chat"] | {"id": "solo", "timestamp": T0 * 1000 + 123_456}
    imported = one(alone)
    assert (imported.source_id, imported.title, imported.created_at) == ("solo", "inner title", at(T0 + 123.456))
    assert imported.messages[0].created_at == at(T0 + 100)


def test_a_chat_without_a_time_of_its_own_is_as_old_as_its_first_message() -> None:
    chat = webui_chat([webui_message("u", None, "user", "undated chat", timestamp=T0 + 100)], "u", created_at=None)
    assert one(chat).created_at == at(T0 + 100)


def test_an_export_item_without_an_id_takes_its_chats_id() -> None:
    for wrapper_id in ("", None):
        chat = webui_chat([webui_message("u", None, "user", "hi")], "u", id=wrapper_id)
        chat["chat"]["id"] = "inner-id"
        assert one([chat]).source_id == "inner-id"


@pytest.mark.parametrize(
    ("outer", "inner", "title"),
    [("", "inner title", "inner title"), (None, "  Trimmed  ", "Trimmed"), ("", "", "Untitled chat")],
)
def test_a_blank_export_title_falls_back_to_the_chats_then_to_untitled(outer: object, inner: str, title: str) -> None:
    chat = webui_chat([webui_message("u", None, "user", "hi")], "u", title=outer)
    chat["chat"]["title"] = inner
    assert one([chat]).title == title


def test_a_chat_without_history_is_read_as_a_line_in_its_order() -> None:
    # Older exports have only `chat.messages`; its messages carry Open WebUI's ids, which the line does not use.
    messages = [
        webui_message("q1", "q0", "user", "first", timestamp=T0 + 1),
        webui_message("r1", "q1", "assistant", "one", timestamp=T0 + 2),
        webui_message("r1b", "r1", "assistant", "   ", timestamp=T0 + 3),
        webui_message("q2", "r1b", "user", "second", timestamp=T0 + 4),
        webui_message("r2", "q2", "assistant", "two", timestamp=T0 + 5, model="llama2:13b"),
    ]
    for history in ({}, {"history": None}, {"history": []}):
        chat = {"title": "Old", "models": ["llama2"], "messages": messages} | history
        imported = one([{"id": "old", "title": "Old", "chat": chat, "created_at": T0}])
        assert shape(imported) == [
            ("#0", None, "user", "first"),
            ("#1", "#0", "assistant", "one"),
            ("#3", "#1", "user", "second"),
            ("#4", "#3", "assistant", "two"),
        ]
        assert [m.model for m in imported.messages] == [None, "llama2", None, "llama2:13b"]
        assert (imported.current_key, imported.skipped) == ("#4", 1)


def test_messages_not_kept_are_counted_and_their_replies_hang_from_the_nearest_kept_one() -> None:
    messages = [
        webui_message("u", None, "user", "question", timestamp=T0 + 1),
        webui_message("failed", "u", "assistant", None, timestamp=T0 + 2),
        webui_message("image", "failed", "user", [{"type": "image_url", "image_url": {"url": "data:"}}]),
        webui_message("odd", "image", "tool", "a role Open WebUI does not keep", timestamp=T0 + 3),
        webui_message("a", "odd", "assistant", "answer", timestamp=T0 + 4),
    ]
    imported = one([webui_chat(messages, "a")])
    assert shape(imported) == [("u", None, "user", "question"), ("a", "u", "assistant", "answer")]
    assert imported.skipped == 3


def test_the_text_parts_of_a_list_content_are_kept_joined_by_a_blank_line() -> None:
    content = [
        {"type": "text", "text": "Look at this:"},
        "not a part",
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}, "text": "not text either"},
        {"type": "text", "text": 42},
        {"type": "text", "text": "what is it?"},
    ]
    imported = one([webui_chat([webui_message("u", None, "user", content)], "u")])
    assert imported.messages[0].content == "Look at this:\n\nwhat is it?"


@pytest.mark.parametrize("models", [[], None, "llama3", [""], ["x" * 101]])
def test_an_answer_without_a_model_has_none_unless_the_chat_names_one(models: object) -> None:
    messages = [webui_message("u", None, "user", "hi"), webui_message("a", "u", "assistant", "hello")]
    chat = webui_chat(messages, "a")
    chat["chat"]["models"] = models
    assert [m.model for m in one([chat]).messages] == [None, None]


def test_an_answer_whose_model_is_unusable_takes_the_chats() -> None:
    messages = [webui_message("u", None, "user", "hi"), webui_message("a", "u", "assistant", "hello", model="m" * 101)]
    assert [m.model for m in one([webui_chat(messages, "a")]).messages] == [None, "llama3.1:latest"]


@pytest.mark.parametrize(("current", "shown"), [("regenerated-blank", "u"), ("deleted", "newer"), (None, "newer")])
def test_the_shown_message_is_current_or_its_kept_ancestor_or_the_newest_leaf(current: str | None, shown: str) -> None:
    messages = [
        webui_message("u", None, "user", "q", timestamp=T0),
        webui_message("newer", "u", "assistant", "newer answer", timestamp=T0 + 20),
        webui_message("older", "u", "assistant", "older answer", timestamp=T0 + 10),
        webui_message("regenerated-blank", "u", "assistant", "", timestamp=T0 + 30),
    ]
    assert one([webui_chat(messages, current)]).current_key == shown


def test_reasoning_and_tool_blocks_are_removed_wherever_they_are_and_other_details_kept() -> None:
    content = (
        'Before <DETAILS type="Reasoning" done="true" duration="3">\n<summary>Thought for 3 seconds</summary>\n'
        "&gt; 6 * 7\n</details>\n\nmiddle "
        '<details type="code_interpreter" done="true" output="42">\n<summary>Analyzed</summary>\n'
        "```python\nprint(6 * 7)\n```\n</details>  after "
        '<details type="other"><summary>kept</summary>x</details> end '
        '<details type="tool_calls" done="false"> still running'
    )
    imported = one([webui_chat([webui_message("a", None, "assistant", content)], "a")])
    assert imported.messages[0].content == (
        'Before middle after <details type="other"><summary>kept</summary>x</details> end '
        '<details type="tool_calls" done="false"> still running'
    )


def test_a_file_mixing_valid_and_broken_chats_keeps_the_valid_ones_and_says_why() -> None:
    def chat(source_id: str, *messages: dict, **fields: object) -> dict:
        return webui_chat(list(messages) or [webui_message("u", None, "user", "hi")], "u", id=source_id, **fields)

    line = chat("line")
    line["chat"] = {"history": None, "messages": {"u": webui_message("u", None, "user", "hi")}}
    listed = chat("listed")
    listed["chat"]["history"]["messages"] = [webui_message("u", None, "user", "hi")]
    not_a_message = chat("not-a-message")
    not_a_message["chat"]["history"]["messages"]["u"] = "hi"
    export = [
        chat("first"),
        listed,
        line,
        not_a_message,
        chat("number-parent", webui_message("u", 5, "user", "hi")),
        chat("orphan", webui_message("u", "gone", "user", "hi")),
        chat("nul", webui_message("u", None, "user", "a\x00b")),
        chat("bad-time", webui_message("u", None, "user", "hi", timestamp="yesterday")),
        chat("bad-created-at", created_at="2024-01-01"),
        {"id": "no-history", "chat": {"title": "x"}},
        7,
        chat("last"),
    ]
    export_format, conversations = read(export)
    assert export_format == "openwebui"
    assert [(c.index, c.source_id, c.reason) for c in conversations if isinstance(c, SkippedConversation)] == [
        (1, "listed", "`chat.history.messages` must be an object"),
        (2, "line", "`chat.messages` must be a list"),
        (3, "not-a-message", "message 'u' must be an object"),
        (4, "number-parent", "message 'u': `parentId` must be a message id"),
        (5, "orphan", "message 'u' has a parent that is not in the conversation"),
        (6, "nul", "message 'u': the text contains a NUL character"),
        (7, "bad-time", "message 'u': `timestamp` must be a Unix time"),
        (8, "bad-created-at", "`created_at` must be a Unix time"),
        (9, None, "not a openwebui conversation (none of the fields a conversation has)"),
        (10, None, "not a openwebui conversation (must be an object)"),
    ]
    assert [c.source_id for c in conversations if isinstance(c, ImportedConversation)] == ["first", "last"]


def test_a_chat_nested_too_deep_is_skipped_and_the_chats_after_it_are_read() -> None:
    first, last = (webui_chat([webui_message("u", None, "user", "kept")], "u", id=key) for key in ("first", "last"))
    deep = b'{"id": "deep", "chat": {"history": {"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}}}"
    body = b"[" + json.dumps(first).encode() + b", " + deep + b", " + json.dumps(last).encode() + b"]"
    export_format, [kept, skipped, after] = read(body)
    assert export_format == "openwebui"
    assert (kept.source_id, after.source_id) == ("first", "last")
    assert (skipped.index, skipped.reason) == (1, f"nested deeper than {MAX_DEPTH} levels")
