"""POST /v1/chats/import: a ChatGPT export in, chats out; a broken conversation skipped, nothing in when the
file is broken."""

import collections
import io
import json
import random
import struct
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import ijson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import ENGINE as engine
from conftest import SETTINGS as settings
from conftest import Account
from models import Chat
from service.imports import ImportTooLarge
from service.imports.stream import UnpackBudget, json_error, json_items

T0 = 1_700_000_000.0


def conversation(title: str, turns: list[tuple[str, str]], conversation_id: str = "c1") -> dict:
    """A conversation in ChatGPT's export shape: a mapping tree walked from current_node."""
    mapping = {"root": {"id": "root", "message": None, "parent": None, "children": []}}
    parent = "root"
    for index, (role, text) in enumerate(turns):
        node = f"n{index}"
        mapping[node] = {
            "id": node,
            "parent": parent,
            "children": [],
            "message": {
                "id": node,
                "author": {"role": role, "name": None, "metadata": {}},
                "create_time": T0 + index,
                "content": {"content_type": "text", "parts": [text]},
                "status": "finished_successfully",
                "metadata": {"model_slug": "gpt-4o"} if role == "assistant" else {},
                "recipient": "all",
            },
        }
        mapping[parent]["children"].append(node)
        parent = node
    return {
        "title": title,
        "create_time": T0,
        "update_time": T0 + len(turns),
        "mapping": mapping,
        "current_node": parent,
        "id": conversation_id,
        "conversation_id": conversation_id,
    }


EXPORT = [
    conversation("Kyoto trip", [("user", "Where should I stay in 京都?"), ("assistant", "Try Gion 🏮")], "a"),
    conversation("Empty", [("system", "")], "b"),
    conversation("Code", [("user", "fizzbuzz?"), ("assistant", "```py\nprint(1)\n```")], "c"),
]


def zipped(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def unknown_method(archive: bytes) -> bytes:
    """The archive with its members' compression method set to one no unzip knows (99)."""
    data = bytearray(archive)
    for header, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(header) + offset
        data[at : at + 2] = (99).to_bytes(2, "little")
    return bytes(data)


def chat_count(account: Account) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Chat).where(Chat.owner_id == account.id))


def check_imported(client: TestClient, account: Account, result: dict) -> None:
    assert [chat["title"] for chat in result["chats"]] == ["Kyoto trip", "Code"]
    assert result["messages"] == 4 and result["skipped_conversations"] == 1
    kyoto = client.get(f"/v1/chats/{result['chats'][0]['id']}", headers=account.headers).json()
    assert [(m["role"], m["content"]) for m in kyoto["messages"]] == [
        ("user", "Where should I stay in 京都?"),
        ("assistant", "Try Gion 🏮"),
    ]
    assert kyoto["messages"][1]["model"] == "gpt-4o"
    assert kyoto["created_at"].startswith("2023-11-14T22:13:20")
    assert kyoto["metadata"] == {"source": "chatgpt", "chatgpt_id": "a"}


def test_import_a_zip_as_a_multipart_upload(client: TestClient, alice: Account) -> None:
    archive = zipped({"conversations.json": json.dumps(EXPORT).encode(), "user.json": b"{}"})
    response = client.post(
        "/v1/chats/import", files={"file": ("export.zip", archive, "application/zip")}, headers=alice.headers
    )
    assert response.status_code == 201, response.text
    check_imported(client, alice, response.json())


def test_import_split_conversation_files_in_a_zip_body(client: TestClient, alice: Account) -> None:
    archive = zipped(
        {
            "export/conversations-000.json": json.dumps(EXPORT[:2]).encode(),
            "export/conversations-001.json": json.dumps(EXPORT[2:]).encode(),
        }
    )
    response = client.post(
        "/v1/chats/import", content=archive, headers={**alice.headers, "Content-Type": "application/zip"}
    )
    assert response.status_code == 201, response.text
    check_imported(client, alice, response.json())


def test_import_a_bare_conversations_json(client: TestClient, alice: Account, bob: Account) -> None:
    response = client.post("/v1/chats/import", json=EXPORT, headers=alice.headers)
    assert response.status_code == 201, response.text
    check_imported(client, alice, response.json())
    assert client.get("/v1/chats/", headers=bob.headers).json() == []
    chat_id = response.json()["chats"][0]["id"]
    assert client.get(f"/v1/chats/{chat_id}", headers=bob.headers).status_code == 404


