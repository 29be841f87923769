"""What each reader keeps of a LibreChat, Claude or ChatGPT export, field by field: the text and
what is skipped (and counted), parents and branches, times, names and models, the shown leaf, and
the reason a conversation that cannot be read is skipped with."""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from test_import_readers import (
    ZERO,
    chatgpt_conversation,
    chatgpt_node,
    claude_message,
    libre_message,
    read,
    shape,
    text,
)

from service.imports import ExportFormatError, ImportedConversation, current_path


def one(item: dict) -> ImportedConversation:
    """The conversation read from an export holding only `item`."""
    _, [conversation] = read([item])
    assert isinstance(conversation, ImportedConversation), conversation
    return conversation


def reason(item: dict) -> str:
    """Why an export holding only `item` skips it."""
    _, [skipped] = read([item])
    return skipped.reason


# --- LibreChat


def libre(messages: list, **fields: object) -> dict:
    return {"conversationId": "lc", "endpoint": "openAI", "title": "Venv", "messages": messages} | fields


def test_a_librechat_export_is_told_by_its_messages_and_its_id_or_endpoint() -> None:
    first = [libre_message("m1", ZERO, True, "hello")]
    for item in ({"endpoint": "openAI", "messages": first}, {"conversationId": "lc", "messagesTree": first}):
        export_format, [imported] = read(item)
        assert (export_format, imported.source) == ("librechat", "librechat")
        assert shape(imported) == [("m1", None, "user", "hello")]
    assert read({"endpoint": "openAI", "messages": first})[1][0].source_id is None
    for item in ({"messages": first}, {"conversationId": "lc", "endpoint": "openAI", "title": "no messages"}):
        with pytest.raises(ExportFormatError):
            read(item)


def test_librechat_reads_the_messages_tree_of_a_recursive_export_by_its_nesting() -> None:
    answer = libre_message("a", "q", False, "the answer", children=[])
    retry = libre_message("b", "q", False, "another answer", children=[], createdAt="2024-05-01T16:36:00Z")
    tree = [libre_message("q", ZERO, True, "a question", children=[answer, retry])]
    for item in (libre([], messagesTree=tree, recursive=True), libre(tree, recursive=True)):
        imported = one(item)
        assert shape(imported) == [
            ("q", None, "user", "a question"),
            ("a", "q", "assistant", "the answer"),
            ("b", "q", "assistant", "another answer"),
        ]
        assert imported.current_key == "b"
    # Not recursive: the same list is flat, its replies in `children` are not read.
    assert shape(one(libre(tree, recursive=False))) == [("q", None, "user", "a question")]


def test_librechat_roles_come_from_is_created_by_user_not_the_sender() -> None:
    imported = one(
        libre(
            [
                libre_message("m1", ZERO, True, "from me", sender="GPT-4"),
                libre_message("m2", "m1", False, "from it", sender="User"),
                {"messageId": "m3", "parentMessageId": "m2", "text": "no flag at all"},
            ]
        )
    )
    assert [m.role for m in imported.messages] == ["user", "assistant", "assistant"]
    assert [m.name for m in imported.messages] == [None, None, None]


def test_librechat_text_falls_back_to_the_text_parts_of_its_content() -> None:
    parts = [
        {"type": "think", "think": "let me think"},
        {"type": "text", "text": "first part"},
        {"type": "text", "text": "   "},
        {"type": "tool_call", "tool_call": {"name": "search"}},
        {"type": "error", "text": "An error occurred while processing the request."},
        {"type": "text", "text": {"value": "an older part"}},
        {"type": "text"},
        None,  # LibreChat's own export skips null parts
    ]
    imported = one(
        libre(
            [
                libre_message("m1", ZERO, True, "  spaced question  "),
                libre_message("m2", "m1", False, " \n", content=parts),
                libre_message("m3", "m2", True, "text wins", content=[{"type": "text", "text": "not this"}]),
                libre_message("m4", "m3", False, "", content=[{"type": "think", "think": "only thinking"}]),
                libre_message("m5", "m4", False, "", content="not a list"),
            ]
        )
    )
    assert shape(imported) == [
        ("m1", None, "user", "  spaced question  "),
        ("m2", "m1", "assistant", "first part\n\nan older part"),
        ("m3", "m2", "user", "text wins"),
    ]
    # The parts left out of a message are counted (m2's five, m4's one), or, when none were,
    # the message itself (m5).
    assert imported.skipped == 5 + 1 + 1


