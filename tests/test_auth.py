"""Registering, logging in, and every way a token can be refused."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import delete, select

from conftest import ENGINE as engine
from conftest import PASSWORD, Account, unique_name
from conftest import SETTINGS as settings
from models import User


def register(client: TestClient, **fields: object):
    username = unique_name()
    body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD, **fields}
    return client.post("/v1/auth/register", json=body)


def test_register_returns_the_user_without_any_password(client: TestClient) -> None:
    mixed_case = f"Mixed.Case.{unique_name()}@Example.COM"
    response = register(client, email=mixed_case)
    assert response.status_code == 201
    user = response.json()
    assert set(user) == {"id", "email", "username", "created_at"}
    assert user["email"] == mixed_case.lower()
    assert user["created_at"].endswith("Z")
    assert PASSWORD not in response.text and "argon2" not in response.text


def test_the_password_is_stored_as_an_argon2id_hash(client: TestClient) -> None:
    username = register(client).json()["username"]
    with engine.connect() as connection:
        stored = connection.scalar(select(User.hashed_password).where(User.username == username))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_a_taken_username_is_409(client: TestClient, alice: Account) -> None:
    response = register(client, username=alice.username)
    assert response.status_code == 409
    assert response.json() == {"detail": "Username already registered"}


def test_a_taken_email_is_409_whatever_its_case(client: TestClient, alice: Account) -> None:
    response = register(client, email=alice.email.upper())
    assert response.status_code == 409
    assert response.json() == {"detail": "Email already registered"}


@pytest.mark.parametrize(
    "fields",
    [
        {"email": "not-an-email"},
        {"email": "a@b"},
        {"username": "ab"},
        {"username": "x" * 51},
        {"username": "has space"},
        {"username": "emoji😀"},
        {"password": "short"},
        {"password": "p" * 129},
        {"password": "p" * 100_000},
        {"password": "with\x00nul"},
    ],
)
def test_invalid_registrations_are_422_and_store_nothing(client: TestClient, fields: dict) -> None:
    response = register(client, **fields)
    assert response.status_code == 422, response.text
    assert "p" * 129 not in response.text  # rejected input is not echoed back
    if "username" in fields:
        with engine.connect() as connection:
            assert connection.scalar(select(User.id).where(User.username == fields["username"])) is None


@pytest.mark.parametrize("missing", ["email", "username", "password"])
def test_missing_fields_are_422(client: TestClient, missing: str) -> None:
    body = {"email": "m@example.com", "username": unique_name(), "password": PASSWORD}
    del body[missing]
    response = client.post("/v1/auth/register", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", missing]


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/auth/register", content=b'{"email": "x@example.com",', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_login_returns_a_bearer_token(client: TestClient, alice: Account) -> None:
    response = client.post("/v1/auth/token", data={"username": alice.username, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    claims = jwt.get_unverified_claims(body["access_token"])
    assert claims["sub"] == alice.username
    assert claims["exp"] - claims["iat"] == settings.access_token_expire_minutes * 60


# Ids are plain words: an id made from a repr holding a backslash is escaped once more at each
# collection in one process, and mutmut's runner (which collects twice) then finds no such test.
@pytest.mark.parametrize(
    "form",
    [
        pytest.param({"username": "alice", "password": "wrong password"}, id="wrong-password"),
        pytest.param({"username": "nobody_by_this_name", "password": PASSWORD}, id="unknown-user"),
        # usernames are case-sensitive
        pytest.param({"username": "Alice", "password": PASSWORD}, id="username-in-other-case"),
        pytest.param({"username": "alice", "password": "x" * 100_000}, id="password-100000-characters"),
        pytest.param({"username": "alice", "password": "short"}, id="password-too-short"),
        pytest.param({"username": "ab", "password": PASSWORD}, id="username-too-short"),
        pytest.param({"username": "x" * 51, "password": PASSWORD}, id="username-too-long"),
        pytest.param({"username": "bad\x00name", "password": PASSWORD}, id="username-with-nul"),
        pytest.param({"username": "alice", "password": ""}, id="empty-password"),
        pytest.param({"username": "", "password": PASSWORD}, id="empty-username"),
        pytest.param({"username": "alice"}, id="no-password"),
        pytest.param({"password": PASSWORD}, id="no-username"),
    ],
)
def test_bad_logins_are_one_generic_401(client: TestClient, alice: Account, form: dict[str, str]) -> None:
    if form.get("username", "").lower() == "alice":
        form = {**form, "username": alice.username if form["username"] == "alice" else alice.username.upper()}
    response = client.post("/v1/auth/token", data=form)
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Incorrect username or password"}
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("body", [None, b"", b"grant_type=password&scope="])
def test_login_without_a_form_is_422(client: TestClient, body: bytes | None) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    response = client.post("/v1/auth/token", content=body, headers=headers)
    assert response.status_code == 422
    missing = [{"type": "missing", "loc": ["body", name], "msg": "Field required"} for name in ("username", "password")]
    assert response.json() == {"detail": missing}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_test_token_returns_the_current_user(client: TestClient, alice: Account, method: str) -> None:
    response = client.request(method, "/v1/auth/test_token", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["username"] == alice.username
    assert set(response.json()) == {"id", "email", "username", "created_at"}


def _forge(claims: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key or settings.signing_key, algorithm=algorithm)


def _claims(username: str, **overrides: object) -> dict:
    now = datetime.now(UTC)
    return {"sub": username, "iat": now, "exp": now + timedelta(minutes=5), **overrides}


def _unsigned(username: str) -> str:
    # alg "none": a header and a payload with an empty signature.
    import base64
    import json

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    exp = int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': username, 'iat': exp - 300, 'exp': exp})}."


def _tampered(token: str, username: str) -> str:
    import base64
    import json

    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = username
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(
    "case",
    ["missing", "garbage", "not bearer", "alg none", "tampered", "expired", "other key", "no sub", "deleted user"],
)
def test_bad_tokens_are_401_with_www_authenticate(client: TestClient, alice: Account, bob: Account, case: str) -> None:
    headers = {
        "missing": {},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "not bearer": {"Authorization": f"Basic {alice.token}"},
        "alg none": {"Authorization": f"Bearer {_unsigned(alice.username)}"},
        "tampered": {"Authorization": f"Bearer {_tampered(bob.token, alice.username)}"},
        "expired": {
            "Authorization": "Bearer " + _forge(_claims(alice.username, exp=datetime.now(UTC) - timedelta(seconds=1)))
        },
        "other key": {"Authorization": f"Bearer {_forge(_claims(alice.username), key='k' * 48)}"},
        "no sub": {"Authorization": f"Bearer {_forge({'exp': datetime.now(UTC) + timedelta(minutes=5)})}"},
        "deleted user": bob.headers,
    }[case]
    chat = client.post("/v1/chats/", json={"title": "Bob's"}, headers=bob.headers).json()["id"]
    if case == "deleted user":
        with engine.begin() as connection:
            connection.execute(delete(User).where(User.id == bob.id))
    message = {"role": "user", "content": "hi"}
    for method, path, body in [
        ("GET", "/v1/auth/test_token", None),
        ("GET", "/v1/chats/", None),
        ("POST", "/v1/chats/", {"title": "t"}),
        # The hot routes, whose own statement checks the token's user: 401, not 404.
        ("GET", f"/v1/chats/{chat}", None),
        ("POST", f"/v1/chats/{chat}/message", message),
    ]:
        response = client.request(method, path, headers=headers, json=body)
        assert response.status_code == 401, (case, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"]