NOT_AN_EXPORT = "Not a chat export: "
NO_SHAPE = "no conversation in the shape chatgpt, claude, openwebui, librechat exports have"
INVALID = "the upload: invalid JSON"
NOT_UTF_8 = f"{INVALID}: lexical error: invalid bytes in UTF8 string."


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", f"{INVALID}: parse error: premature EOF"),
        (b"not json at all", f"{INVALID}: lexical error: invalid string in json text."),
        (b'["\xff"]', NOT_UTF_8),
        (b'["' + b"it's " * 20 + b"\xff" + b"it's " * 20 + b'"]', NOT_UTF_8),  # yajl quotes it as b"..."
        (json.dumps(EXPORT).encode() + b" x", f"{INVALID} after conversation 2: parse error: trailing garbage"),
        (b'{"title": "an object, not a list"}', f"{NO_SHAPE} (none of the fields a conversation has, first item)"),
        (json.dumps(EXPORT).encode()[:-40], f"{INVALID} after conversation 2: parse error: premature EOF"),
        (b'["not a conversation", {"title": "nor this"}]', f"{NO_SHAPE} (must be an object, first item)"),
        (zipped({"readme.txt": b"no"}), "the ZIP holds no conversations.json (nor conversations-000.json, ...)"),
        (b"PK\x03\x04 a broken zip", "not a readable ZIP archive (File is not a zip file)"),
        (unknown_method(zipped({"conversations.json": b"[]"}, zipfile.ZIP_STORED)),
         "conversations.json: cannot be unpacked (That compression method is not supported)"),
        (b'"' + b"1" * 100 + b'"', "the upload: must be a JSON list of conversations, or one conversation"),
        (json.dumps(EXPORT[0]).encode() + b" x", f"{INVALID} after conversation 0: parse error: trailing garbage"),
        (b'[{"title": x}]', f"{INVALID} after conversation 0: lexical error: invalid char in json text."),
        (b'[{"create_time": ' + b"1" * 65 + b"}]", "the upload: a number of more than 64 characters"),
        (b"0." + b"5" * 62, "the upload: must be a JSON list of conversations, or one conversation"),
    ],
    ids=[
        "empty", "not-json", "not-utf-8", "not-utf-8-among-apostrophes", "trailing-garbage", "an-object", "truncated",
        "no-conversations", "zip-without-export", "broken-zip", "zip-unknown-method", "a-string-of-digits",
        "an-object-then-garbage", "broken-first-conversation", "a-long-number", "a-number-alone",
    ],
)  # fmt: skip
def test_a_broken_export_is_422_and_imports_nothing(
    client: TestClient, alice: Account, body: bytes, detail: str
) -> None:
    """The reason names what is wrong in one line: the parser's quote of the input is left out."""
    response = client.post(
        "/v1/chats/import", content=body, headers={**alice.headers, "Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": NOT_AN_EXPORT + detail}
    assert chat_count(alice) == 0


def test_broken_conversations_are_skipped_with_their_reason_and_the_rest_imported(
    client: TestClient, alice: Account
) -> None:
    broken = [
        EXPORT[0],
        conversation("bad", [("user", "nul \x00 here")], "d"),
        "not a conversation",
        {**EXPORT[2], "mapping": []},
    ]
    response = client.post("/v1/chats/import", json=broken, headers=alice.headers)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["format"] == "chatgpt"
    assert [chat["title"] for chat in result["chats"]] == ["Kyoto trip"]
    assert result["skipped_conversations"] == 3
    assert result["skipped_conversation_details"] == [
        {"index": 1, "source_id": "d", "reason": "node 'n0': the text contains a NUL character"},
        {"index": 2, "source_id": None, "reason": "not a chatgpt conversation (must be an object)"},
        {"index": 3, "source_id": "c", "reason": "`mapping` must be an object"},
    ]
    assert chat_count(alice) == 1


def test_only_the_first_100_skipped_conversations_are_listed(client: TestClient, alice: Account) -> None:
    export = [EXPORT[0]] + [{**EXPORT[2], "mapping": None, "id": str(i)} for i in range(150)]
    result = client.post("/v1/chats/import", json=export, headers=alice.headers).json()
    assert result["skipped_conversations"] == 150
    assert [d["index"] for d in result["skipped_conversation_details"]] == list(range(1, 101))
    # A conversation and then countless items that are not: each counted, the file imported.
    body = json.dumps(EXPORT[:1])[:-1].encode() + b",0" * 200_000 + b"]"
    response = client.post("/v1/chats/import", content=body, headers=alice.headers)
    assert response.status_code == 201
    assert (response.json()["skipped_conversations"], len(response.json()["skipped_conversation_details"])) == (
        200_000,
        100,
    )


def test_an_export_unpacking_past_the_limit_is_413_before_unpacking(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "max_import_bytes", 64 * 1024)
    bomb = zipped({"conversations.json": b"[" + b" " * (1024 * 1024) + b"]"})  # 1 MiB of spaces packs small
    assert len(bomb) < 64 * 1024
    response = client.post(
        "/v1/chats/import", content=bomb, headers={**alice.headers, "Content-Type": "application/zip"}
    )
    assert response.status_code == 413
    assert chat_count(alice) == 0


def test_an_export_unpacking_to_exactly_the_limit_is_read_and_one_byte_more_is_413(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 64 * 1024
    monkeypatch.setattr(settings, "max_import_bytes", limit)
    export = json.dumps(EXPORT).encode()
    for size, status in ((limit, 201), (limit + 1, 413)):
        padded = export[:-1] + b" " * (size - len(export)) + b"]"
        upload = zipped({"conversations.json": padded})
        response = client.post(
            "/v1/chats/import", content=upload, headers={**alice.headers, "Content-Type": "application/zip"}
        )
        assert response.status_code == status, (size, response.text)
    # The ZIP's headers declare the size: refused before a byte is unpacked.
    assert response.json() == {"detail": f"The export's conversations unpack to {limit + 1} bytes, over {limit}"}


def test_an_upload_past_the_limit_is_413(client: TestClient, alice: Account) -> None:
    headers = {
        **alice.headers,
        "Content-Type": "application/json",
        "Content-Length": str(settings.max_import_bytes + 1),
    }
    response = client.post("/v1/chats/import", content=b"[]", headers=headers)
    assert response.status_code == 413


def test_a_retried_import_with_its_key_imports_once(client: TestClient, alice: Account) -> None:
    headers = {**alice.headers, "Idempotency-Key": "import-1"}
    first = client.post("/v1/chats/import", json=EXPORT, headers=headers)
    again = client.post("/v1/chats/import", json=EXPORT, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert chat_count(alice) == 2
    other = client.post("/v1/chats/import", json=EXPORT[:1], headers=headers)
    assert other.status_code == 409
    # The key is matched on every byte of the file, its first too.
    body = json.dumps(EXPORT).encode()
    headers["Idempotency-Key"] = "import-2"
    assert client.post("/v1/chats/import", content=b" " + body, headers=headers).status_code == 201
    assert client.post("/v1/chats/import", content=b"\n" + body, headers=headers).status_code == 409
    assert chat_count(alice) == 4


def test_import_needs_a_token(client: TestClient) -> None:
    assert client.post("/v1/chats/import", json=EXPORT).status_code == 401


# --- a realistic export: tests/data/conversations.json, as ChatGPT writes it

SAMPLE = Path(__file__).with_name("data").joinpath("conversations.json").read_bytes()
KYOTO_ID = "6630f1a0-0b3c-8000-9a8b-3c1d2e4f5a6b"
# The files beside conversations.json in a downloaded export; only the conversations are read.
EXPORT_EXTRAS = {
    "user.json": b'{"id": "user-1", "email": "alice@example.com"}',
    "message_feedback.json": b"[]",
    "chat.html": b"<html><body><script>var jsonData = [];</script></body></html>",
    "file-Kx3temple-IMG_0042.jpeg": bytes(range(256)) * 64,
}


def split_zip() -> bytes:
    """The sample as a newer export holds it: one conversation per numbered file, in a folder."""
    conversations = json.loads(SAMPLE)
    files = {f"export/conversations-{i:03}.json": json.dumps([c]).encode() for i, c in enumerate(conversations)}
    return zipped(files | {f"export/{name}": data for name, data in EXPORT_EXTRAS.items()})


def sample_ways_to_send() -> dict[str, dict]:
    full_zip = zipped({"conversations.json": SAMPLE, **EXPORT_EXTRAS})
    return {
        "zip as multipart": {"files": {"file": ("chatgpt-export.zip", full_zip, "application/zip")}},
        "zip as body": {"content": full_zip, "headers": {"Content-Type": "application/zip"}},
        "split zip as body": {"content": split_zip(), "headers": {"Content-Type": "application/zip"}},
        "split zip as multipart": {"files": {"file": ("export.zip", split_zip(), "application/octet-stream")}},
        "json as body": {"content": SAMPLE, "headers": {"Content-Type": "application/json"}},
        "json as multipart": {"files": {"file": ("conversations.json", SAMPLE, "application/json")}},
    }


def post_import(client: TestClient, account: Account, request: dict, **headers: str):
    return client.post(
        "/v1/chats/import", **{**request, "headers": {**account.headers, **request.get("headers", {}), **headers}}
    )


@pytest.mark.parametrize("way", list(sample_ways_to_send()))
def test_import_the_sample_export(client: TestClient, alice: Account, way: str) -> None:
    response = post_import(client, alice, sample_ways_to_send()[way])
    assert response.status_code == 201, response.text
    result = response.json()
    assert [c["title"] for c in result["chats"]] == ["Two days in 京都 🏯", "Regex for e-mail addresses"]
    # Skipped: the hidden system message and custom instructions, the call to the web tool and
    # its result, an empty answer; the o3 reasoning; and all of the hidden-only conversation.
    # The three messages of the branches not shown are kept, as branches.
    assert (result["messages"], result["skipped_messages"], result["skipped_conversations"]) == (10, 6, 1)
    assert result["format"] == "chatgpt"
    assert result["skipped_conversation_details"] == [
        {"index": 1, "source_id": "6631a0b0-1111-8000-aaaa-000000000002", "reason": "no text"}
    ]

    kyoto = client.get(f"/v1/chats/{result['chats'][0]['id']}", headers=alice.headers).json()
    assert result["chats"][0] == {field: kyoto[field] for field in result["chats"][0]}  # answered as stored
    # The branch that ends at current_node: the edited question, the answer not regenerated away.
    assert [(m["role"], m["content"], m["model"]) for m in kyoto["messages"]] == [
        ("user", 'Plan 2 days in 京都, please.\r\nI like\ttemples & "quiet" places.', None),
        ("assistant", "Day 1: Fushimi Inari ⛩️ at dawn.\nDay 2: Arashiyama 🎋.", "gpt-4o"),
        ("user", "Which temple is this?", None),
        ("assistant", "That is Kinkaku-ji (金閣寺), the Golden Pavilion.", "gpt-4o"),
    ]
    assert [m["created_at"] for m in kyoto["messages"]] == [
        "2024-05-01T10:01:00Z",
        "2024-05-01T10:01:10.250000Z",
        "2024-05-01T10:01:40Z",
        "2024-05-01T10:01:50Z",
    ]
    assert kyoto["created_at"] == "2024-05-01T10:00:00.123456Z"
    assert kyoto["updated_at"] == "2024-05-01T10:01:50Z"
    assert kyoto["metadata"] == {"source": "chatgpt", "chatgpt_id": KYOTO_ID}
    assert kyoto["pinned"] is False and kyoto["archived"] is False

    regex = client.get(f"/v1/chats/{result['chats'][1]['id']}", headers=alice.headers).json()
    assert [(m["role"], m["model"]) for m in regex["messages"]] == [
        ("system", None),
        ("user", None),
        ("assistant", "o3"),
    ]
    code = '```python\nimport re\nEMAIL = re.compile(r"[^@\\s]+@[^@\\s]+\\.\\w+")\n```'
    assert regex["messages"][2]["content"] == code
    # The imported chats are ordinary chats: listed, most recently active first.
    listed = client.get("/v1/chats/", headers=alice.headers).json()
    assert [c["id"] for c in listed] == [result["chats"][1]["id"], result["chats"][0]["id"]]
    assert chat_count(alice) == 2


SAMPLE_TITLES = {0: "Two days in 京都 🏯", 2: "Regex for e-mail addresses"}


def mutated(change: Callable[[list[dict]], object]) -> bytes:
    conversations = json.loads(SAMPLE)
    change(conversations)
    return json.dumps(conversations).encode()


def node(conversations: list[dict], index: int, node_id: str) -> dict:
    return conversations[index]["mapping"][node_id]


@pytest.mark.parametrize(
    ("change", "index", "reason"),
    [
        (lambda c: node(c, 2, "a-c").update(parent="gone"), 2, "message 'a-c' has a parent that is not in the"),
        (lambda c: node(c, 2, "root-c").update(parent="a-c"), 2, "message 'root-c' is its own ancestor"),
        (lambda c: c[2].pop("mapping"), 2, "not a chatgpt conversation"),
        (lambda c: c[1].update(title=["not", "text"]), 1, "`title` must be a string"),
        (lambda c: c[2].update(create_time="yesterday"), 2, "`create_time` must be a Unix time"),
        (lambda c: c[2].update(create_time=1e300), 2, "`create_time` is out of range"),
        (lambda c: node(c, 2, "u-c")["message"].pop("author"), 2, "node 'u-c': `author.role` is missing"),
        (lambda c: node(c, 2, "u-c")["message"]["content"].update(parts="text"), 2, "node 'u-c': `content.parts`"),
        (lambda c: node(c, 2, "u-c").update(message="hello"), 2, "node 'u-c': `message` must be an object"),
        (lambda c: c[2]["mapping"].update({"a-c": ["not", "a", "node"]}), 2, "node 'a-c' must be an object"),
        (lambda c: node(c, 0, "a-3")["message"]["content"]["parts"].append("\x00"), 0, "node 'a-3': the text"),
        (lambda c: c.append(42), 3, "not a chatgpt conversation (must be an object)"),
    ],
)
def test_a_malformed_conversation_is_skipped_naming_where_and_the_rest_imported(
    client: TestClient, alice: Account, change: Callable[[list[dict]], object], index: int, reason: str
) -> None:
    body = mutated(change)
    for request in (
        {"content": body, "headers": {"Content-Type": "application/json"}},
        {"files": {"file": ("export.zip", zipped({"conversations.json": body}), "application/zip")}},
    ):
        before = chat_count(alice)
        response = post_import(client, alice, request)
        assert response.status_code == 201, response.text
        details = response.json()["skipped_conversation_details"]
        assert [d["index"] for d in details] == sorted({1, index})  # conversation 1 has no visible text
        assert reason in next(d["reason"] for d in details if d["index"] == index)
        imported = {title for at, title in SAMPLE_TITLES.items() if at != index}
        assert {c["title"] for c in response.json()["chats"]} == imported
        assert chat_count(alice) == before + len(imported)


def test_a_current_node_missing_from_mapping_shows_the_newest_leaf(client: TestClient, alice: Account) -> None:
    def cut(conversations: list[dict]) -> None:
        conversations[0]["current_node"] = "nowhere"
        del conversations[0]["mapping"]["a-4-empty"]
        node(conversations, 0, "a-3")["children"] = []

    result = post_import(client, alice, {"content": mutated(cut)}).json()
    kyoto = client.get(f"/v1/chats/{result['chats'][0]['id']}", headers=alice.headers).json()
    # The newest leaf is the answer about the temple, as when current_node named the blank answer after it.
    assert [m["content"] for m in kyoto["messages"]][-1] == "That is Kinkaku-ji (金閣寺), the Golden Pavilion."
    assert len(kyoto["messages"]) == 4


def test_a_broken_file_in_a_split_export_names_the_file_and_imports_nothing(client: TestClient, alice: Account) -> None:
    conversations = json.loads(SAMPLE)
    archive = zipped(
        {
            "conversations-000.json": json.dumps(conversations[:2]).encode(),
            "conversations-001.json": json.dumps(conversations[2:]).encode()[:-10],
        }
    )
    response = post_import(client, alice, {"content": archive})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Not a chat export: conversations-001.json: invalid JSON")
    assert chat_count(alice) == 0


def test_a_corrupt_zip_member_is_422(client: TestClient, alice: Account) -> None:
    archive = bytearray(zipped({"conversations.json": SAMPLE}))
    start = 30 + len("conversations.json")  # the compressed data follows the first local header
    archive[start + 100 : start + 140] = bytes(40)
    response = post_import(client, alice, {"content": bytes(archive)})
    assert response.status_code == 422
    assert "ZIP" in response.json()["detail"] or "conversations.json" in response.json()["detail"]
    assert chat_count(alice) == 0


def test_a_zip_whose_headers_understate_its_size_is_refused(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "max_import_bytes", 64 * 1024)
    archive = bytearray(zipped({"conversations.json": b"[" + b" " * (1024 * 1024) + b"]"}))
    # Declare 100 bytes where 1 MiB is packed, in the local header and in the central directory.
    struct.pack_into("<I", archive, 22, 100)
    struct.pack_into("<I", archive, archive.rfind(b"PK\x01\x02") + 24, 100)
    response = post_import(client, alice, {"content": bytes(archive)})
    assert response.status_code == 422
    assert "conversations.json" in response.json()["detail"]
    assert chat_count(alice) == 0


def test_unpacking_stops_at_the_limit_whatever_the_headers_say() -> None:
    def unpacked(size: int) -> list:
        member = io.BytesIO(b"[" + b" " * (size - 2) + b"]")
        return list(json_items(UnpackBudget(1000).reader(member, "member"), "member"))

    assert unpacked(900) == unpacked(1000) == []
    for size in (1001, 3000):
        with pytest.raises(ImportTooLarge) as refused:
            unpacked(size)
        assert str(refused.value) == "The export's conversations unpack to more than 1000 bytes"


def test_a_parser_error_without_a_message_is_named_by_its_kind() -> None:
    assert json_error(ijson.IncompleteJSONError()) == "IncompleteJSONError"


def test_the_budget_never_asks_the_archive_for_more_than_it_allows() -> None:
    """What a member unpacks to is read in amounts the budget bounds, so a ZIP bomb is never
    held in memory whole: a read of everything asks for one byte past what is left."""
    asked: list[int] = []

    class Member(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            asked.append(size)
            return super().read(size)

    reader = UnpackBudget(1000).reader(Member(b"x" * 5000), "member")
    assert (reader.read(0), reader.read(10)) == (b"", b"x" * 10)
    with pytest.raises(ImportTooLarge):
        reader.read()
    assert asked == [0, 10, 991]


def test_the_declared_size_counts_only_the_conversations(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "max_import_bytes", len(SAMPLE) + 1024)
    images = {f"file-{i}.png": bytes(range(256)) * 16 for i in range(4)}  # more than the limit in all
    assert sum(map(len, images.values())) + len(SAMPLE) > settings.max_import_bytes
    archive = zipped({"conversations.json": SAMPLE, **images})
    assert post_import(client, alice, {"content": archive}).status_code == 201
    split = zipped({"a/conversations-000.json": SAMPLE, "a/conversations-001.json": SAMPLE})
    too_large = post_import(client, alice, {"content": split})
    assert too_large.status_code == 413
    assert "unpack" in too_large.json()["detail"]
    assert chat_count(alice) == 2


@pytest.mark.parametrize(
    "request_",
    [
        {"files": {"upload": ("export.zip", b"PK", "application/zip")}},
        {"data": {"file": "conversations.json"}, "files": {"other": ("x", b"", "text/plain")}},
    ],
    ids=["file in another field", "file as a text field"],
)
def test_a_multipart_upload_without_the_file_field_is_422(client: TestClient, alice: Account, request_: dict) -> None:
    response = post_import(client, alice, request_)
    assert response.status_code == 422
    assert response.json() == {"detail": "Send the export in the multipart field `file`"}


def test_two_files_in_one_upload_are_refused(client: TestClient, alice: Account) -> None:
    files = [("file", ("a.json", SAMPLE, "application/json")), ("file", ("b.json", SAMPLE, "application/json"))]
    response = client.post("/v1/chats/import", files=files, headers=alice.headers)
    assert response.status_code == 400
    assert response.json() == {"detail": "Too many files. Maximum number of files is 1."}
    assert chat_count(alice) == 0


def test_a_multipart_upload_takes_ten_fields_beside_its_file(client: TestClient, alice: Account) -> None:
    files = {"file": ("conversations.json", SAMPLE, "application/json")}
    fields = {f"field{i}": "x" for i in range(11)}
    response = client.post("/v1/chats/import", files=files, data=fields, headers=alice.headers)
    too_many = {"detail": "Too many fields. Maximum number of fields is 10."}
    assert (response.status_code, response.json()) == (400, too_many)
    assert chat_count(alice) == 0
    fields.popitem()
    assert client.post("/v1/chats/import", files=files, data=fields, headers=alice.headers).status_code == 201


def test_messages_over_the_content_limit_are_skipped_not_truncated(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "max_content_bytes", 40)
    result = post_import(client, alice, {"content": SAMPLE}).json()
    kyoto = client.get(f"/v1/chats/{result['chats'][0]['id']}", headers=alice.headers).json()
    assert [m["content"] for m in kyoto["messages"]] == ["Which temple is this?"]
    # Kept: three short messages of the Kyoto tree (one on the path shown) and two of the regex chat.
    assert (result["messages"], result["skipped_messages"]) == (3 + 2, 6 + 5)


def test_an_import_bridges_over_a_message_over_the_limit_and_skips_a_conversation_left_empty(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch, far_time_zone: None
) -> None:
    monkeypatch.setattr(settings, "max_content_bytes", 40)
    at_the_limit = "x" * 40
    bridged = conversation("Bridged", [("user", "a question"), ("assistant", "y" * 41), ("user", at_the_limit)], "t")
    bridged["mapping"]["n0"]["message"]["author"]["name"] = "Ada"
    untimed = conversation("Untimed", [("user", "when?")], "u")
    untimed["create_time"] = untimed["update_time"] = untimed["mapping"]["n0"]["message"]["create_time"] = None
    too_long = [conversation("Too long", [("user", "z" * 41)], key) for key in ("e", "f")]
    export = [bridged, *too_long, untimed]
    before = datetime.now(UTC)
    result = post_import(client, alice, {"json": export}).json()
    assert (result["skipped_conversations"], [c["title"] for c in result["chats"]]) == (2, ["Bridged", "Untimed"])
    chat = client.get(f"/v1/chats/{result['chats'][0]['id']}", headers=alice.headers).json()
    assert [(m["content"], m["name"]) for m in chat["messages"]] == [("a question", "Ada"), (at_the_limit, None)]
    assert chat["messages"][1]["parent_id"] == chat["messages"][0]["id"]  # hung below the skipped one's parent
    created = datetime.fromisoformat(result["chats"][1]["created_at"])
    assert before <= created <= datetime.now(UTC)  # no time in the export: now, in UTC


def test_a_message_without_a_time_takes_its_conversations(client: TestClient, alice: Account) -> None:
    half_timed = conversation("Half timed", [("user", "when?"), ("assistant", "then")], "h")
    half_timed["mapping"]["n0"]["message"]["create_time"] = None
    result = post_import(client, alice, {"json": [half_timed]}).json()
    chat = client.get(f"/v1/chats/{result['chats'][0]['id']}", headers=alice.headers).json()
    times = [datetime.fromisoformat(m["created_at"]) for m in chat["messages"]]
    assert times == [datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 1, UTC)]


def test_titles_are_trimmed_cut_to_200_characters_or_made_up(client: TestClient, alice: Account) -> None:
    def titles(conversations: list[dict]) -> None:
        conversations[0]["title"] = "  " + "長" * 250 + "  "
        conversations[2]["title"] = "   "

    result = post_import(client, alice, {"content": mutated(titles)}).json()
    assert [c["title"] for c in result["chats"]] == ["長" * 200, "Untitled chat"]


def test_imports_are_private_and_keys_are_per_user(client: TestClient, alice: Account, bob: Account) -> None:
    headers = {"Idempotency-Key": "my-export"}
    mine = post_import(client, alice, {"content": SAMPLE}, **headers).json()
    theirs = post_import(client, bob, {"content": SAMPLE}, **headers)
    assert theirs.status_code == 201  # bob's key is his own: his import is not alice's replay
    assert {c["id"] for c in theirs.json()["chats"]}.isdisjoint(c["id"] for c in mine["chats"])
    for chat in mine["chats"]:
        for url in (f"/v1/chats/{chat['id']}", f"/v1/chats/{chat['id']}/export", f"/v1/chats/{chat['id']}/messages"):
            assert client.get(url, headers=bob.headers).status_code == 404
    exported = json.loads(client.get("/v1/chats/export", headers=bob.headers).content)
    assert [c["id"] for c in exported] == [c["id"] for c in theirs.json()["chats"]]
    assert chat_count(alice) == chat_count(bob) == 2


def test_a_retried_multipart_upload_replays_the_first_import(client: TestClient, alice: Account) -> None:
    request = sample_ways_to_send()["zip as multipart"]
    # Each multipart body has its own boundary: the key is matched on the file, not the envelope.
    first = post_import(client, alice, request, **{"Idempotency-Key": "zip-1"})
    again = post_import(client, alice, request, **{"Idempotency-Key": "zip-1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert chat_count(alice) == 2
    assert post_import(client, alice, {"content": split_zip()}, **{"Idempotency-Key": "zip-1"}).status_code == 409
    assert chat_count(alice) == 2


def test_damaged_archives_are_4xx_never_500(client: TestClient, alice: Account) -> None:
    """Bytes flipped, cut or dropped anywhere in exports packed each way zipfile can read."""
    bases = [
        zipped({"conversations.json": SAMPLE, "user.json": b"{}"}),
        split_zip(),
        *(zipped({"conversations.json": SAMPLE}, method) for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)),
        zipped({"a/conversations-000.json": SAMPLE, "a/conversations-001.json": SAMPLE}, zipfile.ZIP_STORED),
    ]
    rng = random.Random(4)
    answers = collections.Counter()
    for _ in range(150):
        damaged = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(damaged))
            damaged[at : at + rng.choice((1, 1, 8, 40))] = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1))))
        before = chat_count(alice)
        response = post_import(client, alice, {"content": bytes(damaged)})
        answers[response.status_code] += 1
        assert response.status_code in (201, 413, 422), response.text
        if response.status_code != 201:
            assert isinstance(response.json()["detail"], str)
            assert chat_count(alice) == before
    assert answers[422] > 100


