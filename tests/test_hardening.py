"""What a stranger sends can neither exhaust the server, end someone else's session, nor
get a 500 (issue 14): every item is pinned here on both engines. The import's memory
bound is in test_import_limits.py."""

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import update

import security
from conftest import DATABASE_URL, ENGINE, PASSWORD, SETTINGS, Account, logins_from_forged_addresses
from main import create_app
from models import User
from security import AccessClaims, VerifiedTokens
from server import main_py
from service.rules import MAX_ID


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient | httpx.Client, account: Account) -> dict:
    response = client.post("/v1/auth/token", data={"username": account.username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


# --- 2. the request head is bounded, and junk tokens are never kept


@pytest.mark.parametrize("where", ["header", "query", "path"])
def test_an_oversized_head_is_431_before_any_work(client: TestClient, where: str) -> None:
    pad = "x" * (SETTINGS.max_head_bytes + 1)
    if where == "header":
        response = client.get("/v1/auth/me", headers=bearer("x" * (1024 * 1024)))
    else:
        response = client.get(f"/v1/auth/me?pad={pad}" if where == "query" else f"/v1/{pad}")
    assert response.status_code == 431
    assert response.json() == {"detail": f"Request line and headers are larger than {SETTINGS.max_head_bytes} bytes"}
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_head_of_exactly_the_limit_is_served_and_one_byte_more_is_431(client: TestClient, alice: Account) -> None:
    def head_of(pad: int) -> httpx.Request:
        return client.build_request("GET", "/v1/auth/me", headers=alice.headers | {"x-pad": "p" * pad})

    # What the bound counts: the path, the query and every header's name and value.
    counted = len("/v1/auth/me") + sum(len(name) + len(value) for name, value in head_of(0).headers.raw)
    exact = head_of(SETTINGS.max_head_bytes - counted)
    assert client.send(exact).status_code == 200
    assert client.send(head_of(SETTINGS.max_head_bytes - counted + 1)).status_code == 431


def test_a_token_over_its_limit_is_401_unverified(client: TestClient, alice: Account) -> None:
    oversized = alice.token + "." + "x" * SETTINGS.max_token_bytes
    response = client.get("/v1/auth/me", headers=bearer(oversized))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_token_of_exactly_the_limit_is_verified(client: TestClient, alice: Account) -> None:
    claims = jwt.get_unverified_claims(alice.token)
    # A padding claim makes the token as long as wanted (base64 skips some lengths: try two shapes).
    tokens = (signed(json.dumps(claims | {"pad": "p" * n, **extra})) for n in range(3000) for extra in ({}, {"q": 1}))
    longest = next(token for token in tokens if len(token) == SETTINGS.max_token_bytes)
    assert client.get("/v1/auth/me", headers=bearer(longest)).status_code == 200


def test_junk_tokens_leave_nothing_in_the_verified_tokens(client: TestClient, alice: Account) -> None:
    verified = client.app.state.signer.verified
    assert client.get("/v1/auth/me", headers=alice.headers).status_code == 200
    held = verified.bytes
    for _ in range(200):
        junk = alice.token[:-8] + secrets.token_urlsafe(6)[:8]
        assert client.get("/v1/auth/me", headers=bearer(junk)).status_code == 401
    assert verified.bytes == held
    assert verified.bytes <= verified.max_bytes


# --- 3. every malformed refresh token is a 401, on both engines


@pytest.mark.parametrize("token", ["\x00", "abc\x00.def", "abc.def\x00", "\x00.\x00", "a" * 33 + ".b", "é.é"])
def test_a_malformed_refresh_token_is_401(client: TestClient, token: str) -> None:
    response = client.post("/v1/auth/refresh", json={"refresh_token": token})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or expired refresh token"}


# --- 4. only a secret really issued, and already rotated, counts as reuse


def test_a_guessed_secret_for_a_seen_session_changes_nothing(client: TestClient, alice: Account) -> None:
    tokens = login(client, alice)
    session_id = jwt.get_unverified_claims(tokens["access_token"])["sid"]
    assert tokens["refresh_token"].startswith(session_id + ".")
    for _ in range(3):
        guess = f"{session_id}.{secrets.token_urlsafe(32)}"
        assert client.post("/v1/auth/refresh", json={"refresh_token": guess}).status_code == 401
    # The victim's session goes on: their refresh token still works, and rotates.
    renewed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200
    # A secret that was issued and rotated away is reuse: the session ends.
    reused = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    newest = client.post("/v1/auth/refresh", json={"refresh_token": renewed.json()["refresh_token"]})
    assert newest.status_code == 401


# --- 5. no-store on everything that carries tokens or user data; nosniff and JSON on every error


def test_answers_with_tokens_or_user_data_are_never_stored(client: TestClient, alice: Account) -> None:
    tokens = login(client, alice)
    chat = client.post("/v1/chats/", json={"title": "kept private"}, headers=alice.headers).json()
    client.post(f"/v1/chats/{chat['id']}/message", json={"role": "user", "content": "hello"}, headers=alice.headers)
    answers = [
        client.post("/v1/auth/token", data={"username": alice.username, "password": PASSWORD}),
        client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
        client.get("/v1/auth/me", headers=alice.headers),
        client.get("/v1/chats/", headers=alice.headers),
        client.get(f"/v1/chats/{chat['id']}", headers=alice.headers),
        client.get(f"/v1/chats/{chat['id']}/messages", headers=alice.headers),
        client.get("/v1/chats/search?q=hello", headers=alice.headers),
        client.get(f"/v1/chats/{chat['id']}/export?format=markdown", headers=alice.headers),
        client.get("/v1/chats/export", headers=alice.headers),
    ]
    password = client.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": PASSWORD},
        headers=alice.headers,
    )
    for response in [*answers, password]:
        assert response.status_code in (200, 201), (response.request.url, response.text)
        assert response.headers["cache-control"] == "no-store", response.request.url


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/chats/", 401),
        ("GET", "/v1/nowhere", 404),
        ("PUT", "/v1/chats/", 405),
        ("GET", "/v1/chats/abc", 422),
    ],
)
def test_every_error_is_json_with_nosniff(
    client: TestClient, alice: Account, method: str, path: str, status: int
) -> None:
    headers = {} if status == 401 else alice.headers
    response = client.request(method, path, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert "detail" in response.json()
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_an_unexpected_error_is_a_json_500_that_tells_nothing() -> None:
    app: FastAPI = create_app(SETTINGS.model_copy(update={"migrate_on_start": False}))

    @app.get("/v1/broken")
    async def broken() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/broken")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "secret internals" not in response.text


# --- 6. signed claims that overflow are a 401


def signed(claims_json: str) -> str:
    """A token signed with the app's key whose claims are `claims_json`, as written."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + part(claims_json.encode())
    signature = hmac.new(SETTINGS.secret_key.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + part(signature)


@pytest.mark.parametrize(
    "claim",
    [
        '"exp": 1e400',
        '"exp": Infinity',
        '"exp": -Infinity',
        '"exp": NaN',
        '"exp": 99999999999999999999999',
        '"exp": 9007199254740992',  # 2**53, the first time past what a float holds exactly
        '"exp": 9e15, "nbf": -Infinity',
        '"exp": 9e15, "iat": 1e400',
    ],
)
def test_claims_that_overflow_are_401(client: TestClient, alice: Account, claim: str) -> None:
    claims = jwt.get_unverified_claims(alice.token)
    fixed = {key: value for key, value in claims.items() if key not in ("exp", "iat", "nbf")}
    body = json.dumps(fixed)[:-1] + ', "iat": 1700000000, ' + claim + "}"
    if '"iat"' in claim:
        body = json.dumps(fixed)[:-1] + ", " + claim + "}"
    response = client.get("/v1/auth/me", headers=bearer(signed(body)))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_signing_helper_makes_tokens_the_app_accepts(client: TestClient, alice: Account) -> None:
    claims = jwt.get_unverified_claims(alice.token)
    assert client.get("/v1/auth/me", headers=bearer(signed(json.dumps(claims)))).status_code == 200
    last = claims | {"exp": 2**53 - 1, "jti": "last"}  # the last time accepted
    assert client.get("/v1/auth/me", headers=bearer(signed(json.dumps(last)))).status_code == 200


@pytest.mark.parametrize("generation", [0, MAX_ID])
def test_a_token_of_generation_0_or_the_last_is_accepted(client: TestClient, alice: Account, generation: int) -> None:
    """Accounts made before generations were random start at 0 (the column's default); the
    column holds up to MAX_ID."""
    with ENGINE.begin() as conn:
        conn.execute(update(User).where(User.id == alice.id).values(token_generation=generation))
    token = login(client, alice)["access_token"]
    assert jwt.get_unverified_claims(token)["gen"] == generation
    assert client.get("/v1/auth/me", headers=bearer(token)).json()["username"] == alice.username


def test_a_cached_token_is_refused_from_the_moment_it_expires(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = client.app.state.signer
    assert client.get("/v1/auth/me", headers=alice.headers).status_code == 200
    cached = signer.verified.get(alice.token)  # its signature checked once, then kept
    assert cached == AccessClaims(alice.id, cached.generation, cached.session_id, cached.expires)
    held = signer.verified.bytes
    assert client.get("/v1/auth/me", headers=alice.headers).status_code == 200
    assert signer.verified.bytes == held  # found there, not kept twice
    monkeypatch.setattr(security, "time", SimpleNamespace(time=lambda: cached.expires - 0.001))
    assert client.get("/v1/auth/me", headers=alice.headers).status_code == 200
    monkeypatch.setattr(security, "time", SimpleNamespace(time=lambda: cached.expires))
    assert client.get("/v1/auth/me", headers=alice.headers).status_code == 401


def test_the_verified_tokens_keep_the_most_recently_used_within_their_bytes() -> None:
    claims = AccessClaims(1, 0, "s", 1e9)
    cache = VerifiedTokens(max_bytes=10)
    cache.put("aaaa", claims)
    cache.put("bbbb", claims)
    assert cache.get("aaaa") == claims  # now the most recently used
    cache.put("cccc", claims)  # 12 bytes: the least recently used goes
    assert [cache.get(token) for token in ("bbbb", "aaaa", "cccc")] == [None, claims, claims]
    cache.put("dd", claims)  # 10 bytes: within the budget, nothing goes
    assert (cache.bytes, list(cache.entries)) == (10, ["aaaa", "cccc", "dd"])
    cache.put("eeeeeeee", claims)  # 18 bytes: the oldest go until it fits
    assert (cache.bytes, list(cache.entries)) == (10, ["dd", "eeeeeeee"])


# --- 7. no error carries more than an excerpt of what was sent


def test_a_422_never_echoes_a_huge_key(client: TestClient, alice: Account) -> None:
    key = "k" * 1_000_000
    response = client.post("/v1/chats/", json={"title": "t", "metadata": {key: "v"}}, headers=alice.headers)
    assert response.status_code == 422
    assert len(response.content) < 2_000
    assert response.json()["detail"][0]["loc"] == ["body", "metadata", "k" * 64 + "…", "[key]"]
    # A key of 64 characters is named whole; a message is kept whole up to 500 characters.
    whole = client.post("/v1/chats/", json={"title": "t", "metadata": {"k" * 64: 5}}, headers=alice.headers)
    assert whole.json()["detail"] == [
        {"type": "string_type", "loc": ["body", "metadata", "k" * 64], "msg": "Input should be a valid string"}
    ]
    not_an_object = client.post("/v1/chats/", json=[1], headers=alice.headers).json()["detail"]
    assert not_an_object[0]["msg"] == "Input should be a valid dictionary or object to extract fields from"


def test_a_422_never_echoes_huge_content(client: TestClient, alice: Account, chat_id: int) -> None:
    content = "c" * (SETTINGS.max_content_bytes + 1)
    response = client.post(
        f"/v1/chats/{chat_id}/message", json={"role": "user", "content": content}, headers=alice.headers
    )
    assert response.status_code == 422  # the body is under MAX_BODY_BYTES, its content over the limit
    why = f"must be at most {SETTINGS.max_content_bytes} bytes of UTF-8"
    error = {"type": "value_error", "loc": ["body", "content"], "msg": f"Value error, {why}", "ctx": {"error": why}}
    assert response.json()["detail"] == [error]


# --- 8. the client address is the TCP peer unless the operator names trusted proxies


def test_forwarded_for_is_not_believed_from_an_untrusted_peer(tmp_path: Path) -> None:
    attempts = _logins_from_forged_addresses(tmp_path, trusted="")
    assert attempts[-1] == 429, attempts


def test_forwarded_for_is_believed_from_a_trusted_proxy(tmp_path: Path) -> None:
    attempts = _logins_from_forged_addresses(tmp_path, trusted="127.0.0.1")
    assert 429 not in attempts, attempts


def _logins_from_forged_addresses(tmp_path: Path, trusted: str) -> list[int]:
    """`python main.py` with a login limit of 2 per address, and three logins from forged addresses."""
    with (
        main_py(
            tmp_path,
            DATABASE_URL=DATABASE_URL,
            SECRET_KEY=SETTINGS.secret_key,
            MIGRATE_ON_START="false",
            RATE_LIMIT_LOGIN="2/minute",
            TRUSTED_PROXIES=trusted,
            REDIS_URL="",
        ) as (base_url, _),
        httpx.Client(base_url=base_url) as http,
    ):
        return logins_from_forged_addresses(http)


# --- 9. an id is digits only, in the path and in the query


@pytest.mark.parametrize("written", ["%201", "1%20", "1.0", "1_0", "+1", "%2B1", "0x1", "1e0", "%D9%A1", "-1", "0"])
def test_ids_are_digits_only(client: TestClient, alice: Account, chat_id: int, written: str) -> None:
    body = {"role": "user", "content": "hi"}
    why = "Value error, must be a whole number written in digits"
    for response in (
        client.get(f"/v1/chats/{written}", headers=alice.headers),
        client.get(f"/v1/chats/{chat_id}/messages?after={written}", headers=alice.headers),
        client.post(f"/v1/chats/message?chat_id={written}", json=body, headers=alice.headers),
        client.patch(f"/v1/chats/{chat_id}/messages/{written}", json={"content": "x"}, headers=alice.headers),
    ):
        assert response.status_code == 422, (response.request.url, response.text)
        if written != "0":  # digits, but not an id
            assert [error["msg"] for error in response.json()["detail"]] == [why], response.text
    assert client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["messages"] == []