def test_librechat_error_and_blank_messages_are_skipped_and_counted_once_each() -> None:
    imported = one(
        libre(
            [
                libre_message("m1", ZERO, True, "question"),
                libre_message("m2", "m1", False, "An error occurred.", error=True),
                libre_message("m3", "m1", False, "fine", error=False),
                libre_message("m4", "m3", True, ""),
            ]
        )
    )
    assert shape(imported) == [("m1", None, "user", "question"), ("m3", "m1", "assistant", "fine")]
    assert imported.skipped == 2


def test_librechat_models_come_from_the_message_or_the_conversation_options() -> None:
    messages = [
        libre_message("m1", ZERO, True, "question", model="gpt-4o"),
        libre_message("m2", "m1", False, "named", model="o3-mini"),
        libre_message("m3", "m1", False, "unnamed"),
        libre_message("m4", "m1", False, "too long a name", model="m" * 101),
    ]
    models = [m.model for m in one(libre(messages, options={"model": "gpt-4-turbo"})).messages]
    assert models == ["gpt-4o", "o3-mini", "gpt-4-turbo", "gpt-4-turbo"]
    assert [m.model for m in one(libre(messages, options="gpt-4-turbo")).messages] == ["gpt-4o", "o3-mini", None, None]
    assert [m.model for m in one(libre(messages)).messages] == ["gpt-4o", "o3-mini", None, None]


def test_librechat_times_titles_and_the_newest_leaf() -> None:
    messages = [
        libre_message("m1", ZERO, True, "question", createdAt="2024-05-01T16:35:11.530Z"),
        libre_message("m2", "m1", False, "late answer", createdAt="2024-05-03T09:00:00"),
        libre_message("m3", "m1", False, "early answer", createdAt="2024-05-02T09:00:00+02:00"),
    ]
    imported = one(libre(messages, title=""))
    assert imported.title == "Untitled chat"
    assert imported.created_at == datetime(2024, 5, 1, 16, 35, 11, 530000, UTC)  # the first message's
    assert [m.created_at for m in imported.messages[1:]] == [
        datetime(2024, 5, 3, 9, tzinfo=UTC),  # no offset: UTC
        datetime(2024, 5, 2, 7, tzinfo=UTC),
    ]
    assert imported.current_key == "m2"
    dated = one(libre(messages, createdAt="2024-04-30T00:00:00Z", title="  Venv  "))
    assert (dated.created_at, dated.title) == (datetime(2024, 4, 30, tzinfo=UTC), "Venv")
    assert shape(one(libre([libre_message("m1", None, True, "q")])))[0][1] is None


@pytest.mark.parametrize(
    ("item", "why"),
    [
        (libre("not a list"), "`messages` must be a list"),
        (libre([], messagesTree={"q": {}}), "`messages` must be a list"),
        (libre([libre_message("m1", ZERO, True, "ok"), "text"]), "message 1 must be an object"),
        (libre([{"parentMessageId": ZERO, "text": "no id"}]), "message 0: `messageId` is missing"),
        (libre([libre_message("", ZERO, True, "empty id")]), "message 0: `messageId` is missing"),
        (libre([libre_message("m1", 7, True, "numbered")]), "message 'm1': `parentMessageId` must be a message id"),
        (libre([libre_message("m1", ZERO, True, "a\x00b")]), "message 'm1': the text contains a NUL character"),
        (
            libre([libre_message("m1", ZERO, True, "x", createdAt="May 1")]),
            "message 'm1': `createdAt` must be an ISO 8601 time",
        ),
        (libre([libre_message("m1", ZERO, True, "x")], createdAt=1714581311), "`createdAt` must be an ISO 8601 time"),
        (libre([libre_message("m1", ZERO, True, "x", children={})], recursive=True), "`children` must be a list"),
        (libre([libre_message("m1", ZERO, True, "x")], title=7), "`title` must be a string"),
    ],
)
def test_a_librechat_conversation_that_cannot_be_read_is_skipped_with_its_reason(item: dict, why: str) -> None:
    assert reason(item) == why


