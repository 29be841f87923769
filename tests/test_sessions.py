"""Sessions: refresh-token rotation and reuse detection, logout, logout_all, the claims an
access token carries, iss/aud, the SECRET_KEY check, and what is (never) logged."""

import logging
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import func, select, update

from conftest import DATABASE_URL, PASSWORD, WORK_DIR, Account
from conftest import ENGINE as engine
from conftest import SETTINGS as settings
from models import AuthSession
from server import PYTHON, ROOT, free_port, running, server_env


def login(client: TestClient | httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/v1/auth/token", data={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refresh(client: TestClient, refresh_token: str) -> httpx.Response:
    return client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


def test_login_returns_an_access_and_a_refresh_token(client: TestClient, alice: Account) -> None:
    first, second = login(client, alice.username).json(), login(client, alice.username).json()
    assert set(first) == {"access_token", "token_type", "refresh_token"}
    assert first["token_type"] == "bearer"
    claims = jwt.get_unverified_claims(first["access_token"])
    assert claims["sub"] == alice.username and claims["uid"] == alice.id
    assert {"exp", "iat", "jti", "gen", "sid"} <= set(claims)
    assert claims["jti"] != jwt.get_unverified_claims(second["access_token"])["jti"]
    assert first["refresh_token"] != second["refresh_token"]
    assert client.get("/v1/auth/me", headers=bearer(first["access_token"])).status_code == 200


def test_refresh_rotates_both_tokens(client: TestClient, alice: Account) -> None:
    tokens = login(client, alice.username).json()
    response = refresh(client, tokens["refresh_token"])
    assert response.status_code == 200
    renewed = response.json()
    assert set(renewed) == {"access_token", "token_type", "refresh_token"}
    assert renewed["refresh_token"] != tokens["refresh_token"]
    assert renewed["access_token"] != tokens["access_token"]
    assert client.get("/v1/auth/me", headers=bearer(renewed["access_token"])).json()["id"] == alice.id
    again = refresh(client, renewed["refresh_token"])
    assert again.status_code == 200


def test_reusing_a_refresh_token_ends_its_whole_family(
    client: TestClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    stolen = login(client, alice.username).json()["refresh_token"]
    other_session = login(client, alice.username).json()["refresh_token"]
    renewed = refresh(client, stolen).json()["refresh_token"]

    with caplog.at_level(logging.WARNING):
        reused = refresh(client, stolen)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"Refresh token reused: ended a session of user id {alice.id}" in warned
    assert reused.status_code == 401
    assert reused.headers["www-authenticate"] == "Bearer"
    assert reused.json() == {"detail": "Invalid or expired refresh token"}
    # The newer token of that family is dead too; other sessions are not touched.
    assert refresh(client, renewed).status_code == 401
    assert refresh(client, other_session).status_code == 200


@pytest.mark.parametrize("token", ["", "nodot", ".", "abc.", ".abc", "a.b.c", "x" * 200, "💥.💥"])
def test_a_refresh_token_that_names_no_session_is_401(client: TestClient, token: str) -> None:
    response = refresh(client, token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_forged_secret_for_a_real_session_is_401(client: TestClient, alice: Account) -> None:
    session_id = login(client, alice.username).json()["refresh_token"].split(".")[0]
    assert refresh(client, f"{session_id}.guessed").status_code == 401


@pytest.mark.parametrize("body", [None, {}, {"refresh_token": None}, {"refresh_token": "x" * 1001}, ["x"]])
def test_a_malformed_refresh_request_is_422(client: TestClient, body: object) -> None:
    assert client.post("/v1/auth/refresh", json=body).status_code == 422


def test_an_access_token_is_not_a_refresh_token(client: TestClient, alice: Account) -> None:
    assert refresh(client, alice.token).status_code == 401


def test_logout_ends_this_session_only(client: TestClient, alice: Account) -> None:
    this = login(client, alice.username).json()
    other = login(client, alice.username).json()
    response = client.post("/v1/auth/logout", headers=bearer(this["access_token"]))
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert refresh(client, this["refresh_token"]).status_code == 401
    assert refresh(client, other["refresh_token"]).status_code == 200
    # Logging out twice is not an error.
    assert client.post("/v1/auth/logout", headers=bearer(this["access_token"])).status_code == 200


def test_logout_all_ends_every_session_and_every_access_token_at_once(client: TestClient, alice: Account) -> None:
    sessions = [login(client, alice.username).json() for _ in range(3)]
    assert client.post("/v1/auth/logout_all", headers=alice.headers).json() == {"ok": True}
    for tokens in [*sessions, {"access_token": alice.token, "refresh_token": None}]:
        response = client.get("/v1/chats/", headers=bearer(tokens["access_token"]))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        if tokens["refresh_token"]:
            assert refresh(client, tokens["refresh_token"]).status_code == 401
    fresh = login(client, alice.username).json()
    assert client.get("/v1/auth/me", headers=bearer(fresh["access_token"])).status_code == 200
    assert refresh(client, fresh["refresh_token"]).status_code == 200


def test_a_revoked_token_reads_and_writes_nothing_on_the_hot_routes(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """Reading a chat and appending to it check the token in the statement that does the
    work (no user read before it): a revoked token is still 401 on every one of their
    forms, for its own chat, another user's and one that does not exist, and stores nothing."""
    chat = client.post("/v1/chats/", json={"title": "Mine"}, headers=alice.headers).json()["id"]
    kept = client.post(f"/v1/chats/{chat}/message", json={"role": "user", "content": "kept"}, headers=alice.headers)
    theirs = client.post("/v1/chats/", json={"title": "Bob's"}, headers=bob.headers).json()["id"]
    assert client.post("/v1/auth/logout_all", headers=alice.headers).status_code == 200
    message = {"role": "user", "content": "after logout_all"}
    for target in (chat, theirs, 2**62):
        for method, path, body, headers in [
            ("GET", f"/v1/chats/{target}", None, {}),
            ("GET", f"/v1/chats/{target}?message_id={kept.json()['id']}", None, {}),
            ("POST", f"/v1/chats/{target}/message", message, {}),
            ("POST", f"/v1/chats/message?chat_id={target}", message, {}),
            ("POST", f"/v1/chats/{target}/message", {**message, "parent_id": None}, {}),
            ("POST", f"/v1/chats/{target}/message", message, {"Idempotency-Key": "revoked"}),
        ]:
            response = client.request(method, path, json=body, headers=alice.headers | headers)
            answer = (response.status_code, response.json(), response.headers.get("www-authenticate"))
            assert answer == (401, {"detail": "Could not validate credentials"}, "Bearer"), (method, path, headers)
    fresh = bearer(login(client, alice.username).json()["access_token"])
    assert [m["content"] for m in client.get(f"/v1/chats/{chat}", headers=fresh).json()["messages"]] == ["kept"]
    assert client.get(f"/v1/chats/{theirs}", headers=bob.headers).json()["messages"] == []


def test_a_retry_with_a_revoked_token_replays_nothing(client: TestClient, alice: Account) -> None:
    """An Idempotency-Key's stored answer is not given to a token revoked since."""
    chat = client.post("/v1/chats/", json={"title": "Mine"}, headers=alice.headers).json()["id"]
    keyed = alice.headers | {"Idempotency-Key": "once"}
    message = {"role": "user", "content": "hi"}
    assert client.post(f"/v1/chats/{chat}/message", json=message, headers=keyed).status_code == 201
    assert client.post(f"/v1/chats/{chat}/message", json=message, headers=keyed).status_code == 201
    assert client.post("/v1/auth/logout_all", headers=alice.headers).status_code == 200
    assert client.post(f"/v1/chats/{chat}/message", json=message, headers=keyed).status_code == 401


@pytest.mark.parametrize("path", ["/v1/auth/logout", "/v1/auth/logout_all"])
def test_logging_out_needs_a_valid_token(client: TestClient, path: str) -> None:
    response = client.post(path, headers=bearer("not.a.jwt"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_valid_signature_without_the_binding_claims_is_401(client: TestClient, alice: Account) -> None:
    claims = jwt.get_unverified_claims(alice.token)
    for missing in ("uid", "gen", "sid", "jti", "iat"):
        forged = jwt.encode({k: v for k, v in claims.items() if k != missing}, settings.signing_key, "HS256")
        assert client.get("/v1/auth/me", headers=bearer(forged)).status_code == 401, missing
    for field, value in [("gen", claims["gen"] + 1), ("uid", 2**63), ("gen", -1), ("uid", "1"), ("gen", True)]:
        forged = jwt.encode({**claims, field: value}, settings.signing_key, "HS256")
        assert client.get("/v1/auth/me", headers=bearer(forged)).status_code == 401, (field, value)


def _server_command(port: int) -> list[str]:
    return [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--no-access-log"]


def test_issuer_and_audience_are_set_and_required_when_configured(client: TestClient, alice: Account) -> None:
    key = settings.secret_key
    env = server_env(
        DATABASE_URL=DATABASE_URL,
        SECRET_KEY=key,
        MIGRATE_ON_START="false",
        JWT_ISSUER="https://chat.example",
        JWT_AUDIENCE="chat-api",
    )
    port = free_port()
    with running(_server_command(port), env, WORK_DIR, port) as base_url, httpx.Client(base_url=base_url) as http:
        tokens = login(http, alice.username).json()
        claims = jwt.get_unverified_claims(tokens["access_token"])
        assert claims["iss"] == "https://chat.example" and claims["aud"] == "chat-api"
        assert http.get("/v1/auth/me", headers=bearer(tokens["access_token"])).status_code == 200

        now = datetime.now(UTC)
        base = {k: v for k, v in claims.items() if k not in ("iss", "aud")} | {"exp": now + timedelta(minutes=5)}
        for wrong in [
            {},
            {"iss": "https://chat.example"},
            {"aud": "chat-api"},
            {"iss": "https://evil.example", "aud": "chat-api"},
            {"iss": "https://chat.example", "aud": "other-api"},
            {"iss": "https://chat.example", "aud": ["other-api"]},
        ]:
            forged = jwt.encode(base | wrong, key, "HS256")
            response = http.get("/v1/auth/me", headers=bearer(forged))
            assert response.status_code == 401, wrong
            assert response.headers["www-authenticate"] == "Bearer"
        # A token of the in-process app (no iss, no aud) is refused there.
        assert http.get("/v1/auth/me", headers=alice.headers).status_code == 401
    # ...and the iss/aud token is refused by the app that does not expect an audience.
    assert client.get("/v1/auth/me", headers=bearer(tokens["access_token"])).status_code == 401


def test_a_short_secret_key_refuses_to_start_outside_development(tmp_path) -> None:
    env = server_env(DATABASE_URL=f"sqlite:///{tmp_path / 'short.db'}", SECRET_KEY="too-short")
    env.pop("ENVIRONMENT", None)
    started = subprocess.run(
        [PYTHON, "-c", "import main"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode != 0
    assert "SECRET_KEY must be at least 32 bytes" in started.stderr
    assert "too-short" not in started.stderr.replace("SECRET_KEY", "")

    port = free_port()
    development = {**env, "ENVIRONMENT": "development"}
    with running(_server_command(port), development, tmp_path, port) as base_url:
        assert httpx.get(f"{base_url}/v1").status_code == 200


def test_failed_logins_are_logged_without_the_password_and_no_token_is_ever_logged(
    client: TestClient, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "my wrong secret password"
    assert login(client, alice.username, wrong).status_code == 401
    failed = [record.getMessage() for record in caplog.records if "Failed login" in record.getMessage()]
    assert failed == [f"Failed login for username {alice.username!r} from testclient"]
    caplog.clear()
    assert login(client, "n" * 150, wrong).status_code == 401  # a name is logged to its first 100 characters
    assert [record.getMessage() for record in caplog.records if "Failed login" in record.getMessage()] == [
        f"Failed login for username {'n' * 100!r} from testclient"
    ]

    tokens = login(client, alice.username).json()
    renewed = refresh(client, tokens["refresh_token"]).json()
    assert refresh(client, tokens["refresh_token"]).status_code == 401
    changed = client.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another passphrase"},
        headers=bearer(renewed["access_token"]),
    ).json()
    client.post("/v1/auth/logout", headers=bearer(changed["access_token"]))

    secrets = [wrong, PASSWORD, "another passphrase", alice.token]
    for tokens_seen in (tokens, renewed, changed):
        secrets += [tokens_seen["access_token"], tokens_seen["refresh_token"]]
        secrets += tokens_seen["refresh_token"].split(".")
    logged = "\n".join(f"{record.getMessage()} {record.args}" for record in caplog.records)
    for secret in secrets:
        assert secret not in logged


PUBLIC = {("post", "/v1/auth/register"), ("post", "/v1/auth/token"), ("post", "/v1/auth/refresh")}


def test_every_account_and_chat_operation_needs_a_token(client: TestClient) -> None:
    """Function-level authorization: nothing under /v1/auth or /v1/chats but registering
    and the two ways to get tokens is open, and the schema says so too."""
    paths = client.get("/openapi.json").json()["paths"]
    checked = 0
    for path, operations in paths.items():
        if not path.startswith(("/v1/auth", "/v1/chats")):
            continue
        for method, operation in operations.items():
            if (method, path) in PUBLIC:
                assert "security" not in operation
                continue
            assert operation.get("security"), (method, path)
            url = path.replace("{chat_id}", "1").replace("{message_id}", "1")
            response = client.request(method, url, params={"chat_id": 1})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            checked += 1
    assert checked >= 20


def test_an_expired_refresh_token_is_401_and_expired_sessions_are_swept_at_login(
    client: TestClient, alice: Account
) -> None:
    tokens = login(client, alice.username).json()
    session_id = tokens["refresh_token"].split(".")[0]
    with engine.begin() as connection:
        past = datetime.now(UTC) - timedelta(seconds=1)
        connection.execute(update(AuthSession).where(AuthSession.user_id == alice.id).values(expires_at=past))
    assert refresh(client, tokens["refresh_token"]).status_code == 401
    login(client, alice.username)
    with engine.connect() as connection:
        assert connection.scalar(select(AuthSession.id).where(AuthSession.id == session_id)) is None
        live = select(func.count()).where(AuthSession.user_id == alice.id)
        assert connection.scalar(live) == 1