def test_a_chatgpt_tree_of_three_branches_reads_back_branch_by_branch(client: TestClient, alice: Account) -> None:
    """A question edited twice: three branches below one system message, each with its answer."""

    def node(node_id: str, parent: str | None, children: list[str], role: str | None, text: str, at: float) -> dict:
        message = None
        if role is not None:
            message = {
                "id": node_id,
                "author": {"role": role},
                "create_time": at,
                "content": {"content_type": "text", "parts": [text]},
                "metadata": {},
                "recipient": "all",
            }
        return {"id": node_id, "parent": parent, "children": children, "message": message}

    mapping = {
        "root": node("root", None, ["sys"], None, "", 0),
        "sys": node("sys", "root", ["q1", "q2", "q3"], "system", "Be brief.", 1_700_000_000),
    }
    for i in (1, 2, 3):
        mapping[f"q{i}"] = node(f"q{i}", "sys", [f"a{i}"], "user", f"question, version {i}", 1_700_000_000 + 10 * i)
        mapping[f"a{i}"] = node(f"a{i}", f"q{i}", [], "assistant", f"answer {i}", 1_700_000_001 + 10 * i)
    export = [{"title": "Edited twice", "create_time": 1_700_000_000, "mapping": mapping, "current_node": "a2"}]
    result = post_import(client, alice, {"content": json.dumps(export).encode()}).json()
    assert (result["messages"], result["skipped_messages"]) == (7, 0)
    chat_id = result["chats"][0]["id"]
    shown = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()
    assert [m["content"] for m in shown["messages"]] == ["Be brief.", "question, version 2", "answer 2"]
    questions = shown["messages"][1]["sibling_ids"]
    assert len(questions) == 3
    for i, question in enumerate(questions, start=1):
        branch = client.get(f"/v1/chats/{chat_id}?message_id={question}", headers=alice.headers).json()
        assert [m["content"] for m in branch["messages"]] == ["Be brief.", f"question, version {i}", f"answer {i}"]
        assert branch["current_message_id"] == shown["current_message_id"]