def test_librechat_skips_a_conversation_whose_part_holds_a_nul_character() -> None:
    parts = [{"type": "text", "text": "a\x00b"}]
    assert reason(libre([libre_message("m1", ZERO, True, "", content=parts)])) == (
        "message 'm1': the text contains a NUL character"
    )


# --- Claude


def claude(messages: list, **fields: object) -> dict:
    return {"uuid": "cl", "name": "Plans", "created_at": "2025-01-02T03:04:00Z", "chat_messages": messages} | fields


def test_claude_text_comes_from_text_blocks_else_the_message_text() -> None:
    imported = one(
        claude(
            [
                claude_message("h1", "human", [], text="from the text field"),
                claude_message(
                    "a1",
                    "assistant",
                    [{"type": "text", "text": "kept"}, {"type": "text", "text": " "}, {"type": "text", "text": 5}],
                    text="not read when there are blocks",
                ),
                claude_message("h2", "human", [{"type": "text", "text": "again"}], text="ignored"),
                claude_message("a2", "assistant", None, text="no content list"),
                claude_message("a3", "assistant", [], text=None),
                claude_message("a4", "assistant", ["a string block", {"type": "image"}]),
            ]
        )
    )
    assert [(m.key, m.parent_key, m.content) for m in imported.messages] == [
        ("h1", None, "from the text field"),
        ("a1", "h1", "kept"),
        ("h2", "a1", "again"),
        ("a2", "h2", "no content list"),
    ]
    # a1 left out one block; a3 has no text; a4 left out two blocks.
    assert imported.skipped == 1 + 1 + 2


def test_claude_roles_times_and_keys_of_an_older_export() -> None:
    imported = one(
        claude(
            [
                {"sender": "human", "text": "no uuid", "created_at": "2024-05-01T10:00:00"},
                {"uuid": "", "sender": "assistant", "text": "empty uuid", "created_at": "2024-05-01T10:00:01+01:00"},
                {"uuid": "s", "sender": "system", "text": "an unknown sender"},
                {"uuid": "r", "sender": "assistant", "text": "after it"},
            ],
            created_at=None,
            name=None,
        )
    )
    assert shape(imported) == [
        ("#0", None, "user", "no uuid"),
        ("#1", "#0", "assistant", "empty uuid"),
        ("r", "#1", "assistant", "after it"),
    ]
    assert [m.created_at for m in imported.messages] == [
        datetime(2024, 5, 1, 10, tzinfo=UTC),
        datetime(2024, 5, 1, 9, 0, 1, tzinfo=UTC),
        None,
    ]
    assert imported.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)  # the first message's
    # What the chat's metadata names: {"source": "claude", "claude_id": "cl"}.
    assert (imported.source, imported.source_id) == ("claude", "cl")
    assert (imported.title, imported.skipped) == ("Untitled chat", 1)
    assert [m.model for m in imported.messages] == [None, None, None]


def test_claude_parents_make_branches_and_a_null_parent_a_root() -> None:
    blocks = [{"type": "text", "text": "x"}]
    imported = one(
        claude(
            [
                claude_message("h1", "human", blocks, created_at="2025-01-02T03:04:05Z"),
                claude_message("a1", "assistant", blocks, "h1", created_at="2025-01-02T03:04:09Z"),
                claude_message("h2", "human", blocks, None, parent_message_uuid=None),
                claude_message("a2", "assistant", blocks, "h1", created_at="2025-01-02T03:04:06Z"),
            ]
        )
    )
    assert [(m.key, m.parent_key) for m in imported.messages] == [
        ("h1", None),
        ("a1", "h1"),
        ("a2", "h1"),
        ("h2", None),
    ]
    assert imported.current_key == "a1"  # the newest leaf
    assert [m.key for m in current_path(imported)] == ["h1", "a1"]
    assert (imported.title, imported.created_at) == ("Plans", datetime(2025, 1, 2, 3, 4, tzinfo=UTC))


