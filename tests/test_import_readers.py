"""The export readers on files written from each format's documented shape: what is kept, what is
skipped and why, the branches, and memory bounded whatever the file."""

import io
import json
import random
import zipfile
from pathlib import Path
from sys import getsizeof

import httpx
import pytest

from conftest import PASSWORD, SETTINGS
from server import PYTHON, free_port, running, server_env, serving_pid
from service.imports import (
    ExportFormatError,
    ImportedConversation,
    SkippedConversation,
    current_path,
    read_export,
    stream,
)
from service.imports.stream import (
    CONTAINER_WEIGHT,
    MAX_DEPTH,
    MAX_ITEM_BYTES,
    MAX_STRING_BYTES,
    SCALAR_WEIGHT,
    SLOT_WEIGHT,
)

LIMIT = 256 * 1024 * 1024


def read(body: bytes | list | dict) -> tuple[str, list[ImportedConversation | SkippedConversation]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    export_format, conversations = read_export(io.BytesIO(data), LIMIT)
    return export_format, list(conversations)


def shape(conversation: ImportedConversation) -> list[tuple[str, str | None, str, str]]:
    return [(m.key, m.parent_key, m.role, m.content) for m in conversation.messages]


def chatgpt_node(key: str, parent: str | None, role: str, content: dict, **message: object) -> dict:
    return {
        "id": key,
        "parent": parent,
        "children": [],
        "message": {
            "id": key,
            "author": {"role": role, "name": None, "metadata": {}},
            "create_time": 1_700_000_000 + len(key),
            "content": content,
            "metadata": message.pop("metadata", {}),
            "recipient": message.pop("recipient", "all"),
        },
    }


def text(*parts: object) -> dict:
    return {"content_type": "text", "parts": list(parts)}


def chatgpt_conversation(nodes: list[dict], current: str | None, **fields: object) -> dict:
    mapping = {"root": {"id": "root", "parent": None, "children": [], "message": None}}
    mapping |= {node["id"]: node for node in nodes}
    return {"title": "t", "create_time": 1_700_000_000, "mapping": mapping, "current_node": current, "id": "c"} | fields


# --- ChatGPT


def test_chatgpt_keeps_every_branch_and_bridges_skipped_nodes() -> None:
    conversation = chatgpt_conversation(
        [
            chatgpt_node("u1", "root", "user", text("first question")),
            chatgpt_node("a1", "u1", "assistant", text("first answer")),
            chatgpt_node("u1b", "root", "user", text("the question edited")),
            chatgpt_node("think", "u1b", "assistant", {"content_type": "thoughts", "thoughts": [{"content": "hm"}]}),
            chatgpt_node("recap", "think", "assistant", {"content_type": "reasoning_recap", "content": "Thought"}),
            chatgpt_node("call", "recap", "assistant", {"content_type": "code", "text": "1+1"}, recipient="python"),
            chatgpt_node("out", "call", "tool", {"content_type": "execution_output", "text": "2"}),
            chatgpt_node("a2", "out", "assistant", {"content_type": "multimodal_text", "parts": [{"asset": 1}, "two"]}),
            chatgpt_node("blank", "a2", "assistant", text("  ")),
            chatgpt_node("brand-new", "a2", "assistant", {"content_type": "a type from next year", "x": 1}),
        ],
        "blank",
        default_model_slug="gpt-5",
        async_status=None,
    )
    export_format, [imported] = read([conversation])
    assert export_format == "chatgpt"
    assert shape(imported) == [
        ("u1", None, "user", "first question"),
        ("a1", "u1", "assistant", "first answer"),
        ("u1b", None, "user", "the question edited"),
        ("a2", "u1b", "assistant", "two"),
    ]
    assert imported.skipped == 6
    assert imported.current_key == "a2"  # the shown node is blank: its nearest kept ancestor
    assert [m.key for m in current_path(imported)] == ["u1b", "a2"]
    assert imported.messages[3].model == "gpt-5"  # the conversation's default model


def test_chatgpt_without_its_current_node_shows_the_newest_leaf() -> None:
    nodes = [
        chatgpt_node("u", "root", "user", text("q")),
        chatgpt_node("old", "u", "assistant", text("older answer")),
        chatgpt_node("newer", "u", "assistant", text("newer answer")),
    ]
    nodes[1]["message"]["create_time"] = 1_700_000_100
    nodes[2]["message"]["create_time"] = 1_700_000_200
    for current in ("cut-off", None):
        _, [imported] = read([chatgpt_conversation(nodes, current)])
        assert imported.current_key == "newer"


@pytest.mark.parametrize("current", [["u"], {"u": 1}, 7, None])
def test_chatgpt_with_a_current_node_that_names_no_node_shows_the_newest_leaf(current: object) -> None:
    nodes = [chatgpt_node("u", "root", "user", text("hi")), chatgpt_node("a", "u", "assistant", text("hello"))]
    _, [imported] = read([chatgpt_conversation(nodes, current)])
    assert imported.current_key == "a"


def test_chatgpt_citations_become_links_or_are_dropped() -> None:
    answer = "Fastly bought it【3:0†source】 in 2020【5†source】."
    citations = [
        {
            "start_ix": answer.index("【3"),
            "end_ix": answer.index(" in"),
            "metadata": {"type": "webpage", "title": "Fastly [press]", "url": "https://www.fastly.com/press"},
        }
    ]
    node = chatgpt_node("a", "root", "assistant", text(answer), metadata={"citations": citations})
    _, [imported] = read([chatgpt_conversation([node], "a")])
    assert (
        imported.messages[0].content == r"Fastly bought it ([Fastly \[press\]](https://www.fastly.com/press)) in 2020."
    )


def test_a_file_mixing_valid_and_broken_conversations_keeps_the_valid_ones() -> None:
    good = chatgpt_conversation([chatgpt_node("u", "root", "user", text("hello"))], "u")
    export = [
        good,
        {"title": "no mapping", "id": "x"},
        chatgpt_conversation([chatgpt_node("u", "gone", "user", text("orphan"))], "u", id="orphan"),
        chatgpt_conversation([chatgpt_node("u", "root", "user", text("a\x00b"))], "u", id="nul"),
        chatgpt_conversation(
            [
                chatgpt_node(
                    "h", "root", "system", text("hidden"), metadata={"is_visually_hidden_from_conversation": True}
                )
            ],
            "h",
            id="blank",
        ),
        7,
        good | {"id": "last"},
    ]
    export_format, conversations = read(export)
    assert export_format == "chatgpt"
    assert [(c.index, c.source_id, c.reason) for c in conversations if isinstance(c, SkippedConversation)] == [
        (1, None, "not a chatgpt conversation (none of the fields a conversation has)"),
        (2, "orphan", "message 'u' has a parent that is not in the conversation"),
        (3, "nul", "node 'u': the text contains a NUL character"),
        (4, "blank", "no text"),
        (5, None, "not a chatgpt conversation (must be an object)"),
    ]
    assert [c.source_id for c in conversations if isinstance(c, ImportedConversation)] == ["c", "last"]


# --- Claude


def claude_message(uuid: str, sender: str, content: list, parent: str | None = None, **fields: object) -> dict:
    message = {"uuid": uuid, "sender": sender, "text": "", "content": content, "created_at": "2025-01-02T03:04:05Z"}
    return message | ({"parent_message_uuid": parent} if parent else {}) | fields


def test_claude_keeps_text_blocks_and_counts_thinking_and_tools() -> None:
    root = "00000000-0000-4000-8000-000000000000"
    export = [
        {
            "uuid": "conv-1",
            "name": "Branches",
            "created_at": "2025-01-02T03:04:00.123456+00:00",
            "chat_messages": [
                claude_message("h1", "human", [{"type": "text", "text": "Hi"}], root),
                claude_message(
                    "a1",
                    "assistant",
                    [
                        {"type": "thinking", "thinking": "greet back"},
                        {"type": "text", "text": "Hello!"},
                        {"type": "tool_use", "name": "search", "input": {}},
                        {"type": "tool_result", "content": []},
                        {"type": "text", "text": "How can I help?"},
                        {"type": "voice_note", "x": 1},
                    ],
                    "h1",
                ),
                claude_message("h2", "human", [{"type": "text", "text": "Hi again (edited)"}], root),
                claude_message("a2", "assistant", [{"type": "tool_use", "name": "x", "input": {}}], "h2"),
                claude_message("a3", "assistant", [{"type": "text", "text": "Yes?"}], "a2", created_at="2025-02-01"),
            ],
        },
        {
            "uuid": "conv-old",
            "name": "",
            "created_at": "2024-05-01T10:00:00Z",
            "chat_messages": [
                {"uuid": "q", "sender": "human", "text": "older export", "created_at": "2024-05-01T10:00:00Z"},
                {"uuid": "r", "sender": "assistant", "text": "a line", "created_at": "2024-05-01T10:00:01Z"},
            ],
        },
        {"uuid": "conv-empty", "name": "Nothing", "created_at": "2024-05-01T10:00:00Z", "chat_messages": []},
        {
            "uuid": "conv-tools",
            "name": "Tools only",
            "chat_messages": [claude_message("t", "assistant", [{"type": "tool_use", "name": "x", "input": {}}])],
        },
    ]
    export_format, conversations = read(export)
    assert export_format == "claude"
    branches, line, empty, tools = conversations
    assert shape(branches) == [
        ("h1", None, "user", "Hi"),
        ("a1", "h1", "assistant", "Hello!\n\nHow can I help?"),
        ("h2", None, "user", "Hi again (edited)"),
        ("a3", "h2", "assistant", "Yes?"),  # a2 held only a tool call: a3 hangs from h2
    ]
    assert branches.skipped == 4 + 1
    assert branches.current_key == "a3"  # the newest leaf
    assert branches.created_at.microsecond == 123456
    assert (line.title, shape(line)) == (
        "Untitled chat",
        [("q", None, "user", "older export"), ("r", "q", "assistant", "a line")],
    )
    assert (empty.reason, empty.source_id) == ("no text", "conv-empty")
    assert (tools.reason, tools.source_id) == ("no text", "conv-tools")


# --- Open WebUI


def webui_message(key: str, parent: str | None, role: str, content: object, **fields: object) -> dict:
    return {
        "id": key,
        "parentId": parent,
        "childrenIds": [],
        "role": role,
        "content": content,
        "timestamp": 1_700_000_000,
    } | fields


def webui_chat(messages: list[dict], current: str | None, **fields: object) -> dict:
    history = {"currentId": current, "messages": {m["id"]: m for m in messages}}
    chat = {"title": "inner title", "models": ["llama3.1:latest"], "history": history}
    return {"id": "w1", "title": "Open WebUI chat", "chat": chat, "created_at": 1_700_000_000} | fields


def test_open_webui_reads_history_and_drops_reasoning_and_tool_blocks() -> None:
    messages = [
        webui_message("u1", None, "user", "What is 15 * 17?"),
        webui_message(
            "a1",
            "u1",
            "assistant",
            '<details type="reasoning" done="true"><summary>Thought</summary>&gt; 150 + 105</details>\n255',
            model="deepseek-r1",
        ),
        webui_message("a1b", "u1", "assistant", "It is 255."),
        webui_message("u2", "a1", "user", [{"type": "text", "text": "and 16 * 17?"}, {"type": "image_url"}]),
        webui_message("a2", "u2", "assistant", '<details type="tool_calls"><summary>Tool</summary>x</details>'),
    ]
    export_format, [imported] = read([webui_chat(messages, "a1")])
    assert export_format == "openwebui"
    assert shape(imported) == [
        ("u1", None, "user", "What is 15 * 17?"),
        ("a1", "u1", "assistant", "255"),
        ("u2", "a1", "user", "and 16 * 17?"),
        ("a1b", "u1", "assistant", "It is 255."),
    ]
    assert imported.skipped == 1
    assert (imported.current_key, imported.title, imported.source_id) == ("a1", "Open WebUI chat", "w1")
    assert [m.model for m in imported.messages] == [None, "deepseek-r1", None, "llama3.1:latest"]
    assert imported.messages[0].created_at.year == 2023


def test_open_webui_one_chat_object_and_a_blank_chat() -> None:
    one = webui_chat([webui_message("u", None, "user", "alone")], None)
    export_format, [imported] = read(one)
    assert export_format == "openwebui" and imported.current_key == "u"
    _, [skipped] = read([webui_chat([webui_message("u", None, "user", "   ")], "u")])
    assert skipped.reason == "no text"


# --- LibreChat

ZERO = "00000000-0000-0000-0000-000000000000"


def libre_message(key: str, parent: str, by_user: bool, text_: str, **fields: object) -> dict:
    message = {"messageId": key, "parentMessageId": parent, "isCreatedByUser": by_user, "text": text_}
    return message | {"sender": "Software Engineer", "createdAt": "2024-05-01T16:35:11.530Z"} | fields


def test_librechat_flat_messages_with_branches() -> None:
    export = {
        "conversationId": "lc-1",
        "endpoint": "openAI",
        "title": "Flat",
        "options": {"model": "gpt-4-turbo"},
        "messages": [
            libre_message("m1", ZERO, True, "How do I use venv?"),
            libre_message("m2", "m1", False, "Like this.", model="gpt-4o"),
            libre_message(
                "m3", "m1", False, "", content=[{"type": "think", "think": "hm"}, {"type": "text", "text": "Or so."}]
            ),
            libre_message("m4", "m2", False, "Something went wrong", error=True),
            libre_message("m5", "m4", True, "thanks", createdAt="2024-05-02T00:00:00Z"),
        ],
    }
    export_format, [imported] = read(export)
    assert export_format == "librechat"
    assert shape(imported) == [
        ("m1", None, "user", "How do I use venv?"),
        ("m2", "m1", "assistant", "Like this."),
        ("m5", "m2", "user", "thanks"),
        ("m3", "m1", "assistant", "Or so."),
    ]
    assert [m.model for m in imported.messages] == [None, "gpt-4o", None, "gpt-4-turbo"]
    assert imported.skipped == 2
    assert imported.current_key == "m5"
    assert imported.source_id == "lc-1"


def test_a_message_id_twice_in_one_conversation_skips_it() -> None:
    messages = [libre_message("m1", ZERO, True, "one"), libre_message("m1", ZERO, True, "again")]
    _, [skipped] = read({"conversationId": "lc-2", "messages": messages})
    assert (skipped.source_id, skipped.reason) == ("lc-2", "message 'm1' appears twice")


def test_librechat_nested_tree_of_a_long_conversation() -> None:
    # 600 turns nest 1,200 levels deep: a long conversation, not an attack. (Written by hand:
    # json.dumps recurses.)
    def opened(turn: int) -> str:
        return json.dumps(libre_message(f"m{turn}", "ignored", turn % 2 == 0, f"turn {turn}"))[:-1] + ', "children": ['

    side = json.dumps(libre_message("side", "m0", False, "another answer", children=[]))
    tree = opened(0) + "".join(map(opened, range(1, 600))) + "]}" * 599 + f", {side}]}}"
    body = f'{{"conversationId": "lc-2", "endpoint": "openAI", "recursive": true, "messages": [{tree}]}}'
    export_format, [imported] = read(body.encode())
    assert export_format == "librechat"
    assert len(imported.messages) == 601
    assert imported.messages[1].parent_key == "m0" and imported.messages[-1].key == "side"
    assert imported.messages[-1].parent_key == "m0"
    assert len(current_path(imported)) in (2, 600)


# --- the file as a whole


def test_a_byte_order_mark_and_a_zip_are_read() -> None:
    export = [chatgpt_conversation([chatgpt_node("u", "root", "user", text("hello 京都"))], "u")]
    body = b"\xef\xbb\xbf" + json.dumps(export, ensure_ascii=False).encode()
    assert read(body)[1][0].messages[0].content == "hello 京都"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("nested/other.zip", b"PK never opened")
        zipped.writestr("conversations-001.json", json.dumps(export[0:1] * 2))
        zipped.writestr("conversations.json", body)
    export_format, conversations = read(archive.getvalue())
    assert export_format == "chatgpt" and len(conversations) == 3


def zip_of(files: dict[str, bytes]) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in files.items():
            zipped.writestr(name, data)
    return archive.getvalue()


def test_a_byte_order_mark_is_dropped_only_at_the_start_of_the_file() -> None:
    """U+FEFF in a message, its bytes where the reader's second chunk of the file begins."""

    def export(padding: int) -> bytes:
        node = chatgpt_node("u", "root", "user", text("a" * padding + "\ufeffb"))
        return b"\xef\xbb\xbf" + json.dumps([chatgpt_conversation([node], "u")], ensure_ascii=False).encode()

    body = export(1000)
    body = export(1000 + stream.CHUNK - body.index("\ufeff".encode(), 3))
    assert body.index("\ufeff".encode(), 3) == stream.CHUNK
    _, [imported] = read(body)
    assert imported.messages[0].content.endswith("a\ufeffb")


def test_a_claude_zip_is_read_and_an_encrypted_member_refused() -> None:
    claude = [{"uuid": "z", "name": "Zipped", "chat_messages": [claude_message("h", "human", [], text="from the zip")]}]
    archive = zip_of({"users.json": b"[]", "projects.json": b"[]", "conversations.json": json.dumps(claude).encode()})
    export_format, [imported] = read(archive)
    assert (export_format, imported.title, imported.messages[0].content) == ("claude", "Zipped", "from the zip")
    encrypted = bytearray(archive)
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # the flag bit, in each local and central header
        at = -1
        while (at := encrypted.find(header, at + 1)) >= 0:
            encrypted[at + (6 if header == b"PK\x03\x04" else 8)] |= 0x1
    with pytest.raises(ExportFormatError, match="encrypted"):
        read(bytes(encrypted))


@pytest.mark.parametrize(
    "body",
    [b"", b"\xef\xbb\xbf", b"not json", b"42", b'{"title": "no conversation"}', b'["a", 1, null]'],
)
def test_what_is_not_an_export_is_refused(body: bytes) -> None:
    with pytest.raises(ExportFormatError):
        read(body)


def deep(kind: str, size: int) -> bytes:
    return b"[" * size if kind == "list" else b'{"a":' * (size // 5)


@pytest.mark.parametrize("kind", ["list", "object"])
@pytest.mark.parametrize("closed", [False, True])
def test_deep_nesting_is_refused_before_it_is_built(kind: str, closed: bool) -> None:
    body = deep(kind, 200 * 1024)
    if closed:
        body += (b"]" if kind == "list" else b"}") * (body.count(b"[") + body.count(b"{"))
    with pytest.raises(ExportFormatError):
        read(body)


def test_deep_nesting_inside_one_conversation_skips_it() -> None:
    good = chatgpt_conversation([chatgpt_node("u", "root", "user", text("kept"))], "u")
    body = b"[" + json.dumps(good).encode() + b',{"mapping":' + b"[" * 5000 + b"]" * 5000 + b"}]"
    _, [imported, skipped] = read(body)
    assert imported.messages[0].content == "kept"
    assert (skipped.index, skipped.reason) == (1, f"nested deeper than {MAX_DEPTH} levels")


def test_an_oversized_conversation_or_text_is_skipped_without_being_built() -> None:
    good = chatgpt_conversation([chatgpt_node("u", "root", "user", text("kept"))], "u")
    many_parts = chatgpt_conversation(
        [chatgpt_node("u", "root", "user", text(*(["x" * 1000] * (MAX_ITEM_BYTES // 1000))))], "u"
    )
    long_text = chatgpt_conversation([chatgpt_node("u", "root", "user", text("y" * (MAX_STRING_BYTES + 1)))], "u")
    _, conversations = read([good, many_parts, long_text, good])
    assert [getattr(c, "reason", None) for c in conversations] == [
        None,
        f"larger than {MAX_ITEM_BYTES // 2**20} MiB once read",
        f"holds a text of more than {MAX_STRING_BYTES // 2**20} MiB",
        None,
    ]


def weight(value: object) -> int:
    """An item's weight, by the rule `stream.py` states beside its constants."""
    if isinstance(value, str):
        return getsizeof(value) + SLOT_WEIGHT
    if isinstance(value, list):
        return CONTAINER_WEIGHT + sum(map(weight, value))
    if isinstance(value, dict):
        return CONTAINER_WEIGHT + sum(weight(key) + weight(item) for key, item in value.items())
    return SCALAR_WEIGHT


def heaviest(shape: str) -> tuple[object, object]:
    """An item of `shape` weighing exactly MAX_ITEM_BYTES, and the same item heavier by the
    least it can be: one character more in its last string, or one more empty list."""
    rest = MAX_ITEM_BYTES - CONTAINER_WEIGHT
    if shape == "empty lists":
        count = rest // CONTAINER_WEIGHT
        return [[]] * count, [[]] * (count + 1)
    blank = weight("") + (SCALAR_WEIGHT if shape == "keys" else 0)  # an entry with no characters
    count, left = divmod(rest, blank + 1000)
    count, left = count - 1, left + blank + 1000  # the last entry takes what is left over
    names = [f"{i:07}".ljust(1000, "k") for i in range(count)] + [f"{count:07}".ljust(left - blank, "k")]
    heavier = [*names[:-1], names[-1] + "k"]
    if shape == "keys":
        return dict.fromkeys(names, 0), dict.fromkeys(heavier, 0)
    return names, heavier


@pytest.mark.parametrize("shape", ["strings", "keys", "empty lists"])
def test_an_item_is_built_up_to_its_weight_limit_and_skipped_past_it(shape: str) -> None:
    item, heavier = heaviest(shape)
    assert (weight(item), weight(heavier) > MAX_ITEM_BYTES) == (MAX_ITEM_BYTES, True)
    good = chatgpt_conversation([chatgpt_node("u", "root", "user", text("kept"))], "u")
    _, conversations = read([good, item, heavier, good])
    kind = "must be an object" if isinstance(item, list) else "none of the fields a conversation has"
    assert [getattr(c, "reason", None) for c in conversations] == [
        None,
        f"not a chatgpt conversation ({kind})",
        f"larger than {MAX_ITEM_BYTES // 2**20} MiB once read",
        None,
    ]


def test_a_list_or_an_overlong_text_in_place_of_a_conversation_is_skipped_whole() -> None:
    good = chatgpt_conversation([chatgpt_node("u", "root", "user", text("kept"))], "u")
    _, conversations = read([good, [good, [good]], "y" * (MAX_STRING_BYTES + 1), good | {"id": "last"}])
    assert [c.source_id if isinstance(c, ImportedConversation) else (c.index, c.reason) for c in conversations] == [
        "c",
        (1, "not a chatgpt conversation (must be an object)"),
        (2, f"holds a text of more than {MAX_STRING_BYTES // 2**20} MiB"),
        "last",
    ]


@pytest.mark.parametrize("as_list", [False, True], ids=["one-conversation", "a-list"])
def test_an_export_nested_max_depth_levels_is_read_and_one_level_more_is_not(as_list: bool) -> None:
    """MAX_DEPTH counts every level of the file, the export's own list included."""
    good = json.dumps(chatgpt_conversation([chatgpt_node("u", "root", "user", text("kept"))], "u"))

    def export(levels: int) -> bytes:
        deep = levels - 1 - as_list  # below the conversation's object, and the list around it
        conversation = good[:-1] + ', "deep": ' + "[" * deep + "]" * deep + "}"
        return (f"[{conversation}]" if as_list else conversation).encode()

    _, [imported] = read(export(MAX_DEPTH))
    assert isinstance(imported, ImportedConversation) and imported.messages[0].content == "kept"
    with pytest.raises(ExportFormatError, match=rf"\(nested deeper than {MAX_DEPTH} levels, first item\)$"):
        read(export(MAX_DEPTH + 1))


def test_a_number_longer_than_any_number_is_refused() -> None:
    with pytest.raises(ExportFormatError, match="a number of more than"):
        read(b'[{"mapping": {}, "create_time": ' + b"1" * 100_000 + b"}]")


def random_json(rng: random.Random, depth: int = 0) -> object:
    """Values whose strings are full of what is hard to scan: quotes, backslashes, multi-byte characters."""
    pick = rng.random()
    if depth > 3 or pick < 0.35:
        return "".join(rng.choice(['"', "\\", "a", "é", "🏮", "\n", "0", "\x01"]) for _ in range(rng.randint(0, 12)))
    if pick < 0.5:
        return rng.choice([0, 1, -12345, 1.5, 123456789012, -1.25e-7, True, None])
    if pick < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {str(random_json(rng, 4)): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def over_limits(value: object, ensure_ascii: bool) -> object:
    """`value` as the guard should pass it on: each string over the limit (as written) replaced."""
    if isinstance(value, str):
        written = len(json.dumps(value, ensure_ascii=ensure_ascii).encode()) - 2
        return stream.OVERLONG if written > stream.MAX_STRING_BYTES else value
    if isinstance(value, list):
        return [over_limits(item, ensure_ascii) for item in value]
    if isinstance(value, dict):
        return {over_limits(key, ensure_ascii): over_limits(item, ensure_ascii) for key, item in value.items()}
    return value


def has_long_number(value: object) -> bool:
    if isinstance(value, list | dict):
        return any(map(has_long_number, value.values() if isinstance(value, dict) else value))
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and len(json.dumps(value)) > stream.MAX_NUMBER_CHARS
    )


def test_the_token_guard_passes_json_unchanged_but_for_overlong_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small limits and chunks, so that strings, escapes and numbers straddle every boundary."""
    rng = random.Random(7)
    for _ in range(1000):
        monkeypatch.setattr(stream, "MAX_STRING_BYTES", rng.randint(3, 30))
        monkeypatch.setattr(stream, "MAX_NUMBER_CHARS", rng.randint(3, 14))
        monkeypatch.setattr(stream, "LONG_NUMBER", b"N" * (stream.MAX_NUMBER_CHARS + 1))
        monkeypatch.setattr(stream, "CHUNK", rng.randint(1, stream.MAX_STRING_BYTES))
        document = [random_json(rng) for _ in range(rng.randint(0, 4))]
        ensure_ascii = rng.random() < 0.5
        guard = stream.TokenGuard(io.BytesIO(json.dumps(document, ensure_ascii=ensure_ascii).encode()), "x")
        passed = b""
        if has_long_number(document):
            with pytest.raises(ExportFormatError, match="a number of more than"):
                while chunk := guard.read(1000):
                    passed += chunk
            continue
        while chunk := guard.read(1000):
            passed += chunk
        assert json.loads(passed) == over_limits(document, ensure_ascii)


def memory(pid: int, field: str) -> int:
    """A memory figure of process `pid` from /proc, in bytes: VmRSS now, VmHWM its peak."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(f"{field}:"))) * 1024


@pytest.mark.parametrize("kind", ["list", "object"])
def test_a_deeply_nested_upload_is_4xx_and_the_server_stays_small(
    kind: str, fresh_database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--no-access-log"]
    env = server_env(DATABASE_URL=fresh_database_url, SECRET_KEY=SETTINGS.secret_key)
    with running(command, env, tmp_path, port) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        username = f"nester_{port}"
        body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
        assert client.post("/v1/auth/register", json=body).status_code == 201
        token = client.post("/v1/auth/token", data={"username": username, "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}", "Content-Type": "application/json"}
        server = serving_pid(port, client.get("/v1"))
        before = memory(server, "VmRSS")
        for _ in range(3):
            response = client.post("/v1/chats/import", content=deep(kind, 200 * 1024), headers=headers)
            assert 400 <= response.status_code < 500, response.text
            assert "detail" in response.json()
        # The peak, not only what is left: the old parser's nesting took ~1 GiB on the way.
        assert memory(server, "VmHWM") - before < 64 * 1024 * 1024
