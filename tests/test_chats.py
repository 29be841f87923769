"""Chats and messages: each endpoint's success and failures, limits, and isolation."""

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from conftest import ENGINE as engine
from conftest import SETTINGS as settings
from conftest import Account
from models import Chat, Message
from service.exports import HISTORY_PAGE
from service.rules import ROLES

CHAT_FIELDS = {"id", "title", "pinned", "archived", "metadata", "current_message_id", "created_at", "updated_at"}
MESSAGE_FIELDS = {
    "id",
    "chat_id",
    "parent_id",
    "sibling_ids",
    "role",
    "content",
    "name",
    "model",
    "metadata",
    "created_at",
}
MESSAGE_URLS = ["/v1/chats/{id}/message", "/v1/chats/message?chat_id={id}"]


def post_message(client: TestClient, account: Account, chat_id: int | str, url: str = MESSAGE_URLS[0], **body):
    payload = {"role": "user", "content": "hello", **body}
    return client.post(url.format(id=chat_id), json=payload, headers=account.headers)


def stored_messages(chat_id: int) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Message).where(Message.chat_id == chat_id))


def test_welcome(client: TestClient) -> None:
    response = client.get("/v1")
    assert response.status_code == 200
    assert "message" in response.json()


def test_create_chat_trims_the_title(client: TestClient, alice: Account) -> None:
    response = client.post("/v1/chats/", json={"title": "  Trip to Kyoto \n"}, headers=alice.headers)
    assert response.status_code == 201
    chat = response.json()
    assert set(chat) == CHAT_FIELDS
    assert chat["title"] == "Trip to Kyoto"
    assert chat["created_at"] == chat["updated_at"]