@pytest.mark.parametrize(
    ("item", "why"),
    [
        (claude("not a list"), "`chat_messages` must be a list"),
        (claude([claude_message("h", "human", [], text="ok"), None]), "message 1 must be an object"),
        (
            claude([claude_message("h", "human", [], text="x", parent_message_uuid=3)]),
            "message 'h': `parent_message_uuid` must be a message id",
        ),
        (
            claude([{"sender": "human", "text": "x", "created_at": "yesterday"}]),
            "message '#0': `created_at` must be an ISO 8601 time",
        ),
        (
            claude([claude_message("h", "human", [{"type": "text", "text": "\x00"}])]),
            "message 'h': the text contains a NUL character",
        ),
        (claude([claude_message("h", "human", [], text="x")], created_at=0), "`created_at` must be an ISO 8601 time"),
        (claude([claude_message("h", "human", [], text="x")], name=["a"]), "`title` must be a string"),
    ],
)
def test_a_claude_conversation_that_cannot_be_read_is_skipped_with_its_reason(item: dict, why: str) -> None:
    assert reason(item) == why


def test_a_skipped_claude_conversation_is_named_by_its_uuid() -> None:
    _, [skipped] = read([claude("not a list", uuid="conv-9")])
    assert skipped.source_id == "conv-9"


# --- ChatGPT


def test_chatgpt_conversation_id_names_the_conversation_before_its_id() -> None:
    node = chatgpt_node("u", "root", "user", text("hi"))
    imported = one(chatgpt_conversation([node], "u", conversation_id="conv-1"))
    assert (imported.source, imported.source_id) == ("chatgpt", "conv-1")
    assert one(chatgpt_conversation([node], "u", conversation_id=None)).source_id == "c"
    assert one(chatgpt_conversation([node], "u", id=None)).source_id is None


def test_chatgpt_without_a_current_node_shows_the_newest_leaf_an_undated_one_oldest() -> None:
    question = chatgpt_node("q", "root", "user", text("question"))
    dated = chatgpt_node("dated", "q", "assistant", text("dated answer"))
    undated = chatgpt_node("undated", "q", "assistant", text("undated answer"))
    undated["message"]["create_time"] = None
    for answers in ([dated, undated], [undated, dated]):
        conversation = one(chatgpt_conversation([question, *answers], None))
        assert [m.key for m in conversation.messages if m.created_at is None] == ["undated"]
        assert conversation.current_key == "dated"


def test_chatgpt_keeps_text_parts_names_models_and_times() -> None:
    nodes = [
        chatgpt_node("s", "root", "system", text("You are terse.")),
        chatgpt_node(
            "u", "s", "user", {"content_type": "multimodal_text", "parts": [{"image": 1}, "", "look", "here"]}
        ),
        chatgpt_node("a", "u", "assistant", text("named"), metadata={"model_slug": "gpt-4o"}),
        chatgpt_node("b", "u", "assistant", text("default")),
    ]
    nodes[0]["message"]["author"]["name"] = "instructions"
    nodes[1]["message"]["create_time"] = 1_700_000_123_456  # milliseconds
    nodes[3]["message"]["create_time"] = None
    imported = one(chatgpt_conversation(nodes, "a", default_model_slug="gpt-4", title="  Look  ", create_time=None))
    assert shape(imported) == [
        ("s", None, "system", "You are terse."),
        ("u", "s", "user", "look\n\nhere"),
        ("a", "u", "assistant", "named"),
        ("b", "u", "assistant", "default"),
    ]
    assert [m.name for m in imported.messages] == ["instructions", None, None, None]
    assert [m.model for m in imported.messages] == [None, None, "gpt-4o", "gpt-4"]
    assert [m.created_at for m in imported.messages] == [
        datetime.fromtimestamp(1_700_000_001, UTC),
        datetime.fromtimestamp(1_700_000_123.456, UTC),
        datetime.fromtimestamp(1_700_000_001, UTC),
        None,
    ]
    assert imported.created_at == datetime.fromtimestamp(1_700_000_001, UTC)  # the first message's
    assert (imported.title, imported.current_key, imported.skipped) == ("Look", "a", 0)


