"""API keys: made, listed and revoked with an access token; used as a Bearer on the chat
endpoints within their scopes, never on the account ones."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from conftest import ENGINE as engine
from conftest import Account
from models import ApiKey
from security import secret_hash
from service.rules import KEY_PREFIX, KEYS_MAX


def new_key(client: TestClient, account: Account, scopes: list[str], **body: object) -> dict:
    response = client.post("/v1/auth/keys", json={"name": "script", "scopes": scopes, **body}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def bearer(key: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


def test_a_key_is_shown_once_and_stored_as_a_hash(client: TestClient, alice: Account) -> None:
    key = new_key(client, alice, ["read", "write"], expires_at="2099-01-01T09:00:00+09:00")
    assert key["key"].startswith(KEY_PREFIX) and len(key["key"]) >= 40
    assert key["prefix"] == key["key"][: len(key["prefix"])] and key["scopes"] == ["read", "write"]
    assert key["expires_at"] == "2099-01-01T00:00:00Z"
    listed = client.get("/v1/auth/keys", headers=alice.headers).json()
    assert [k["id"] for k in listed] == [key["id"]]
    assert set(listed[0]) == {"id", "prefix", "name", "scopes", "created_at", "expires_at", "last_used_at"}
    assert key["key"] not in str(listed)
    with engine.connect() as conn:
        stored = conn.execute(select(ApiKey.key_hash).where(ApiKey.id == key["id"])).scalar_one()
    assert stored == secret_hash(key["key"])


def test_a_read_key_reads_and_cannot_write(client: TestClient, alice: Account, chat_id: int) -> None:
    key = bearer(new_key(client, alice, ["read"]))
    assert client.get("/v1/chats/", headers=key).json()[0]["id"] == chat_id
    assert client.get(f"/v1/chats/{chat_id}", headers=key).status_code == 200
    assert client.get("/v1/chats/search?q=alice", headers=key).status_code == 200
    for method, url, body in [
        ("POST", "/v1/chats/", {"title": "x"}),
        ("PATCH", f"/v1/chats/{chat_id}", {"title": "x"}),
        ("DELETE", f"/v1/chats/{chat_id}", None),
        ("POST", f"/v1/chats/{chat_id}/message", {"role": "user", "content": "x"}),
        ("POST", "/v1/chats/bulk", {"ids": [chat_id], "action": "trash"}),
    ]:
        response = client.request(method, url, json=body, headers=key)
        assert (response.status_code, response.json()) == (403, {"detail": "This API key may only read"}), url
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["title"] == "Alice's chat"


def test_a_write_key_writes(client: TestClient, alice: Account, chat_id: int) -> None:
    key = bearer(new_key(client, alice, ["read", "write"]))
    assert (
        client.post(f"/v1/chats/{chat_id}/message", json={"role": "user", "content": "hi"}, headers=key).status_code
        == 201
    )
    assert client.patch(f"/v1/chats/{chat_id}", json={"title": "By key"}, headers=key).status_code == 200
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["title"] == "By key"


def test_keys_never_work_on_account_or_key_endpoints(client: TestClient, alice: Account) -> None:
    key = bearer(new_key(client, alice, ["read", "write"]))
    for method, url, body in [
        ("GET", "/v1/auth/me", None),
        ("GET", "/v1/auth/keys", None),
        ("POST", "/v1/auth/keys", {"name": "more", "scopes": ["read"]}),
        ("DELETE", "/v1/auth/keys/1", None),
        ("POST", "/v1/auth/logout_all", None),
        ("POST", "/v1/auth/password", {"current_password": alice.password, "new_password": "another password"}),
        ("DELETE", "/v1/auth/me", {"password": alice.password}),
    ]:
        assert client.request(method, url, json=body, headers=key).status_code == 401, (method, url)
    assert client.get("/v1/auth/me", headers=alice.headers).status_code == 200


def test_revoked_expired_and_forged_keys_are_401(client: TestClient, alice: Account, bob: Account) -> None:
    key = new_key(client, alice, ["read"])
    # Another user's key, and one already revoked, are alike: not found.
    not_found = (404, {"detail": "API key not found"})
    others = client.delete(f"/v1/auth/keys/{key['id']}", headers=bob.headers)
    assert (others.status_code, others.json()) == not_found
    assert client.get("/v1/chats/", headers=bearer(key)).status_code == 200
    assert client.delete(f"/v1/auth/keys/{key['id']}", headers=alice.headers).json() == {"ok": True}
    again = client.delete(f"/v1/auth/keys/{key['id']}", headers=alice.headers)
    assert (again.status_code, again.json()) == not_found
    # A key's 401 says what a key can be refused for, not what a token's says.
    refused = (401, {"detail": "Invalid, expired or revoked API key"}, "Bearer")
    revoked = client.get("/v1/chats/", headers=bearer(key))
    assert (revoked.status_code, revoked.json(), revoked.headers["www-authenticate"]) == refused

    expiring = new_key(client, alice, ["read"])
    with engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(update(ApiKey).where(ApiKey.id == expiring["id"]).values(expires_at=past))
    for headers in (bearer(expiring), {"Authorization": f"Bearer {KEY_PREFIX}forged"}):
        answer = client.get("/v1/chats/", headers=headers)
        assert (answer.status_code, answer.json(), answer.headers["www-authenticate"]) == refused


def test_logout_all_and_password_change_leave_keys_alone(client: TestClient, alice: Account, chat_id: int) -> None:
    key = bearer(new_key(client, alice, ["read", "write"]))
    assert client.post("/v1/auth/logout_all", headers=alice.headers).status_code == 200
    assert client.get("/v1/chats/", headers=key).status_code == 200
    # The hot routes check the user's token generation in their own statement: a key's is
    # the user's current one, read with the key.
    message = {"role": "user", "content": "after logout_all"}
    assert client.post(f"/v1/chats/{chat_id}/message", json=message, headers=key).status_code == 201
    assert client.get(f"/v1/chats/{chat_id}", headers=key).json()["messages"][-1]["content"] == message["content"]
    token = client.post("/v1/auth/token", data={"username": alice.username, "password": alice.password}).json()
    changed = client.post(
        "/v1/auth/password",
        json={"current_password": alice.password, "new_password": "a brand new one"},
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert changed.status_code == 200
    assert client.get("/v1/chats/", headers=key).status_code == 200
    assert client.post(f"/v1/chats/{chat_id}/message", json=message, headers=key).status_code == 201
    assert len(client.get(f"/v1/chats/{chat_id}", headers=key).json()["messages"]) == 2


def test_a_key_sees_only_its_owners_chats_and_records_its_use(
    client: TestClient, alice: Account, bob: Account, chat_id: int
) -> None:
    made = new_key(client, bob, ["read", "write"])
    assert made["last_used_at"] is None
    key = bearer(made)
    assert client.get(f"/v1/chats/{chat_id}", headers=key).status_code == 404
    assert client.patch(f"/v1/chats/{chat_id}", json={"title": "x"}, headers=key).status_code == 404
    assert client.get("/v1/chats/", headers=key).json() == []
    assert client.get("/v1/auth/keys", headers=bob.headers).json()[0]["last_used_at"] is not None


@pytest.mark.parametrize(
    "body",
    [
        {"name": "k", "scopes": ["write"]},
        {"name": "k", "scopes": []},
        {"name": "k", "scopes": ["read", "read"]},
        {"name": "k", "scopes": ["admin"]},
        {"name": "", "scopes": ["read"]},
        {"name": "k" * 65, "scopes": ["read"]},
        {"name": "k", "scopes": ["read"], "expires_at": "2000-01-01T00:00:00Z"},
        {"name": "k", "scopes": ["read"], "expires_at": "2099-01-01T00:00:00"},
        {"name": "k", "scopes": ["read"], "id": 5},
        {"scopes": ["read"]},
    ],
)
def test_bad_keys_are_422(client: TestClient, alice: Account, body: dict) -> None:
    assert client.post("/v1/auth/keys", json=body, headers=alice.headers).status_code == 422
    assert client.get("/v1/auth/keys", headers=alice.headers).json() == []


def test_a_user_holds_at_most_keys_max_keys(client: TestClient, alice: Account) -> None:
    keys = [new_key(client, alice, ["read"]) for _ in range(KEYS_MAX)]
    refused = client.post("/v1/auth/keys", json={"name": "one more", "scopes": ["read"]}, headers=alice.headers)
    assert (refused.status_code, refused.json()) == (
        409,
        {"detail": f"You have {KEYS_MAX} API keys already: revoke one first"},
    )
    assert client.delete(f"/v1/auth/keys/{keys[0]['id']}", headers=alice.headers).status_code == 200
    new_key(client, alice, ["read"])
