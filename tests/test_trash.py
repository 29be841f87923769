"""The trash: a deleted chat waits there, found by nothing else, until it is restored,
deleted for good, emptied, or purged after TRASH_DAYS."""

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, update

import chat_store
from conftest import ENGINE as engine
from conftest import SETTINGS as settings
from conftest import Account, app
from main import purge
from models import ApiKey, Change, Chat, ChatMetadata, Message
from service.rules import BATCH_MAX


def new_chat(client: TestClient, account: Account, title: str, *contents: str) -> int:
    chat = client.post("/v1/chats/", json={"title": title, "metadata": {"project": "trash"}}, headers=account.headers)
    assert chat.status_code == 201, chat.text
    chat_id = chat.json()["id"]
    if contents:
        messages = [{"role": "user", "content": content} for content in contents]
        added = client.post(f"/v1/chats/{chat_id}/messages", json={"messages": messages}, headers=account.headers)
        assert added.status_code == 201, added.text
    return chat_id


def stored(model: type, **where: int) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return conn.scalar(query)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [chat["id"] for chat in response.json()]


def test_a_deleted_chat_is_in_the_trash_and_404_everywhere_else(client: TestClient, alice: Account) -> None:
    chat_id = new_chat(client, alice, "Quagga notes", "the quagga was a zebra")
    message_id = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["messages"][0]["id"]
    assert client.delete(f"/v1/chats/{chat_id}", headers=alice.headers).json() == {"ok": True}

    h = alice.headers
    assert chat_id not in ids(client.get("/v1/chats/?archived=true", headers=h))
    assert chat_id not in ids(client.get("/v1/chats/?metadata.project=trash", headers=h))
    assert client.get("/v1/chats/search?q=quagga", headers=h).json()["data"] == []
    assert client.get("/v1/chats/export", headers=h).json() == []
    for method, url, body in [
        ("GET", f"/v1/chats/{chat_id}", None),
        ("PATCH", f"/v1/chats/{chat_id}", {"title": "x"}),
        ("DELETE", f"/v1/chats/{chat_id}", None),
        ("GET", f"/v1/chats/{chat_id}/export", None),
        ("GET", f"/v1/chats/{chat_id}/messages", None),
        ("GET", f"/v1/chats/{chat_id}/path", None),
        ("POST", f"/v1/chats/{chat_id}/message", {"role": "user", "content": "x"}),
        ("POST", f"/v1/chats/{chat_id}/messages", {"messages": [{"role": "user", "content": "x"}]}),
        ("PATCH", f"/v1/chats/{chat_id}/messages/{message_id}", {"content": "x"}),
        ("DELETE", f"/v1/chats/{chat_id}/messages/{message_id}", None),
    ]:
        assert client.request(method, url, json=body, headers=h).status_code == 404, (method, url)

    trash = client.get("/v1/chats/?trashed=true", headers=h)
    assert ids(trash) == [chat_id]
    assert trash.json()[0]["title"] == "Quagga notes" and trash.json()[0]["trashed_at"].endswith("Z")
    assert stored(Message, chat_id=chat_id) == 1


def test_restore_brings_the_chat_back_with_its_messages(client: TestClient, alice: Account, bob: Account) -> None:
    chat_id = new_chat(client, alice, "Okapi", "okapi facts", "more okapi")
    client.delete(f"/v1/chats/{chat_id}", headers=alice.headers)
    refused = client.post(f"/v1/chats/{chat_id}/restore", headers=bob.headers)
    assert (refused.status_code, refused.json()) == (404, {"detail": "Chat not found in the trash"})
    restored = client.post(f"/v1/chats/{chat_id}/restore", headers=alice.headers)
    assert restored.status_code == 200 and restored.json()["id"] == chat_id
    # Only a chat in the trash can be restored.
    again = client.post(f"/v1/chats/{chat_id}/restore", headers=alice.headers)
    assert (again.status_code, again.json()) == (404, {"detail": "Chat not found in the trash"})
    chat = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()
    assert [m["content"] for m in chat["messages"]] == ["okapi facts", "more okapi"]
    assert client.get("/v1/chats/?trashed=true", headers=alice.headers).json() == []
    assert len(client.get("/v1/chats/search?q=okapi", headers=alice.headers).json()["data"]) == 3


def test_emptying_the_trash_and_permanent_deletes(client: TestClient, alice: Account, bob: Account) -> None:
    kept, trashed, gone = (new_chat(client, alice, title, "words") for title in ("kept", "trashed", "gone"))
    bobs = new_chat(client, bob, "bob's", "words")
    client.delete(f"/v1/chats/{bobs}", headers=bob.headers)
    client.delete(f"/v1/chats/{trashed}", headers=alice.headers)
    assert client.delete(f"/v1/chats/{bobs}?permanent=true", headers=alice.headers).status_code == 404
    assert client.delete(f"/v1/chats/{gone}?permanent=true", headers=alice.headers).json() == {"ok": True}
    assert stored(Chat, id=gone) == 0 and stored(Message, chat_id=gone) == 0
    assert client.get("/v1/chats/?trashed=true", headers=alice.headers).json()[0]["id"] == trashed

    assert client.delete("/v1/chats/trash", headers=alice.headers).json() == {"deleted": 1}
    assert stored(Chat, id=trashed) == 0 and stored(Message, chat_id=trashed) == 0
    assert ids(client.get("/v1/chats/", headers=alice.headers)) == [kept]
    # Bob's trash is his own.
    assert ids(client.get("/v1/chats/?trashed=true", headers=bob.headers)) == [bobs]


