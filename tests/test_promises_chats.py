"""README promises about chats, messages, idempotent posts, body limits, CORS and the
SQLite durability setting, at the precision the README states them."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select, text, update

from config import Settings
from conftest import ENGINE as engine
from conftest import SETTINGS as settings
from conftest import Account, preflight
from main import create_app
from models import Chat, Message

LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)


def messages_in(chat_id: int) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Message).where(Message.chat_id == chat_id))


def chats_of(account: Account) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Chat).where(Chat.owner_id == account.id))


def backdate(chat_id: int) -> str:
    """Sets the chat's updated_at far in the past: any change to it must move it forward."""
    with engine.begin() as connection:
        connection.execute(update(Chat).where(Chat.id == chat_id).values(updated_at=LONG_AGO))
    return "2001-01-01T00:00:00Z"


def updated_at(client: TestClient, account: Account, chat_id: int) -> str:
    return client.get(f"/v1/chats/{chat_id}", headers=account.headers).json()["updated_at"]


def test_editing_or_deleting_a_message_moves_its_chats_updated_at(
    client: TestClient, alice: Account, chat_id: int
) -> None:
    batch = {"messages": [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]}
    first, second = client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=alice.headers).json()
    long_ago = backdate(chat_id)
    edited = client.patch(f"/v1/chats/{chat_id}/messages/{first['id']}", json={"content": "1"}, headers=alice.headers)
    assert edited.status_code == 200
    after_edit = updated_at(client, alice, chat_id)
    assert after_edit > long_ago and after_edit >= second["created_at"]

    long_ago = backdate(chat_id)
    assert client.delete(f"/v1/chats/{chat_id}/messages/{second['id']}", headers=alice.headers).status_code == 200
    assert updated_at(client, alice, chat_id) > long_ago

    # A failed edit changes nothing, updated_at included.
    long_ago = backdate(chat_id)
    refused = client.patch(f"/v1/chats/{chat_id}/messages/{first['id']}", json={"role": "x"}, headers=alice.headers)
    assert refused.status_code == 422
    assert updated_at(client, alice, chat_id) == long_ago


def test_a_chat_patch_moves_its_updated_at(client: TestClient, alice: Account, chat_id: int) -> None:
    long_ago = backdate(chat_id)
    assert client.patch(f"/v1/chats/{chat_id}", json={"pinned": True}, headers=alice.headers).status_code == 200
    assert updated_at(client, alice, chat_id) > long_ago


def test_an_empty_chat_patch_answers_the_chat_as_it_is(
    client: TestClient, alice: Account, bob: Account, chat_id: int
) -> None:
    before = client.get(f"/v1/chats/{chat_id}", headers=alice.headers)
    long_ago = backdate(chat_id)
    unchanged = client.patch(f"/v1/chats/{chat_id}", json={}, headers=alice.headers)
    assert unchanged.status_code == 200 and unchanged.headers["etag"] == before.headers["etag"]
    assert (unchanged.json()["id"], unchanged.json()["title"]) == (chat_id, before.json()["title"])
    assert updated_at(client, alice, chat_id) == long_ago
    assert client.patch(f"/v1/chats/{chat_id}", json={}, headers=bob.headers).status_code == 404


def test_an_idempotency_key_reused_on_another_endpoint_is_409_and_creates_nothing(
    client: TestClient, alice: Account, chat_id: int
) -> None:
    headers = {**alice.headers, "Idempotency-Key": "one-key-for-everything"}
    created = client.post("/v1/chats/", json={"title": "first use"}, headers=headers)
    assert created.status_code == 201
    chats, messages = chats_of(alice), messages_in(chat_id)
    message = {"role": "user", "content": "first use"}
    for url, body in [
        (f"/v1/chats/{chat_id}/message", message),
        (f"/v1/chats/message?chat_id={chat_id}", message),
        (f"/v1/chats/{chat_id}/messages", {"messages": [message]}),
        (f"/v1/chats/{created.json()['id']}/message", message),
    ]:
        response = client.post(url, json=body, headers=headers)
        assert response.status_code == 409, (url, response.text)
        assert response.json() == {"detail": "This Idempotency-Key was already used for another request"}
    imported = client.post("/v1/chats/import", content=b"[]", headers={**headers, "Content-Type": "application/json"})
    assert imported.status_code == 409
    assert (chats_of(alice), messages_in(chat_id)) == (chats, messages)
    # The first request, retried, still gets its own answer.
    retried = client.post("/v1/chats/", json={"title": "first use"}, headers=headers)
    assert (retried.status_code, retried.json()) == (201, created.json())


