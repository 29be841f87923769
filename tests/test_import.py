"""POST /v1/chats/import: a ChatGPT export in, chats out; nothing in when it is broken."""

import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from config import settings
from conftest import Account
from database import engine
from models import Chat

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


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


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


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json at all",
        b'{"title": "an object, not a list"}',
        json.dumps(EXPORT).encode()[:-40],  # truncated
        json.dumps([EXPORT[0], "not a conversation"]).encode(),
        json.dumps([{**EXPORT[0], "mapping": []}]).encode(),
        zipped({"readme.txt": b"no conversations here"}),
        b"PK\x03\x04 a broken zip",
    ],
)
def test_a_broken_export_is_422_and_imports_nothing(client: TestClient, alice: Account, body: bytes) -> None:
    response = client.post(
        "/v1/chats/import", content=body, headers={**alice.headers, "Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str | list)
    assert chat_count(alice) == 0


def test_a_nul_in_any_message_rejects_the_whole_import(client: TestClient, alice: Account) -> None:
    broken = [EXPORT[0], conversation("bad", [("user", "nul \x00 here")], "d")]
    assert client.post("/v1/chats/import", json=broken, headers=alice.headers).status_code == 422
    assert chat_count(alice) == 0


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


def test_import_needs_a_token(client: TestClient) -> None:
    assert client.post("/v1/chats/import", json=EXPORT).status_code == 401
