"""The account: reading it, changing the email or the password, and deleting it with
everything it owns."""

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, inspect, select, table, text

from conftest import ENGINE as engine
from conftest import PASSWORD, Account, unique_name
from models import User

NEW_PASSWORD = "a much better passphrase"


def login(client: TestClient, username: str, password: str = PASSWORD):
    return client.post("/v1/auth/token", data={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_me_is_the_current_user(client: TestClient, alice: Account) -> None:
    response = client.get("/v1/auth/me", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == {**response.json(), "id": alice.id, "username": alice.username, "email": alice.email}
    assert set(response.json()) == {"id", "email", "username", "created_at"}


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_me_without_a_token_is_401(client: TestClient, method: str) -> None:
    response = client.request(method, "/v1/auth/me", json={"email": "x@example.com", "password": PASSWORD})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_changing_the_email_stores_it_lower_cased(client: TestClient, alice: Account) -> None:
    new_email = f"{unique_name()}@Example.ORG"
    response = client.patch("/v1/auth/me", json={"email": new_email}, headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["email"] == new_email.lower()
    assert client.get("/v1/auth/me", headers=alice.headers).json()["email"] == new_email.lower()
    # The old address is free again, the new one is taken.
    assert (
        client.post(
            "/v1/auth/register", json={"email": alice.email, "username": unique_name(), "password": PASSWORD}
        ).status_code
        == 201
    )
    taken = client.post(
        "/v1/auth/register", json={"email": new_email.upper(), "username": unique_name(), "password": PASSWORD}
    )
    assert taken.status_code == 409


def test_an_email_taken_by_another_user_is_409_whatever_its_case(
    client: TestClient, alice: Account, bob: Account
) -> None:
    response = client.patch("/v1/auth/me", json={"email": bob.email.upper()}, headers=alice.headers)
    assert response.status_code == 409
    assert response.json() == {"detail": "Email already registered"}
    assert client.get("/v1/auth/me", headers=alice.headers).json()["email"] == alice.email


def test_keeping_ones_own_email_or_sending_nothing_changes_nothing(client: TestClient, alice: Account) -> None:
    for body in ({"email": alice.email.upper()}, {}):
        response = client.patch("/v1/auth/me", json=body, headers=alice.headers)
        assert response.status_code == 200
        assert response.json()["email"] == alice.email


@pytest.mark.parametrize("body", [{"email": "not-an-email"}, {"email": None}, {"email": 5}, []])
def test_an_invalid_email_change_is_422_and_changes_nothing(client: TestClient, alice: Account, body: object) -> None:
    response = client.patch("/v1/auth/me", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert client.get("/v1/auth/me", headers=alice.headers).json()["email"] == alice.email


def test_changing_the_password_ends_every_earlier_token(client: TestClient, alice: Account) -> None:
    other_device = login(client, alice.username).json()
    response = client.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=alice.headers,
    )
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access_token", "token_type", "refresh_token"}

    for old in (alice.token, other_device["access_token"]):
        assert client.get("/v1/auth/me", headers=bearer(old)).status_code == 401
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": other_device["refresh_token"]})
    assert refreshed.status_code == 401
    assert client.get("/v1/auth/me", headers=bearer(tokens["access_token"])).status_code == 200
    assert client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    assert login(client, alice.username).status_code == 401
    assert login(client, alice.username, NEW_PASSWORD).status_code == 200


def test_a_wrong_current_password_is_400_and_changes_nothing(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/v1/auth/password",
        json={"current_password": "not the password", "new_password": NEW_PASSWORD},
        headers=alice.headers,
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Incorrect password"}
    assert client.get("/v1/auth/me", headers=alice.headers).status_code == 200
    assert login(client, alice.username).status_code == 200
    assert login(client, alice.username, NEW_PASSWORD).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": PASSWORD},
        {"new_password": NEW_PASSWORD},
        {"current_password": PASSWORD, "new_password": "short"},
        {"current_password": PASSWORD, "new_password": "p" * 129},
        {"current_password": PASSWORD, "new_password": "with\x00nul!"},
        {"current_password": "\ud800 lone surrogate", "new_password": NEW_PASSWORD},
    ],
)
def test_an_invalid_password_change_is_422_and_changes_nothing(client: TestClient, alice: Account, body: dict) -> None:
    # ASCII-escaped JSON, so that the lone surrogate reaches the server.
    headers = {**alice.headers, "Content-Type": "application/json"}
    response = client.post("/v1/auth/password", content=json.dumps(body), headers=headers)
    assert response.status_code == 422
    assert client.get("/v1/auth/me", headers=alice.headers).status_code == 200
    assert login(client, alice.username).status_code == 200


def _row_counts(connection: Connection) -> dict[str, int]:
    """Rows in every table of the database (SQLite's shadow tables of virtual ones aside:
    their rows are an index's internal pages, not data)."""
    if connection.dialect.name == "sqlite":
        listed = connection.execute(text("PRAGMA table_list")).all()
        names = [row.name for row in listed if row.schema == "main" and row.type == "table"]
    else:
        names = inspect(connection).get_table_names()
    names = [name for name in names if name != "alembic_version" and not name.startswith("sqlite_")]
    return {name: connection.scalar(select(func.count()).select_from(table(name))) for name in names}


@pytest.mark.whole_database
def test_deleting_the_account_leaves_no_row_behind_in_any_table(client: TestClient, make_account) -> None:
    with engine.connect() as connection:
        before = _row_counts(connection)
    doomed: Account = make_account()
    second_session = login(client, doomed.username).json()
    for index in range(2):
        chat = client.post(
            "/v1/chats/",
            json={"title": f"chat {index}", "metadata": {"k": "v"}},
            headers={**doomed.headers, "Idempotency-Key": f"key-{index}"},
        )
        assert chat.status_code == 201
        for role in ("system", "user", "assistant"):
            message = client.post(
                f"/v1/chats/{chat.json()['id']}/message",
                json={"role": role, "content": f"{role} 消息 🙂"},
                headers={**doomed.headers, "Idempotency-Key": f"key-{index}-{role}"},
            )
            assert message.status_code == 201
    with engine.connect() as connection:
        during = _row_counts(connection)
    assert during != before

    response = client.request("DELETE", "/v1/auth/me", json={"password": PASSWORD}, headers=doomed.headers)
    assert response.status_code == 200
    assert response.json() == {"ok": True}

    with engine.connect() as connection:
        assert _row_counts(connection) == before
        assert connection.scalar(select(User.id).where(User.username == doomed.username)) is None
    for token in (doomed.token, second_session["access_token"]):
        for method, path in [("GET", "/v1/auth/me"), ("GET", "/v1/chats/"), ("POST", "/v1/auth/logout")]:
            refused = client.request(method, path, headers=bearer(token))
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
    assert client.post("/v1/auth/refresh", json={"refresh_token": second_session["refresh_token"]}).status_code == 401
    assert login(client, doomed.username).status_code == 401


@pytest.mark.parametrize("body", [{"password": "not the password"}, {"password": PASSWORD + "x"}])
def test_deleting_with_a_wrong_password_is_400_and_deletes_nothing(
    client: TestClient, alice: Account, chat_id: int, body: dict
) -> None:
    response = client.request("DELETE", "/v1/auth/me", json=body, headers=alice.headers)
    assert response.status_code == 400
    assert response.json() == {"detail": "Incorrect password"}
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).status_code == 200


@pytest.mark.parametrize("body", [None, {}, {"password": "short"}, {"password": None}])
def test_deleting_without_a_valid_password_is_422(client: TestClient, alice: Account, body: object) -> None:
    response = client.request("DELETE", "/v1/auth/me", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert client.get("/v1/auth/me", headers=alice.headers).status_code == 200


def test_a_new_user_with_a_deleted_users_name_inherits_none_of_its_tokens(client: TestClient, make_account) -> None:
    old: Account = make_account()
    old_tokens = login(client, old.username).json()
    assert client.request("DELETE", "/v1/auth/me", json={"password": PASSWORD}, headers=old.headers).status_code == 200
    registered = client.post(
        "/v1/auth/register", json={"email": old.email, "username": old.username, "password": PASSWORD}
    )
    assert registered.status_code == 201
    # (SQLite hands the new user the deleted one's id when it was the newest.)
    for token in (old.token, old_tokens["access_token"]):
        assert client.get("/v1/auth/me", headers=bearer(token)).status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": old_tokens["refresh_token"]}).status_code == 401
    new_token = login(client, old.username).json()["access_token"]
    assert client.get("/v1/auth/me", headers=bearer(new_token)).json()["id"] == registered.json()["id"]