def test_chatgpt_skips_and_counts_tool_hidden_and_addressed_messages_but_not_the_root() -> None:
    nodes = [
        chatgpt_node("u", "root", "user", text("search it")),
        chatgpt_node("call", "u", "assistant", text("query"), recipient="browser"),
        chatgpt_node("result", "call", "tool", text("results")),
        chatgpt_node(
            "memo", "result", "assistant", text("hidden"), metadata={"is_visually_hidden_from_conversation": 1}
        ),
        chatgpt_node("a", "memo", "assistant", text("found it")),
    ]
    del nodes[4]["message"]["recipient"]
    del nodes[4]["message"]["metadata"]
    imported = one(chatgpt_conversation(nodes, "a"))
    assert shape(imported) == [("u", None, "user", "search it"), ("a", "u", "assistant", "found it")]
    assert imported.skipped == 3


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda c: c.update(mapping=[]), "`mapping` must be an object"),
        (lambda c: c["mapping"].update(u="node"), "node 'u' must be an object"),
        (lambda c: c["mapping"]["u"].update(parent=["root"]), "node 'u': `parent` must be a node id"),
        (lambda c: c["mapping"]["u"].update(message="hi"), "node 'u': `message` must be an object or null"),
        (lambda c: c["mapping"]["u"]["message"].update(author={"name": "x"}), "node 'u': `author.role` is missing"),
        (lambda c: c["mapping"]["u"]["message"].update(author="user"), "node 'u': `author.role` is missing"),
        (
            lambda c: c["mapping"]["u"]["message"].update(content={"parts": []}),
            "node 'u': `content.content_type` is missing",
        ),
        (lambda c: c["mapping"]["u"]["message"].update(content="hi"), "node 'u': `content.content_type` is missing"),
        (
            lambda c: c["mapping"]["u"]["message"].update(content={"content_type": "text"}),
            "node 'u': `content.parts` must be a list",
        ),
        (
            lambda c: c["mapping"]["u"]["message"].update(create_time="noon"),
            "node 'u': `create_time` must be a Unix time",
        ),
        (lambda c: c.update(create_time="noon"), "`create_time` must be a Unix time"),
        (lambda c: c.update(title=1), "`title` must be a string"),
    ],
)
def test_a_chatgpt_conversation_that_cannot_be_read_is_skipped_with_its_reason(change: Callable, why: str) -> None:
    conversation = chatgpt_conversation([chatgpt_node("u", "root", "user", text("hi"))], "u")
    change(conversation)
    assert reason(conversation) == why


def cited(answer: str, *citations: object) -> str:
    node = chatgpt_node("a", "root", "assistant", text(answer), metadata={"citations": list(citations)})
    return one(chatgpt_conversation([node], "a")).messages[0].content


def page(at: int, url: object, title: object = "Page") -> dict:
    return {"start_ix": at, "metadata": {"type": "webpage", "title": title, "url": url}}


def test_chatgpt_citation_links_name_their_page_safely() -> None:
    assert cited("See【1†source】.", page(3, "http://example.com/a(b)", "  A\n  [page]  ")) == (
        r"See ([A \[page\]](http://example.com/a%28b%29))."
    )
    assert cited("See【1†source】.", page(3, "https://example.com/", " ")) == (
        "See ([https://example.com/](https://example.com/))."
    )
    assert cited("See【1†source】.", page(3, "https://example.com/X", None)) == (
        "See ([https://example.com/X](https://example.com/X))."
    )
    # A citation that names no page does not hide one after it that does.
    assert cited("See【1†source】.", "a note", page(3, None), page(3, "https://example.com/")) == (
        "See ([Page](https://example.com/))."
    )
    assert cited("See【1†source】.", page(3, "https://example.com/", "a\\b")) == (
        r"See ([a\\b](https://example.com/))."
    )


@pytest.mark.parametrize(
    "citation",
    [
        page(4, "https://example.com/"),  # not where the marker starts
        page(True, "https://example.com/"),
        page("3", "https://example.com/"),
        page(3, "ftp://example.com/"),
        page(3, "https://example.com/a b"),
        page(3, "https://example.com/<b>"),
        page(3, "https://example.com/\n"),
        page(3, None),
        {"start_ix": 3, "metadata": "https://example.com/"},
        "https://example.com/",
    ],
)
def test_a_chatgpt_citation_without_a_safe_web_page_at_its_marker_is_dropped(citation: object) -> None:
    assert cited("See【1†source】.", citation) == "See."


def test_chatgpt_citations_that_are_not_a_list_drop_the_markers() -> None:
    node = chatgpt_node("a", "root", "assistant", text("See【3:0†source】."), metadata={"citations": {"3": "x"}})
    assert one(chatgpt_conversation([node], "a")).messages[0].content == "See."
    # A bracket that is no citation marker is text.
    node = chatgpt_node("a", "root", "assistant", text("【draft】 and【1†source"), metadata={"citations": None})
    assert one(chatgpt_conversation([node], "a")).messages[0].content == "【draft】 and【1†source"
