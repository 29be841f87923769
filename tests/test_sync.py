"""Sync: GET /v1/chats/changes pages through what changed in the caller's chats and
messages, tombstones included, and skips nothing while others write."""

import threading
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

import chat_store
from conftest import ENGINE as engine
from conftest import SETTINGS as settings
from conftest import Account
from models import Change


def changes(client: TestClient, account: Account, since: str | None = None, limit: int = 100) -> dict:
    params = {"limit": limit} | ({} if since is None else {"since": since})
    response = client.get("/v1/chats/changes", params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


def entries(page: dict) -> list[tuple[str, int, int, str]]:
    return [(e["kind"], e["id"], e["chat_id"], e["change"]) for e in page["data"]]


def test_every_change_is_listed_in_order_with_tombstones(client: TestClient, alice: Account, bob: Account) -> None:
    start = changes(client, alice)
    assert start["data"] == [] and start["has_more"] is False
    h = alice.headers
    chat = client.post("/v1/chats/", json={"title": "Sync"}, headers=h).json()["id"]
    batch = {"messages": [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]}
    one, two = (m["id"] for m in client.post(f"/v1/chats/{chat}/messages", json=batch, headers=h).json())
    client.patch(f"/v1/chats/{chat}/messages/{one}", json={"content": "uno"}, headers=h)
    client.delete(f"/v1/chats/{chat}/messages/{two}", headers=h)
    client.patch(f"/v1/chats/{chat}", json={"title": "Renamed"}, headers=h)
    client.post("/v1/chats/", json={"title": "Bob's own"}, headers=bob.headers)
    client.delete(f"/v1/chats/{chat}", headers=h)
    client.post(f"/v1/chats/{chat}/restore", headers=h)

    page = changes(client, alice, start["cursor"])
    assert {e["chat_id"] for e in page["data"]} == {chat}
    # What each of Alice's requests above changed, in order (Bob's chat is not hers).
    by_request = [
        [("chat", chat, "created")],
        [("message", one, "created"), ("message", two, "created"), ("chat", chat, "updated")],
        [("message", one, "updated"), ("chat", chat, "updated")],
        [("message", two, "deleted"), ("chat", chat, "updated")],
        [("chat", chat, "updated")],
        [("chat", chat, "deleted")],
        [("chat", chat, "created"), ("message", one, "created")],
    ]
    assert [(e["kind"], e["id"], e["change"]) for e in page["data"]] == [entry for step in by_request for entry in step]
    assert all(e["at"].endswith("Z") for e in page["data"])
    assert changes(client, alice, page["cursor"]) == {"data": [], "cursor": page["cursor"], "has_more": False}


def test_a_chat_created_with_its_messages_lists_each_of_them(client: TestClient, alice: Account) -> None:
    start = changes(client, alice)["cursor"]
    body = {"title": "Whole", "messages": [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]}
    chat = client.post("/v1/chats/", json=body, headers=alice.headers).json()["id"]
    one, two = (m["id"] for m in client.get(f"/v1/chats/{chat}", headers=alice.headers).json()["messages"])
    assert entries(changes(client, alice, start)) == [
        ("chat", chat, chat, "created"),
        ("message", one, chat, "created"),
        ("message", two, chat, "created"),
    ]


def test_pages_follow_one_another(client: TestClient, alice: Account) -> None:
    start = changes(client, alice)["cursor"]
    for i in range(7):
        client.post("/v1/chats/", json={"title": f"chat {i}"}, headers=alice.headers)
    seen, cursor, pages = [], start, 0
    while True:
        page = changes(client, alice, cursor, limit=3)
        seen += entries(page)
        cursor, pages = page["cursor"], pages + 1
        if not page["has_more"]:
            break
    assert pages == 3 and len(seen) == 7 and len(set(seen)) == 7


def test_a_page_that_reaches_the_end_of_the_log_says_nothing_more_follows(client: TestClient, alice: Account) -> None:
    start = changes(client, alice)["cursor"]
    for i in range(6):
        client.post("/v1/chats/", json={"title": f"chat {i}"}, headers=alice.headers)
    first = changes(client, alice, start, limit=3)
    assert len(first["data"]) == 3 and first["has_more"] is True
    last = changes(client, alice, first["cursor"], limit=3)
    assert len(last["data"]) == 3 and last["has_more"] is False


def test_permanent_deletes_are_tombstones_and_emptying_the_trash_adds_none(client: TestClient, alice: Account) -> None:
    first = client.post("/v1/chats/", json={"title": "a"}, headers=alice.headers).json()["id"]
    second = client.post("/v1/chats/", json={"title": "b"}, headers=alice.headers).json()["id"]
    cursor = changes(client, alice)["cursor"]
    client.delete(f"/v1/chats/{first}?permanent=true", headers=alice.headers)
    client.delete(f"/v1/chats/{second}", headers=alice.headers)
    client.delete("/v1/chats/trash", headers=alice.headers)
    assert entries(changes(client, alice, cursor)) == [
        ("chat", first, first, "deleted"),
        ("chat", second, second, "deleted"),
    ]


def test_a_cursor_older_than_the_log_or_not_yours_is_410(client: TestClient, alice: Account) -> None:
    client.post("/v1/chats/", json={"title": "old"}, headers=alice.headers)
    assert changes(client, alice, "0")["data"]
    future = str(int(changes(client, alice)["cursor"]) + 1)
    assert client.get(f"/v1/chats/changes?since={future}", headers=alice.headers).status_code == 410
    with engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(days=settings.trash_days + 1)
        conn.execute(update(Change).where(Change.owner_id == alice.id).values(at=past))
    with engine.begin() as conn:
        chat_store.purge_expired(conn, settings.trash_days)
    gone = client.get("/v1/chats/changes?since=0", headers=alice.headers)
    assert gone.status_code == 410 and "reload" in gone.json()["detail"]
    current = changes(client, alice)["cursor"]
    assert changes(client, alice, current)["data"] == []


def test_bad_cursors_are_422(client: TestClient, alice: Account) -> None:
    for query in ["since=-1", "since=abc", "since=1.5", "since=" + "9" * 21, "limit=0", "limit=1001"]:
        assert client.get(f"/v1/chats/changes?{query}", headers=alice.headers).status_code == 422, query


def test_a_client_syncing_while_others_write_ends_with_what_is_stored(client: TestClient, alice: Account) -> None:
    """Writers add, edit and delete messages and chats at once while a client syncs in
    small pages; the copy it builds from the changes alone must equal what is stored."""
    h = alice.headers
    start = changes(client, alice)["cursor"]
    chats: dict[int, None] = {}
    messages: dict[int, int] = {}  # message -> chat, as the syncing client sees it
    cursor = start
    failures: list[BaseException] = []

    def apply(page: dict) -> None:
        for kind, key, chat, change in entries(page):
            if kind == "chat" and change == "deleted":
                chats.pop(key, None)
                for message in [m for m, c in messages.items() if c == key]:
                    del messages[message]
            elif kind == "chat":
                chats[key] = None
            elif change == "deleted":
                messages.pop(key, None)
            else:
                messages[key] = chat

    def writer(n: int) -> None:
        try:
            for turn in range(6):
                chat = client.post("/v1/chats/", json={"title": f"w{n} r{turn}"}, headers=h).json()["id"]
                batch = {"messages": [{"role": "user", "content": f"m{i}"} for i in range(3)]}
                made = [m["id"] for m in client.post(f"/v1/chats/{chat}/messages", json=batch, headers=h).json()]
                client.patch(f"/v1/chats/{chat}/messages/{made[0]}", json={"content": "edited"}, headers=h)
                client.delete(f"/v1/chats/{chat}/messages/{made[1]}", headers=h)
                if turn % 3 == 1:
                    client.delete(f"/v1/chats/{chat}", headers=h)
                if turn % 3 == 2:
                    client.delete(f"/v1/chats/{chat}?permanent=true", headers=h)
        except BaseException as error:
            failures.append(error)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in writers:
        thread.start()
    while any(thread.is_alive() for thread in writers):
        page = changes(client, alice, cursor, limit=5)
        apply(page)
        cursor = page["cursor"]
    while True:
        page = changes(client, alice, cursor, limit=50)
        apply(page)
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert failures == []

    stored_chats = {c["id"] for c in client.get("/v1/chats/?limit=100", headers=h).json()}
    stored_messages = {}
    for chat in stored_chats:
        for message in client.get(f"/v1/chats/{chat}/messages?limit=100", headers=h).json()["data"]:
            stored_messages[message["id"]] = chat
    assert len(stored_chats) == 6 and len(stored_messages) == 12
    assert set(chats) == stored_chats
    assert messages == stored_messages


def test_bulk_actions_are_in_the_change_log_and_raise_each_chats_version(client: TestClient, alice: Account) -> None:
    h = alice.headers
    chats = [client.post("/v1/chats/", json={"title": f"bulk {i}"}, headers=h).json()["id"] for i in range(3)]
    start = changes(client, alice)["cursor"]
    archived = client.post("/v1/chats/bulk", json={"ids": chats[:2], "action": "archive"}, headers=h)
    assert archived.json()["ids"] == chats[:2]
    shown = client.get(f"/v1/chats/{chats[0]}", headers=h)
    assert shown.headers["etag"] == '"2"'  # created at 1, archived once
    client.post("/v1/chats/bulk", json={"ids": [chats[1]], "action": "trash"}, headers=h)
    # A delete for good: of a chat in the trash (already gone to sync) and of a live one.
    client.post("/v1/chats/bulk", json={"ids": chats[1:], "action": "delete"}, headers=h)

    page = changes(client, alice, start)
    assert entries(page) == [
        ("chat", chats[0], chats[0], "updated"),
        ("chat", chats[1], chats[1], "updated"),
        ("chat", chats[1], chats[1], "deleted"),
        ("chat", chats[2], chats[2], "deleted"),
    ]
    # The archive's entry is dated when the chat was changed.
    assert page["data"][0]["at"] == shown.json()["updated_at"]


def test_times_are_utc_whatever_the_servers_time_zone(client: TestClient, alice: Account, far_time_zone: None) -> None:
    def recent(stamp: str) -> bool:
        # README: UTC ISO 8601 with Z, whatever the process's or the database session's zone.
        return stamp.endswith("Z") and abs(datetime.fromisoformat(stamp) - datetime.now(UTC)) < timedelta(minutes=5)

    h = alice.headers
    key = client.post("/v1/auth/keys", json={"name": "zone", "scopes": ["read"]}, headers=h).json()
    assert recent(key["created_at"]), key
    start = changes(client, alice)["cursor"]
    with_message = {"title": "Zones", "messages": [{"role": "user", "content": "hi"}]}
    created = client.post("/v1/chats/", json=with_message, headers=h)
    chat = created.json()["id"]
    assert recent(created.json()["created_at"]) and recent(created.json()["updated_at"])
    assert recent(client.get(f"/v1/chats/{chat}", headers=h).json()["messages"][0]["created_at"])
    client.post("/v1/chats/bulk", json={"ids": [chat], "action": "pin"}, headers=h)
    assert recent(client.get(f"/v1/chats/{chat}", headers=h).json()["updated_at"])
    client.patch(f"/v1/chats/{chat}", json={"title": "Zones, renamed"}, headers=h)
    batch = {"messages": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]}
    one, two = (m["id"] for m in client.post(f"/v1/chats/{chat}/messages", json=batch, headers=h).json())
    client.patch(f"/v1/chats/{chat}/messages/{one}", json={"content": "uno"}, headers=h)
    client.delete(f"/v1/chats/{chat}/messages/{two}", headers=h)
    client.delete(f"/v1/chats/{chat}", headers=h)
    client.post(f"/v1/chats/{chat}/restore", headers=h)
    logged = changes(client, alice, start)["data"]
    assert [entry["change"] for entry in logged] == [
        *["created", "created"],  # created with a message
        "updated",  # pinned
        "updated",  # renamed
        *["created", "created", "updated"],  # two messages added
        *["updated", "updated"],  # one edited
        *["deleted", "updated"],  # one deleted
        "deleted",  # to the trash
        *["created", "created", "created"],  # restored, with its two messages
    ]
    assert all(recent(entry["at"]) for entry in logged), logged
    start = changes(client, alice)["cursor"]
    client.delete(f"/v1/chats/{chat}?permanent=true", headers=h)
    assert [(e["change"], recent(e["at"])) for e in changes(client, alice, start)["data"]] == [("deleted", True)]