@pytest.mark.parametrize("body", [{}, {"title": ""}, {"title": "   "}, {"title": "x" * 201}, {"title": 5}, [], "x"])
def test_invalid_chats_are_422(client: TestClient, alice: Account, body: object) -> None:
    response = client.post("/v1/chats/", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert client.get("/v1/chats/", headers=alice.headers).json() == []


def test_a_title_of_200_characters_is_accepted(client: TestClient, alice: Account) -> None:
    response = client.post("/v1/chats/", json={"title": "標" * 200}, headers=alice.headers)
    assert response.status_code == 201 and response.json()["title"] == "標" * 200


@pytest.mark.parametrize("url", MESSAGE_URLS)
def test_both_message_urls_append_and_move_updated_at(client: TestClient, alice: Account, chat_id: int, url: str):
    # Set far in the past, so that moving it forward needs no wait.
    with engine.begin() as connection:
        connection.execute(update(Chat).where(Chat.id == chat_id).values(updated_at=datetime(2001, 1, 1, tzinfo=UTC)))
    before = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["updated_at"]
    assert before == "2001-01-01T00:00:00Z"
    response = post_message(client, alice, chat_id, url, role="assistant", content="Hi!")
    assert response.status_code == 201
    message = response.json()
    assert set(message) == MESSAGE_FIELDS
    assert (message["chat_id"], message["role"], message["content"]) == (chat_id, "assistant", "Hi!")
    chat = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()
    assert chat["updated_at"] > before
    assert chat["updated_at"] == message["created_at"]


def test_read_chat_returns_the_whole_history_oldest_first(client: TestClient, alice: Account, chat_id: int) -> None:
    roles = ["system", "user", "assistant", "user", "assistant"]
    for index, role in enumerate(roles):
        assert post_message(client, alice, chat_id, role=role, content=f"message {index}").status_code == 201
    chat = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()
    assert [m["role"] for m in chat["messages"]] == roles
    assert [m["content"] for m in chat["messages"]] == [f"message {i}" for i in range(5)]
    assert [m["id"] for m in chat["messages"]] == sorted(m["id"] for m in chat["messages"])


@pytest.mark.parametrize(
    "content",
    [
        "你好，世界。日本語のテキスト、한국어 텍스트",
        "emoji 😀👍🏽👨‍👩‍👧‍👦 and flags 🇯🇵",
        "line one\nline two\r\n\ttabbed",
        "quotes \" ' ` and backslash \\ and <b>markup</b> & <script>alert(1)</script>",
        "zero width\u200bjoiner\u200d and RTL \u202etext",
        " leading and trailing spaces ",
        "",
    ],
)
def test_content_comes_back_byte_for_byte(client: TestClient, alice: Account, chat_id: int, content: str) -> None:
    created = post_message(client, alice, chat_id, content=content)
    assert created.status_code == 201
    assert created.json()["content"] == content
    stored = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["messages"][-1]["content"]
    assert stored.encode() == content.encode()


@pytest.mark.parametrize(
    "body",
    [
        {"role": "robot", "content": "x"},
        {"role": "User", "content": "x"},
        {"content": "x"},
        {"role": "user"},
        {"role": "user", "content": 42},
        {"role": "user", "content": "nul \x00 inside"},
        {"role": "user", "content": None},
    ],
)
def test_invalid_messages_are_422_and_store_nothing(client: TestClient, alice: Account, chat_id: int, body: dict):
    response = client.post(f"/v1/chats/{chat_id}/message", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert stored_messages(chat_id) == 0


def test_a_lone_surrogate_is_422_not_500(client: TestClient, alice: Account, chat_id: int) -> None:
    raw = b'{"role": "user", "content": "broken \\ud800 text"}'
    response = client.post(
        f"/v1/chats/{chat_id}/message", content=raw, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert [(error["loc"], error["msg"]) for error in response.json()["detail"]] == [
        (["body", "content"], "Value error, is not valid Unicode (a lone surrogate)")
    ]
    assert stored_messages(chat_id) == 0


def test_malformed_json_message_is_422(client: TestClient, alice: Account, chat_id: int) -> None:
    response = client.post(
        f"/v1/chats/{chat_id}/message",
        content=b"{role: user",
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422


def test_content_up_to_the_limit_is_stored_and_one_byte_more_is_422(client: TestClient, alice: Account, chat_id: int):
    limit = settings.max_content_bytes
    exact = "é" * (limit // 2)  # two bytes each in UTF-8
    assert post_message(client, alice, chat_id, content=exact).status_code == 201
    assert post_message(client, alice, chat_id, content=exact + "x").status_code == 422
    assert stored_messages(chat_id) == 1


def test_a_body_over_the_limit_is_413_before_it_is_read(client: TestClient, alice: Account, chat_id: int) -> None:
    huge = json.dumps({"role": "user", "content": "a" * (settings.max_body_bytes + 10)}).encode()
    response = client.post(
        f"/v1/chats/{chat_id}/message", content=huge, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "detail" in response.json()

    def chunks():
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"a" * 65536

    streamed = client.post(
        f"/v1/chats/{chat_id}/message", content=chunks(), headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert stored_messages(chat_id) == 0


@pytest.mark.parametrize("bad_id", ["abc", "0", "-1", "1.5", "9223372036854775808", "99999999999999999999999", "1e3"])
def test_ids_that_are_not_positive_64_bit_integers_are_422(client: TestClient, alice: Account, bad_id: str):
    responses = [
        client.get(f"/v1/chats/{bad_id}", headers=alice.headers),
        client.delete(f"/v1/chats/{bad_id}", headers=alice.headers),
        client.patch(f"/v1/chats/{bad_id}", json={"pinned": True}, headers=alice.headers),
        client.get(f"/v1/chats/{bad_id}/messages", headers=alice.headers),
        client.get(f"/v1/chats/{bad_id}/export", headers=alice.headers),
        post_message(client, alice, bad_id, MESSAGE_URLS[0]),
        post_message(client, alice, bad_id, MESSAGE_URLS[1]),
        client.delete(f"/v1/chats/1/messages/{bad_id}", headers=alice.headers),
        client.patch(f"/v1/chats/1/messages/{bad_id}", json={"content": "x"}, headers=alice.headers),
        client.get("/v1/chats/1/messages", params={"after": bad_id}, headers=alice.headers),
    ]
    assert [r.status_code for r in responses] == [422] * len(responses), [r.text for r in responses]
    assert all(isinstance(r.json()["detail"], list) for r in responses)


def test_the_largest_64_bit_id_is_simply_not_found(client: TestClient, alice: Account) -> None:
    big = 2**63 - 1
    assert client.get(f"/v1/chats/{big}", headers=alice.headers).status_code == 404
    assert post_message(client, alice, big).status_code == 404
    assert client.delete(f"/v1/chats/{big}", headers=alice.headers).status_code == 404


def test_message_to_a_missing_chat_is_404(client: TestClient, alice: Account) -> None:
    for url in MESSAGE_URLS:
        response = post_message(client, alice, 987654321, url)
        assert response.status_code == 404
        assert response.json() == {"detail": "Chat not found"}


def test_list_is_most_recently_active_first_and_pages(client: TestClient, alice: Account) -> None:
    ids = [client.post("/v1/chats/", json={"title": f"chat {i}"}, headers=alice.headers).json()["id"] for i in range(5)]
    with engine.begin() as connection:  # chat i last active on day i of 2001
        for day, chat in enumerate(ids, start=1):
            connection.execute(
                update(Chat).where(Chat.id == chat).values(updated_at=datetime(2001, 1, day, tzinfo=UTC))
            )
    assert post_message(client, alice, ids[1]).status_code == 201  # chat 1 is now the most recent
    listed = client.get("/v1/chats/", headers=alice.headers).json()
    assert [c["id"] for c in listed] == [ids[1], ids[4], ids[3], ids[2], ids[0]]
    page = client.get("/v1/chats/?skip=1&limit=2", headers=alice.headers).json()
    assert [c["id"] for c in page] == [ids[4], ids[3]]
    assert client.get("/v1/chats/?skip=5", headers=alice.headers).json() == []
    assert client.get(f"/v1/chats/?skip={2**63 - 1}", headers=alice.headers).json() == []


def test_list_defaults_to_20(client: TestClient, alice: Account) -> None:
    for i in range(21):
        client.post("/v1/chats/", json={"title": f"chat {i}"}, headers=alice.headers)
    assert len(client.get("/v1/chats/", headers=alice.headers).json()) == 20
    assert len(client.get("/v1/chats/?limit=100", headers=alice.headers).json()) == 21


@pytest.mark.parametrize("query", ["skip=-1", "limit=0", "limit=101", "limit=abc", "skip=1e3", f"skip={2**64}"])
def test_bad_paging_is_422(client: TestClient, alice: Account, query: str) -> None:
    assert client.get(f"/v1/chats/?{query}", headers=alice.headers).status_code == 422


def test_delete_chat_removes_its_messages(client: TestClient, alice: Account, chat_id: int) -> None:
    for _ in range(3):
        post_message(client, alice, chat_id)
    assert stored_messages(chat_id) == 3
    # Deleting moves the chat to the trash: 404 everywhere, its messages kept to restore.
    response = client.delete(f"/v1/chats/{chat_id}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert stored_messages(chat_id) == 3
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).status_code == 404
    assert client.delete(f"/v1/chats/{chat_id}", headers=alice.headers).status_code == 404
    # Deleting for good takes the messages with it.
    assert client.delete(f"/v1/chats/{chat_id}?permanent=true", headers=alice.headers).json() == {"ok": True}
    assert stored_messages(chat_id) == 0
    assert client.delete(f"/v1/chats/{chat_id}?permanent=true", headers=alice.headers).status_code == 404


def test_another_users_chat_is_404_everywhere(client: TestClient, alice: Account, bob: Account, chat_id: int) -> None:
    post_message(client, alice, chat_id, content="private")
    assert client.get(f"/v1/chats/{chat_id}", headers=bob.headers).status_code == 404
    assert client.get("/v1/chats/", headers=bob.headers).json() == []
    for url in MESSAGE_URLS:
        response = post_message(client, bob, chat_id, url, content="intrusion")
        assert response.status_code == 404
        assert response.json() == {"detail": "Chat not found"}
    assert client.delete(f"/v1/chats/{chat_id}", headers=bob.headers).status_code == 404
    chat = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()
    assert [m["content"] for m in chat["messages"]] == ["private"]


def test_chat_endpoints_require_a_token(client: TestClient, chat_id: int) -> None:
    for method, path in [
        ("GET", "/v1/chats/"),
        ("POST", "/v1/chats/"),
        ("GET", f"/v1/chats/{chat_id}"),
        ("DELETE", f"/v1/chats/{chat_id}"),
        ("POST", f"/v1/chats/{chat_id}/message"),
        ("POST", f"/v1/chats/message?chat_id={chat_id}"),
    ]:
        response = client.request(method, path, json={"title": "t", "role": "user", "content": "x"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_long_history_is_returned_whole_and_in_order(client: TestClient, alice: Account, chat_id: int) -> None:
    count = 2 * HISTORY_PAGE + 345  # streamed in three pages
    rows = [{"role": ROLES[i % 3], "content": f"message {i} 💬"} for i in range(count)]
    for start in range(0, count, 1000):
        batch = {"messages": rows[start : start + 1000]}
        assert client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=alice.headers).status_code == 201
    response = client.get(f"/v1/chats/{chat_id}", headers=alice.headers)
    assert response.status_code == 200
    chat = response.json()
    assert set(chat) == CHAT_FIELDS | {"messages"}
    assert chat["id"] == chat_id and chat["title"] == "Alice's chat"
    assert [m["content"] for m in chat["messages"]] == [f"message {i} 💬" for i in range(count)]
    assert [m["role"] for m in chat["messages"]] == [ROLES[i % 3] for i in range(count)]
    ids = [m["id"] for m in chat["messages"]]
    assert ids == sorted(set(ids))


def test_delete_all_chats_needs_confirmation_and_spares_others(
    client: TestClient, alice: Account, bob: Account, chat_id: int
) -> None:
    client.post("/v1/chats/", json={"title": "second"}, headers=alice.headers)
    bobs = client.post("/v1/chats/", json={"title": "bob's"}, headers=bob.headers).json()["id"]
    post_message(client, alice, chat_id)
    refused = client.delete("/v1/chats/", headers=alice.headers)
    assert refused.status_code == 400
    assert len(client.get("/v1/chats/", headers=alice.headers).json()) == 2
    assert client.delete("/v1/chats/?confirm=false", headers=alice.headers).status_code == 400
    deleted = client.delete("/v1/chats/?confirm=true", headers=alice.headers)
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 2}
    assert client.get("/v1/chats/", headers=alice.headers).json() == []
    # They wait in the trash until it is emptied.
    assert client.delete("/v1/chats/trash", headers=alice.headers).json() == {"deleted": 2}
    assert stored_messages(chat_id) == 0
    assert client.get(f"/v1/chats/{bobs}", headers=bob.headers).status_code == 200
