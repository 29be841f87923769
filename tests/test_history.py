"""History in and out: paging, bulk upload, edits, metadata, export, idempotent posts."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from config import Settings
from conftest import DATABASE_URL, PASSWORD, SETTINGS, WORK_DIR, Account
from conftest import ENGINE as engine
from main import create_app
from models import IdempotencyKey, Message
from server import PYTHON, free_port, running, server_env
from service.exports import CHATS_PAGE, HISTORY_PAGE


def count_messages(chat_id: int) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Message).where(Message.chat_id == chat_id))


def upload(client: TestClient, account: Account, chat_id: int, messages: list[dict], **headers: str):
    return client.post(
        f"/v1/chats/{chat_id}/messages", json={"messages": messages}, headers={**account.headers, **headers}
    )


def numbered(count: int) -> list[dict]:
    return [{"role": ("user", "assistant")[i % 2], "content": f"turn {i}"} for i in range(count)]


# --- paging


def test_pages_walk_1000_messages_forwards_and_backwards_without_gap_or_repeat(
    client: TestClient, alice: Account, chat_id: int
) -> None:
    created = upload(client, alice, chat_id, numbered(1000))
    assert created.status_code == 201
    all_ids = [m["id"] for m in created.json()]
    url = f"/v1/chats/{chat_id}/messages"

    forwards, after = [], None
    while True:
        page = client.get(url, params={"limit": 100} | ({"after": after} if after else {}), headers=alice.headers)
        body = page.json()
        forwards += [m["id"] for m in body["data"]]
        assert body["first_id"] == body["data"][0]["id"] and body["last_id"] == body["data"][-1]["id"]
        if not body["has_more"]:
            break
        after = body["last_id"]
    assert forwards == all_ids

    backwards, before = [], all_ids[-1] + 1
    while True:
        body = client.get(url, params={"limit": 100, "before": before}, headers=alice.headers).json()
        assert [m["id"] for m in body["data"]] == sorted(m["id"] for m in body["data"])  # asc within a page
        backwards = [m["id"] for m in body["data"]] + backwards
        if not body["has_more"]:
            break
        before = body["first_id"]
    assert backwards == all_ids

    newest_first, after = [], None
    while True:
        params = {"limit": 64, "order": "desc"} | ({"after": after} if after else {})
        body = client.get(url, params=params, headers=alice.headers).json()
        newest_first += [m["id"] for m in body["data"]]
        if not body["has_more"]:
            break
        after = body["last_id"]
    assert newest_first == all_ids[::-1]


def test_message_page_defaults_and_bounds(client: TestClient, alice: Account, bob: Account, chat_id: int) -> None:
    upload(client, alice, chat_id, numbered(60))
    url = f"/v1/chats/{chat_id}/messages"
    body = client.get(url, headers=alice.headers).json()
    assert len(body["data"]) == 50 and body["has_more"] is True
    assert [m["content"] for m in body["data"]][:2] == ["turn 0", "turn 1"]
    for bad in ({"limit": 0}, {"limit": 101}, {"order": "up"}, {"after": "x"}, {"before": 0}, {"after": 2**63}):
        assert client.get(url, params=bad, headers=alice.headers).status_code == 422, bad
    assert client.get(url, headers=bob.headers).status_code == 404
    empty = client.get(url, params={"after": 2**63 - 1}, headers=alice.headers).json()
    assert empty == {"data": [], "first_id": None, "last_id": None, "has_more": False}


# --- bulk upload


def test_bulk_upload_stores_in_order_and_a_bad_item_stores_nothing(
    client: TestClient, alice: Account, chat_id: int
) -> None:
    good = upload(client, alice, chat_id, numbered(3))
    assert good.status_code == 201
    assert [m["content"] for m in good.json()] == ["turn 0", "turn 1", "turn 2"]

    batch = numbered(10)
    batch[7] = {"role": "wizard", "content": "nope"}
    bad = upload(client, alice, chat_id, batch)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][:3] == ["body", "messages", 7]
    assert count_messages(chat_id) == 3

    assert upload(client, alice, chat_id, []).status_code == 422
    assert upload(client, alice, chat_id, numbered(1001)).status_code == 422
    assert upload(client, alice, chat_id, numbered(1000)).status_code == 201
    assert count_messages(chat_id) == 1003


def test_bulk_upload_into_another_users_chat_is_404(
    client: TestClient, alice: Account, bob: Account, chat_id: int
) -> None:
    assert upload(client, bob, chat_id, numbered(5)).status_code == 404
    assert count_messages(chat_id) == 0


def test_create_chat_with_its_history(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/v1/chats/",
        json={"title": "Imported", "metadata": {"source": "cli"}, "messages": numbered(4)},
        headers=alice.headers,
    )
    assert response.status_code == 201
    chat = client.get(f"/v1/chats/{response.json()['id']}", headers=alice.headers).json()
    assert chat["metadata"] == {"source": "cli"}
    assert [m["content"] for m in chat["messages"]] == [f"turn {i}" for i in range(4)]


# --- metadata, names, models


def test_optional_fields_come_back_unchanged(client: TestClient, alice: Account, chat_id: int) -> None:
    metadata = {"z-last": "first key", "温度": "0.7", "emoji 🙂": 'value with "quotes" and \n newline'}
    sent = {"role": "assistant", "content": "hi", "name": "helper_bot", "model": "gpt-4o-mini", "metadata": metadata}
    created = client.post(f"/v1/chats/{chat_id}/message", json=sent, headers=alice.headers)
    assert created.status_code == 201
    read = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["messages"][0]
    for body in (created.json(), read):
        assert {k: body[k] for k in sent} == sent
        assert list(body["metadata"]) == list(metadata)  # the client's key order too


@pytest.mark.parametrize(
    "extra",
    [
        {"metadata": {str(i): "v" for i in range(17)}},
        {"metadata": {"k" * 65: "v"}},
        {"metadata": {"": "v"}},
        {"metadata": {"k": "v" * 513}},
        {"metadata": {"k": 1}},
        {"metadata": {"k": {"nested": "v"}}},
        {"metadata": ["not", "an", "object"]},
        {"metadata": {"k": "nul\x00"}},
        {"name": "n" * 65},
        {"model": "m" * 101},
    ],
)
def test_optional_fields_beyond_their_limits_are_422(client: TestClient, alice: Account, chat_id: int, extra: dict):
    response = client.post(
        f"/v1/chats/{chat_id}/message", json={"role": "user", "content": "x", **extra}, headers=alice.headers
    )
    assert response.status_code == 422
    if "metadata" in extra:  # chats take metadata too, by the same rule
        assert client.post("/v1/chats/", json={"title": "t", **extra}, headers=alice.headers).status_code == 422
    assert count_messages(chat_id) == 0


# --- editing chats and messages


def test_patch_chat_renames_pins_archives_and_sets_metadata(client: TestClient, alice: Account) -> None:
    ids = [client.post("/v1/chats/", json={"title": f"c{i}"}, headers=alice.headers).json()["id"] for i in range(3)]
    url = "/v1/chats/{}"
    renamed = client.patch(url.format(ids[0]), json={"title": "  Renamed "}, headers=alice.headers)
    assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed"
    assert client.patch(url.format(ids[0]), json={"pinned": True}, headers=alice.headers).json()["pinned"] is True
    archived = client.patch(url.format(ids[1]), json={"archived": True, "metadata": {"a": "b"}}, headers=alice.headers)
    assert archived.json()["archived"] is True and archived.json()["metadata"] == {"a": "b"}
    assert archived.json()["title"] == "c1"  # fields left out stay as they were

    listed = [c["id"] for c in client.get("/v1/chats/", headers=alice.headers).json()]
    assert listed == [ids[0], ids[2]]  # pinned first; archived hidden
    with_archived = [c["id"] for c in client.get("/v1/chats/?archived=true", headers=alice.headers).json()]
    assert with_archived == [ids[0], ids[1], ids[2]]


@pytest.mark.parametrize(
    "body", [{"title": None}, {"title": ""}, {"pinned": "maybe"}, {"metadata": None}, [], {"id": 1}, {"titel": "typo"}]
)
def test_invalid_chat_patches_are_422(client: TestClient, alice: Account, chat_id: int, body: object) -> None:
    assert client.patch(f"/v1/chats/{chat_id}", json=body, headers=alice.headers).status_code == 422
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["title"] == "Alice's chat"


def test_edit_and_delete_a_message(client: TestClient, alice: Account, bob: Account, chat_id: int) -> None:
    first, second = upload(client, alice, chat_id, numbered(2)).json()
    url = f"/v1/chats/{chat_id}/messages/{first['id']}"
    edited = client.patch(url, json={"content": "edited ✏️", "metadata": {"edited": "yes"}}, headers=alice.headers)
    assert edited.status_code == 200
    assert edited.json() | {"content": "turn 0", "metadata": {}} == first
    assert edited.json()["content"] == "edited ✏️" and edited.json()["metadata"] == {"edited": "yes"}
    assert client.patch(url, json={"content": None}, headers=alice.headers).status_code == 422
    assert client.patch(url, json={"content": "x"}, headers=bob.headers).status_code == 404
    assert client.delete(url, headers=bob.headers).status_code == 404

    assert client.delete(url, headers=alice.headers).json() == {"ok": True}
    assert client.delete(url, headers=alice.headers).status_code == 404
    remaining = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["messages"]
    assert [m["id"] for m in remaining] == [second["id"]]


def test_a_message_is_only_reachable_through_its_own_chat(client: TestClient, alice: Account, chat_id: int) -> None:
    other_chat = client.post("/v1/chats/", json={"title": "other"}, headers=alice.headers).json()["id"]
    message = upload(client, alice, other_chat, numbered(1)).json()[0]
    url = f"/v1/chats/{chat_id}/messages/{message['id']}"
    assert client.patch(url, json={"content": "x"}, headers=alice.headers).status_code == 404
    assert client.delete(url, headers=alice.headers).status_code == 404
    assert count_messages(other_chat) == 1


# --- export


def test_export_formats(client: TestClient, alice: Account, bob: Account, chat_id: int) -> None:
    upload(client, alice, chat_id, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "# 你好"}])
    as_json = client.get(f"/v1/chats/{chat_id}/export", headers=alice.headers)
    assert as_json.status_code == 200
    assert as_json.json() == client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()

    markdown = client.get(f"/v1/chats/{chat_id}/export?format=markdown", headers=alice.headers)
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("# Alice's chat\n")
    assert "## System\n\nBe brief.\n" in markdown.text and "## User\n\n# 你好\n" in markdown.text

    openai = client.get(f"/v1/chats/{chat_id}/export?format=openai", headers=alice.headers).json()
    assert openai == {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "# 你好"}]}

    assert client.get(f"/v1/chats/{chat_id}/export?format=pdf", headers=alice.headers).status_code == 422
    assert client.get(f"/v1/chats/{chat_id}/export", headers=bob.headers).status_code == 404


def test_export_then_bulk_upload_then_export_is_byte_identical(
    client: TestClient, alice: Account, chat_id: int
) -> None:
    tricky = ["tabs\tand\r\nCRLF", "emoji 👩🏽‍💻", '<b>html</b> & "quotes"', "", " spaced ", "\\u0041 literal"]
    upload(
        client,
        alice,
        chat_id,
        [{"role": "user", "content": text, "metadata": {"i": str(i)}} for i, text in enumerate(tricky)],
    )
    exported = client.get(f"/v1/chats/{chat_id}/export", headers=alice.headers).json()
    copy = client.post("/v1/chats/", json={"title": exported["title"]}, headers=alice.headers).json()["id"]
    assert upload(client, alice, copy, exported["messages"]).status_code == 201
    again = client.get(f"/v1/chats/{copy}/export", headers=alice.headers).json()
    fields = ("role", "content", "name", "model", "metadata")
    assert [[m[f] for f in fields] for m in again["messages"]] == [[m[f] for f in fields] for m in exported["messages"]]
    assert [m["content"].encode() for m in again["messages"]] == [t.encode() for t in tricky]


def test_export_all_chats_streams_only_mine(client: TestClient, alice: Account, bob: Account) -> None:
    for i in range(3):
        chat = client.post("/v1/chats/", json={"title": f"mine {i}", "messages": numbered(i)}, headers=alice.headers)
        assert chat.status_code == 201
    client.post("/v1/chats/", json={"title": "bob's", "messages": numbered(2)}, headers=bob.headers)
    exported = client.get("/v1/chats/export", headers=alice.headers)
    assert exported.status_code == 200
    chats = json.loads(exported.content)
    assert [c["title"] for c in chats] == ["mine 0", "mine 1", "mine 2"]
    assert [len(c["messages"]) for c in chats] == [0, 1, 2]
    assert client.get("/v1/chats/export", headers={"Authorization": "Bearer x"}).status_code == 401


# --- idempotency


def test_a_retried_post_with_the_same_key_replays_the_first_answer(
    client: TestClient, alice: Account, bob: Account, chat_id: int
) -> None:
    body = {"role": "user", "content": "only once"}
    headers = {**alice.headers, "Idempotency-Key": "retry-1"}
    first = client.post(f"/v1/chats/{chat_id}/message", json=body, headers=headers)
    second = client.post(f"/v1/chats/{chat_id}/message", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert first.headers["content-type"] == second.headers["content-type"] == "application/json"
    assert count_messages(chat_id) == 1

    changed = client.post(f"/v1/chats/{chat_id}/message", json={**body, "content": "other"}, headers=headers)
    assert changed.status_code == 409
    assert count_messages(chat_id) == 1

    # Keys belong to their user: bob's "retry-1" is his own (and his chat_id is a 404).
    assert (
        client.post(
            f"/v1/chats/{chat_id}/message", json=body, headers={**bob.headers, "Idempotency-Key": "retry-1"}
        ).status_code
        == 404
    )


def test_keys_work_on_every_creating_post_and_expire(client: TestClient, alice: Account, chat_id: int) -> None:
    headers = {**alice.headers, "Idempotency-Key": "chat-key"}
    chats = [client.post("/v1/chats/", json={"title": "once"}, headers=headers) for _ in range(2)]
    assert chats[0].json() == chats[1].json() and chats[0].status_code == 201
    batch = {"messages": numbered(3)}
    bulk_headers = {**alice.headers, "Idempotency-Key": "bulk-key"}
    uploads = [client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=bulk_headers) for _ in range(2)]
    assert uploads[0].json() == uploads[1].json() and uploads[1].status_code == 201
    assert count_messages(chat_id) == 3

    with engine.begin() as connection:
        connection.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.owner_id == alice.id)
            .values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    assert client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=bulk_headers).status_code == 201
    assert count_messages(chat_id) == 6


def test_a_failed_request_does_not_use_up_its_key(client: TestClient, alice: Account, chat_id: int) -> None:
    headers = {**alice.headers, "Idempotency-Key": "after-404"}
    assert (
        client.post("/v1/chats/123456789/message", json={"role": "user", "content": "x"}, headers=headers).status_code
        == 404
    )
    assert (
        client.post(f"/v1/chats/{chat_id}/message", json={"role": "user", "content": "x"}, headers=headers).status_code
        == 201
    )


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_bad_keys_are_422(client: TestClient, alice: Account, chat_id: int, key: str) -> None:
    headers = {**alice.headers, "Idempotency-Key": key}
    assert (
        client.post(f"/v1/chats/{chat_id}/message", json={"role": "user", "content": "x"}, headers=headers).status_code
        == 422
    )


def test_20_concurrent_retries_create_one_message(alice: Account, chat_id: int) -> None:
    port = free_port()
    env = server_env(DATABASE_URL=DATABASE_URL, SECRET_KEY="s" * 48, MIGRATE_ON_START="false")
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--workers", "2", "--no-access-log"]
    with running(command, env, WORK_DIR, port) as base_url:
        token = httpx.post(f"{base_url}/v1/auth/token", data={"username": alice.username, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}", "Idempotency-Key": "burst"}
        start = threading.Barrier(20)

        def post(_: int) -> tuple[int, str]:
            start.wait()
            response = httpx.post(
                f"{base_url}/v1/chats/{chat_id}/message", json={"role": "user", "content": "burst"}, headers=headers
            )
            return response.status_code, response.text

        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(post, range(20)))
    assert {status for status, _ in answers} == {201}
    assert len({body for _, body in answers}) == 1
    assert count_messages(chat_id) == 1


# --- audit: isolation, failures and long histories


def test_another_users_chat_and_message_ids_are_404_everywhere(
    client: TestClient, alice: Account, bob: Account, chat_id: int
) -> None:
    mine = upload(client, alice, chat_id, numbered(2)).json()
    bobs_chat = client.post("/v1/chats/", json={"title": "bob's", "messages": numbered(2)}, headers=bob.headers)
    bobs_chat_id = bobs_chat.json()["id"]
    bobs_messages = client.get(f"/v1/chats/{bobs_chat_id}/messages", headers=bob.headers).json()["data"]
    before = client.get(f"/v1/chats/{bobs_chat_id}", headers=bob.headers).json()

    chat_urls = [
        ("GET", f"/v1/chats/{bobs_chat_id}/messages", None),
        ("GET", f"/v1/chats/{bobs_chat_id}/messages?after=1", None),
        ("POST", f"/v1/chats/{bobs_chat_id}/messages", {"messages": numbered(1)}),
        ("PATCH", f"/v1/chats/{bobs_chat_id}", {"title": "mine now"}),
        ("GET", f"/v1/chats/{bobs_chat_id}/export", None),
        ("GET", f"/v1/chats/{bobs_chat_id}/export?format=markdown", None),
        ("GET", f"/v1/chats/{bobs_chat_id}/export?format=openai", None),
    ]
    for message in bobs_messages:
        for chat in (bobs_chat_id, chat_id):  # through his chat, and smuggled through mine
            url = f"/v1/chats/{chat}/messages/{message['id']}"
            chat_urls += [("PATCH", url, {"content": "hacked"}), ("DELETE", url, None)]
    for method, url, body in chat_urls:
        response = client.request(method, url, json=body, headers={**alice.headers, "Idempotency-Key": url + method})
        assert response.status_code == 404, (method, url, response.text)
        assert "detail" in response.json()

    assert client.get(f"/v1/chats/{bobs_chat_id}", headers=bob.headers).json() == before
    exported = json.loads(client.get("/v1/chats/export", headers=alice.headers).content)
    assert [c["id"] for c in exported] == [chat_id]
    assert [m["id"] for m in exported[0]["messages"]] == [m["id"] for m in mine]


def test_ids_inside_a_bulk_upload_are_ignored_not_obeyed(
    client: TestClient, alice: Account, bob: Account, chat_id: int
) -> None:
    bobs = client.post("/v1/chats/", json={"title": "bob's", "messages": numbered(2)}, headers=bob.headers).json()
    bobs_export = client.get(f"/v1/chats/{bobs['id']}/export", headers=bob.headers).json()
    # Items carrying bob's chat and message ids (as an export of his chat would) land in
    # alice's chat as new messages; his chat is untouched.
    created = upload(client, alice, chat_id, bobs_export["messages"])
    assert created.status_code == 201
    assert {m["chat_id"] for m in created.json()} == {chat_id}
    assert {m["id"] for m in created.json()}.isdisjoint(m["id"] for m in bobs_export["messages"])
    assert client.get(f"/v1/chats/{bobs['id']}/export", headers=bob.headers).json() == bobs_export


def test_a_chat_with_one_bad_message_in_its_history_is_not_created(client: TestClient, alice: Account) -> None:
    history = numbered(5)
    history[3] = {"role": "user", "content": "nul \x00"}
    response = client.post("/v1/chats/", json={"title": "t", "messages": history}, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:3] == ["body", "messages", 3]
    too_long = client.post("/v1/chats/", json={"title": "t", "messages": numbered(1001)}, headers=alice.headers)
    assert too_long.status_code == 422
    assert client.get("/v1/chats/", headers=alice.headers).json() == []


def test_a_bad_item_deep_in_a_full_batch_is_named_and_stores_nothing(
    client: TestClient, alice: Account, chat_id: int
) -> None:
    batch = numbered(1000)
    batch[999] = {"role": "user", "content": "x", "metadata": {"k": 1}}
    response = upload(client, alice, chat_id, batch)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:4] == ["body", "messages", 999, "metadata"]
    assert count_messages(chat_id) == 0
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["messages"] == []


@pytest.mark.parametrize("body", [{}, {"messages": "not a list"}, {"messages": [None]}, [numbered(1)]])
def test_malformed_batches_are_422(client: TestClient, alice: Account, chat_id: int, body: object) -> None:
    response = client.post(f"/v1/chats/{chat_id}/messages", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert count_messages(chat_id) == 0


def test_message_edits_and_deletes_check_their_ids(client: TestClient, alice: Account, chat_id: int) -> None:
    (message,) = upload(client, alice, chat_id, numbered(1)).json()
    for url in (f"/v1/chats/{chat_id}/messages/0", f"/v1/chats/{chat_id}/messages/{2**63}", "/v1/chats/0/messages/1"):
        assert client.patch(url, json={"content": "x"}, headers=alice.headers).status_code == 422
        assert client.delete(url, headers=alice.headers).status_code == 422
    missing = f"/v1/chats/{chat_id}/messages/{2**63 - 1}"
    assert client.patch(missing, json={"content": "x"}, headers=alice.headers).status_code == 404
    assert client.delete(missing, headers=alice.headers).status_code == 404
    url = f"/v1/chats/{chat_id}/messages/{message['id']}"
    for bad in (
        {"content": "x" * (1024 * 1024 + 1)},
        {"metadata": {"k": "v" * 513}},
        {"content": 5},
        ["x"],
        {"role": "system"},
        {"content": "x", "name": "renamed"},
    ):
        assert client.patch(url, json=bad, headers=alice.headers).status_code == 422
    unchanged = client.patch(url, json={}, headers=alice.headers)
    assert unchanged.status_code == 200 and unchanged.json() == message


def test_paging_newest_first_walks_back_with_before(client: TestClient, alice: Account, chat_id: int) -> None:
    ids = [m["id"] for m in upload(client, alice, chat_id, numbered(250)).json()]
    url = f"/v1/chats/{chat_id}/messages"
    oldest_first, before = [], ids[0] - 1
    while True:  # in desc order `before` is the newer side: walking from the oldest message up
        body = client.get(url, params={"limit": 70, "order": "desc", "before": before}, headers=alice.headers).json()
        page = [m["id"] for m in body["data"]]
        assert page == sorted(page, reverse=True)
        oldest_first += page[::-1]
        if not body["has_more"]:
            break
        before = body["first_id"]
    assert oldest_first == ids
    window = client.get(url, params={"after": ids[9], "before": ids[20]}, headers=alice.headers).json()
    assert [m["id"] for m in window["data"]] == ids[10:20] and window["has_more"] is False


def test_a_long_chat_exports_whole_in_every_format(client: TestClient, alice: Account, chat_id: int) -> None:
    count = 2 * HISTORY_PAGE + 7  # three pages of history
    texts = [f"line {i} ✓" for i in range(count)]
    for start in range(0, count, 1000):
        batch = {"messages": [{"role": "user", "content": text} for text in texts[start : start + 1000]]}
        assert client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=alice.headers).status_code == 201
    response = client.get(f"/v1/chats/{chat_id}/export", headers=alice.headers)
    assert "content-length" not in response.headers  # streamed as it is read, not built whole first
    assert response.headers["content-disposition"] == f'attachment; filename="chat-{chat_id}.json"'
    assert [m["content"] for m in response.json()["messages"]] == texts
    openai = client.get(f"/v1/chats/{chat_id}/export?format=openai", headers=alice.headers).json()
    assert openai["messages"] == [{"role": "user", "content": text} for text in texts]
    markdown = client.get(f"/v1/chats/{chat_id}/export?format=markdown", headers=alice.headers).text
    assert markdown.count("## User\n") == count and markdown.endswith(f"line {count - 1} ✓\n")
    everything = json.loads(client.get("/v1/chats/export", headers=alice.headers).content)
    assert [m["content"] for m in everything[0]["messages"]] == texts


def test_a_new_services_first_chat_and_message_are_read_and_exported(fresh_database_url: str) -> None:
    settings = Settings(_env_file=None, database_url=fresh_database_url, secret_key=SETTINGS.secret_key, redis_url="")
    with TestClient(create_app(settings)) as fresh:
        body = {"email": "first@example.com", "username": "first", "password": PASSWORD}
        assert fresh.post("/v1/auth/register", json=body).status_code == 201
        token = fresh.post("/v1/auth/token", data={"username": "first", "password": PASSWORD}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        chat = fresh.post("/v1/chats/", json={"title": "First", "messages": numbered(1)}, headers=headers).json()
        assert chat["id"] == 1 and chat["current_message_id"] == 1  # the ids an export's cursor starts from
        assert [m["id"] for m in fresh.get("/v1/chats/1", headers=headers).json()["messages"]] == [1]
        assert [m["id"] for m in fresh.get("/v1/chats/1/messages", headers=headers).json()["data"]] == [1]
        exported = fresh.get("/v1/chats/1/export", headers=headers).json()
        assert [(m["id"], m["content"]) for m in exported["messages"]] == [(1, "turn 0")]
        everything = json.loads(fresh.get("/v1/chats/export", headers=headers).content)
        assert [(c["id"], [m["id"] for m in c["messages"]]) for c in everything] == [(1, [1])]


def test_export_all_reads_past_its_first_page_of_chats(client: TestClient, alice: Account) -> None:
    titles = [f"chat {i}" for i in range(CHATS_PAGE + 2)]
    for title in titles:
        assert client.post("/v1/chats/", json={"title": title}, headers=alice.headers).status_code == 201
    exported = json.loads(client.get("/v1/chats/export", headers=alice.headers).content)
    assert [c["title"] for c in exported] == titles


def test_export_all_with_no_chats_is_an_empty_list(client: TestClient, alice: Account) -> None:
    response = client.get("/v1/chats/export", headers=alice.headers)
    assert response.status_code == 200 and response.json() == []
    assert response.headers["content-disposition"] == 'attachment; filename="chats.json"'


def test_patching_another_or_a_missing_chat_is_404(client: TestClient, alice: Account, bob: Account) -> None:
    assert client.patch(f"/v1/chats/{2**63 - 1}", json={"pinned": True}, headers=alice.headers).status_code == 404
    bobs = client.post("/v1/chats/", json={"title": "bob's"}, headers=bob.headers).json()
    assert client.patch(f"/v1/chats/{bobs['id']}", json={}, headers=alice.headers).status_code == 404
    assert client.get(f"/v1/chats/{bobs['id']}", headers=bob.headers).json() == bobs | {"messages": []}


def test_history_endpoints_require_a_token(client: TestClient, alice: Account, chat_id: int) -> None:
    (message,) = upload(client, alice, chat_id, numbered(1)).json()
    for method, path, body in [
        ("GET", f"/v1/chats/{chat_id}/messages", None),
        ("POST", f"/v1/chats/{chat_id}/messages", {"messages": numbered(1)}),
        ("PATCH", f"/v1/chats/{chat_id}", {"title": "t"}),
        ("PATCH", f"/v1/chats/{chat_id}/messages/{message['id']}", {"content": "x"}),
        ("DELETE", f"/v1/chats/{chat_id}/messages/{message['id']}", None),
        ("GET", f"/v1/chats/{chat_id}/export", None),
        ("GET", "/v1/chats/export", None),
        ("POST", "/v1/chats/import", []),
    ]:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["messages"] == [message]