def test_the_same_key_and_body_on_another_chats_messages_is_409(
    client: TestClient, alice: Account, chat_id: int
) -> None:
    other_chat = client.post("/v1/chats/", json={"title": "other"}, headers=alice.headers).json()["id"]
    headers = {**alice.headers, "Idempotency-Key": "same-body-elsewhere"}
    message = {"role": "user", "content": "the same words"}
    assert client.post(f"/v1/chats/{chat_id}/message", json=message, headers=headers).status_code == 201
    for url, body in [
        (f"/v1/chats/{other_chat}/message", message),
        (f"/v1/chats/message?chat_id={other_chat}", message),
    ]:
        response = client.post(url, json=body, headers=headers)
        assert response.status_code == 409, (url, response.text)
    batch = {"messages": [message]}
    assert client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=headers).status_code == 409
    assert (messages_in(chat_id), messages_in(other_chat)) == (1, 0)


def test_the_query_url_message_form_takes_a_key_and_replays(client: TestClient, alice: Account, chat_id: int) -> None:
    headers = {**alice.headers, "Idempotency-Key": "query-form"}
    url = f"/v1/chats/message?chat_id={chat_id}"
    answers = [client.post(url, json={"role": "user", "content": "once"}, headers=headers) for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json() == answers[1].json()
    assert messages_in(chat_id) == 1
    other = client.post(url, json={"role": "user", "content": "another body"}, headers=headers)
    assert other.status_code == 409
    assert messages_in(chat_id) == 1


def batch_of_exactly(size: int) -> bytes:
    """A valid bulk upload whose JSON body is exactly `size` bytes."""
    content_bytes = settings.max_content_bytes - 1000
    messages = [{"role": "user", "content": ""} for _ in range(size // content_bytes + 1)]
    empty = len(json.dumps({"messages": messages}).encode())
    room = size - empty
    for message in messages:
        message["content"] = "x" * min(room, content_bytes)
        room -= len(message["content"])
    body = json.dumps({"messages": messages}).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "streamed"])
def test_a_body_of_exactly_max_body_bytes_is_accepted_and_one_byte_more_is_413(
    client: TestClient, alice: Account, chat_id: int, streamed: bool
) -> None:
    limit = settings.max_body_bytes
    assert limit == 2 * 1024 * 1024
    headers = {**alice.headers, "Content-Type": "application/json"}
    url = f"/v1/chats/{chat_id}/messages"

    def send(body: bytes):
        if streamed:  # no Content-Length: counted as it arrives
            return client.post(
                url, content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]), headers=headers
            )
        return client.post(url, content=body, headers=headers)

    exact = batch_of_exactly(limit)
    accepted = send(exact)
    assert accepted.status_code == 201, accepted.text[:200]
    stored = messages_in(chat_id)
    over = send(exact[:-1] + b" }")
    assert over.status_code == 413
    assert over.json() == {"detail": f"Request body is larger than {limit} bytes"}
    assert messages_in(chat_id) == stored


def test_a_preflight_is_cached_for_ten_minutes(client: TestClient) -> None:
    response = preflight(client, "/v1/chats/")
    assert response.status_code == 200
    assert response.headers["access-control-max-age"] == "600"


@pytest.mark.parametrize(("setting", "level"), [(None, 2), ("NORMAL", 1)])
def test_sqlite_synchronous_sets_the_services_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None, level: int
) -> None:
    """What the service's own engine sets on each SQLite connection it opens (2 = FULL, 1 = NORMAL)."""
    monkeypatch.delenv("SQLITE_SYNCHRONOUS", raising=False)
    chosen = {} if setting is None else {"sqlite_synchronous": setting}
    app = create_app(
        Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'chat.db'}", secret_key="s" * 48, **chosen)
    )
    engine = app.state.database.engine
    with engine.connect() as conn:
        assert conn.scalar(text("PRAGMA synchronous")) == level
    engine.dispose()


def test_an_unknown_sqlite_synchronous_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'chat.db'}", sqlite_synchronous="OFF")