def test_delete_all_moves_everything_to_the_trash(client: TestClient, alice: Account) -> None:
    first, second = new_chat(client, alice, "one", "a"), new_chat(client, alice, "two", "b")
    assert client.delete("/v1/chats/?confirm=true", headers=alice.headers).json() == {"deleted": 2}
    assert client.get("/v1/chats/", headers=alice.headers).json() == []
    assert sorted(ids(client.get("/v1/chats/?trashed=true", headers=alice.headers))) == [first, second]
    assert client.post(f"/v1/chats/{first}/restore", headers=alice.headers).status_code == 200
    assert ids(client.get("/v1/chats/", headers=alice.headers)) == [first]


def test_delete_all_moves_more_chats_than_one_statement_updates(client: TestClient, alice: Account) -> None:
    count = 2 * BATCH_MAX + 1
    now = datetime.now(UTC)
    with engine.begin() as conn:  # made directly: thousands of POSTs would only be slower
        rows = [
            {"owner_id": alice.id, "title": f"chat {i}", "created_at": now, "updated_at": now} for i in range(count)
        ]
        conn.execute(insert(Chat), rows)
    assert client.delete("/v1/chats/?confirm=true", headers=alice.headers).json() == {"deleted": count}
    assert stored(Chat, owner_id=alice.id) == count
    with engine.connect() as conn:
        live = select(func.count()).select_from(Chat).where(Chat.owner_id == alice.id, Chat.trashed_at.is_(None))
        assert conn.scalar(live) == 0


def test_the_purge_deletes_what_stayed_in_the_trash_too_long(
    client: TestClient, alice: Account, far_time_zone: None
) -> None:
    titles = ("old", "nearly", "recent", "live")
    old, nearly, recent, live = (new_chat(client, alice, title, "text") for title in titles)
    for chat in (old, nearly, recent):
        client.delete(f"/v1/chats/{chat}", headers=alice.headers)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        long_ago = now - timedelta(days=settings.trash_days, hours=1)
        conn.execute(update(Chat).where(Chat.id == old).values(trashed_at=long_ago))
        conn.execute(update(Chat).where(Chat.id == nearly).values(trashed_at=long_ago + timedelta(hours=2)))
        conn.execute(update(Chat).where(Chat.id == recent).values(trashed_at=now - timedelta(days=1)))
    with engine.begin() as conn:
        assert chat_store.purge_expired(conn, settings.trash_days) >= 1
    assert stored(Chat, id=old) == 0 and stored(Message, chat_id=old) == 0
    assert ids(client.get("/v1/chats/?trashed=true", headers=alice.headers)) == [recent, nearly]
    assert ids(client.get("/v1/chats/", headers=alice.headers)) == [live]


def test_the_app_purges_on_its_own(client: TestClient, alice: Account) -> None:
    chat_id = new_chat(client, alice, "expired", "text")
    client.delete(f"/v1/chats/{chat_id}", headers=alice.headers)
    with engine.begin() as conn:
        conn.execute(update(Chat).where(Chat.id == chat_id).values(trashed_at=datetime(2000, 1, 1, tzinfo=UTC)))
    assert client.portal.call(purge, app) >= 1
    assert client.get("/v1/chats/?trashed=true", headers=alice.headers).json() == []


def test_deleting_the_account_deletes_the_trash_and_all_else(client: TestClient, alice: Account) -> None:
    trashed = new_chat(client, alice, "in the trash", "text")
    client.delete(f"/v1/chats/{trashed}", headers=alice.headers)
    new_chat(client, alice, "live", "text")
    key = client.post("/v1/auth/keys", json={"name": "k", "scopes": ["read"]}, headers=alice.headers)
    assert key.status_code == 201
    deleted = client.request("DELETE", "/v1/auth/me", json={"password": alice.password}, headers=alice.headers)
    assert deleted.status_code == 200
    for model in (Chat, Message, ApiKey, Change, ChatMetadata):
        assert stored(model, owner_id=alice.id) == 0, model


def test_bad_trash_requests_are_422(client: TestClient, alice: Account) -> None:
    for url in ["/v1/chats/?trashed=maybe", "/v1/chats/1?permanent=2"]:
        method = "DELETE" if "permanent" in url else "GET"
        assert client.request(method, url, headers=alice.headers).status_code == 422
    assert client.post("/v1/chats/0/restore", headers=alice.headers).status_code == 422
