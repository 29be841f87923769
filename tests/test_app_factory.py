"""Settings are resolved when an app is built: one pytest run can build apps with other
settings, on either engine, side by side, without touching the environment."""

import asyncio
import os
import secrets
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import create_engine, make_url, select, text

from config import Settings
from conftest import PASSWORD, SERVER_URL, SETTINGS
from main import create_app
from models import AuthSession, User
from security import PasswordHasher


def register_and_log_in(client: TestClient) -> int:
    username = f"factory_{uuid.uuid4().hex[:8]}"
    body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
    assert client.post("/v1/auth/register", json=body).status_code == 201
    return client.post("/v1/auth/token", data={"username": username, "password": PASSWORD}).status_code


def test_passwords_hash_one_at_a_time_per_core_in_threads_of_their_own() -> None:
    """docs/security.md: one hash at a time per core, in threads of their own."""

    def threads_started_by(work: object) -> list[str]:
        before = set(threading.enumerate())
        asyncio.run(work)
        return sorted(thread.name for thread in threading.enumerate() if thread not in before)

    per_core = [f"argon2_{i}" for i in range(os.cpu_count() or 1)]
    hasher, checker = PasswordHasher(SETTINGS), PasswordHasher(SETTINGS)
    passwords = [f"password {i}" for i in range(3 * len(per_core))]
    hashes: list[str] = []

    async def hash_all() -> None:
        hashes.extend(await asyncio.gather(*map(hasher.hash, passwords)))

    async def verify_all() -> None:
        verified = await asyncio.gather(*map(checker.verify, passwords, hashes))
        assert [matches for matches, _ in verified] == [True] * len(passwords)

    try:
        assert threads_started_by(hash_all()) == per_core
        assert threads_started_by(verify_all()) == per_core
    finally:
        hasher.close()
        checker.close()


def test_an_app_with_other_settings_in_the_same_process(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'other.db'}",
        secret_key=secrets.token_urlsafe(48),
        rate_limit_login="1/minute",
        max_content_bytes=10,
        redis_url="",
    )
    env_before = dict(os.environ)
    with TestClient(create_app(settings)) as client:
        assert register_and_log_in(client) == 200
        assert client.post("/v1/auth/token", data={"username": "someone", "password": PASSWORD}).status_code == 429
    assert dict(os.environ) == env_before
    assert (tmp_path / "other.db").exists()


def test_the_suite_app_keeps_its_own_limits(client: TestClient) -> None:
    # The other app's 10-byte content limit and 1/minute login limit never reached this one.
    assert client.app.state.settings is SETTINGS
    assert register_and_log_in(client) == 200


def test_sqlite_and_postgresql_apps_side_by_side(tmp_path: Path) -> None:
    urls = [f"sqlite:///{tmp_path / 'side.db'}"]
    admin_url = SERVER_URL or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    name = f"factory_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        urls.append(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
        apps = [
            create_app(Settings(_env_file=None, database_url=url, secret_key=secrets.token_urlsafe(48), redis_url=""))
            for url in urls
        ]
        with TestClient(apps[0]) as sqlite_client, TestClient(apps[1]) as postgresql_client:
            assert sqlite_client.app.state.database.engine.dialect.name == "sqlite"
            assert postgresql_client.app.state.database.engine.dialect.name == "postgresql"
            assert register_and_log_in(sqlite_client) == 200
            assert register_and_log_in(postgresql_client) == 200
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# What an app builds once from its settings (password hasher, token signer, rate limiter) is
# checked on apps built inside the tests: the suite's own app is built before any test runs.


def built_app(database_url: str, **overrides: object) -> FastAPI:
    return create_app(
        Settings(_env_file=None, database_url=database_url, secret_key=SETTINGS.secret_key, redis_url="", **overrides)
    )


def register(client: TestClient) -> str:
    username = f"built_{uuid.uuid4().hex[:8]}"
    body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
    assert client.post("/v1/auth/register", json=body).status_code == 201
    return username


def log_in(client: TestClient, username: str) -> dict:
    response = client.post("/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


def stored_hash(client: TestClient, username: str) -> str:
    with client.app.state.database.engine.connect() as conn:
        return conn.scalar(select(User.hashed_password).where(User.username == username))


def session_expiry(client: TestClient, refresh_token: str) -> datetime:
    with client.app.state.database.engine.connect() as conn:
        expires = conn.scalar(select(AuthSession.expires_at).where(AuthSession.id == refresh_token.split(".")[0]))
    return expires if expires.tzinfo else expires.replace(tzinfo=UTC)


def test_tokens_and_password_hashes_follow_the_apps_settings(fresh_database_url: str) -> None:
    app = built_app(
        fresh_database_url,
        access_token_expire_minutes=7,
        refresh_token_expire_days=3,
        jwt_issuer="chat-tests",
        jwt_audience="chat-clients",
        argon2_memory_kib=8192,
        argon2_time_cost=1,
        argon2_parallelism=2,
    )
    with TestClient(app) as client:
        username = register(client)
        assert stored_hash(client, username).startswith("$argon2id$v=19$m=8192,t=1,p=2$")

        before = datetime.now(UTC)
        tokens = log_in(client, username)
        after = datetime.now(UTC)
        claims = jwt.get_unverified_claims(tokens["access_token"])
        assert claims["exp"] - claims["iat"] == 7 * 60
        assert (claims["sub"], claims["iss"], claims["aud"]) == (username, "chat-tests", "chat-clients")
        assert before + timedelta(days=3) - timedelta(seconds=1) <= session_expiry(client, tokens["refresh_token"])
        assert session_expiry(client, tokens["refresh_token"]) <= after + timedelta(days=3)

        me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 200 and me.json()["username"] == username
        # The same claims, signed with the same key, but not for this issuer or audience.
        # And claims left out that every token carries: the key alone does not make a token.
        changes = ({"aud": "someone-else"}, {"iss": "someone-else"}, {"aud": None}, {"iss": None})
        for changed in changes + tuple({claim: None} for claim in ("sub", "iat", "exp", "jti")):
            forged = {key: value for key, value in {**claims, **changed}.items() if value is not None}
            token = jwt.encode(forged, SETTINGS.secret_key, algorithm="HS256")
            assert client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401

        refreshed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
        assert session_expiry(client, refreshed.json()["refresh_token"]) >= before + timedelta(days=3)


def test_a_login_rehashes_a_password_hashed_with_other_costs(fresh_database_url: str) -> None:
    with TestClient(built_app(fresh_database_url, argon2_time_cost=1)) as client:
        username = register(client)
        assert stored_hash(client, username).startswith("$argon2id$v=19$m=19456,t=1,p=1$")
    with TestClient(built_app(fresh_database_url, argon2_time_cost=3)) as client:
        wrong = client.post("/v1/auth/token", data={"username": username, "password": PASSWORD + "!"})
        assert wrong.status_code == 401
        assert stored_hash(client, username).startswith("$argon2id$v=19$m=19456,t=1,p=1$")
        log_in(client, username)
        assert stored_hash(client, username).startswith("$argon2id$v=19$m=19456,t=3,p=1$")
        log_in(client, username)


def test_rate_limits_count_in_the_window_their_setting_names(fresh_database_url: str) -> None:
    app = built_app(
        fresh_database_url,
        rate_limit_login="2/hour",
        rate_limit_register="2/day",
        rate_limit_refresh="1/hour",
        rate_limit_password="1/hour",
    )

    def assert_refused(response: httpx.Response, what: str, window: int) -> None:
        assert response.status_code == 429
        seconds = int(response.headers["retry-after"])
        assert window - 60 < seconds <= window
        assert response.json() == {"detail": f"Too many {what} attempts; try again in {seconds} seconds"}

    with TestClient(app) as client:
        username = register(client)
        log_in(client, username)
        tokens = log_in(client, username)
        assert_refused(client.post("/v1/auth/token", data={"username": username, "password": PASSWORD}), "login", 3600)
        register(client)
        third = {"email": "third@example.com", "username": "third_one", "password": PASSWORD}
        assert_refused(client.post("/v1/auth/register", json=third), "register", 86400)

        refreshed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
        again = client.post("/v1/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]})
        assert_refused(again, "refresh", 3600)

        headers = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        change = {"current_password": "not the password", "new_password": "another good password"}
        assert client.post("/v1/auth/password", json=change, headers=headers).status_code == 400
        assert_refused(client.post("/v1/auth/password", json=change, headers=headers), "password", 3600)


def test_two_apps_on_one_redis_share_their_counts(fresh_database_url: str) -> None:
    prefix = f"test-built-{uuid.uuid4().hex[:10]}"
    shared = {"redis_url": "redis://127.0.0.1:6379/0", "rate_limit_prefix": prefix, "rate_limit_login": "3/hour"}
    apps = [
        create_app(Settings(_env_file=None, database_url=fresh_database_url, secret_key=SETTINGS.secret_key, **shared))
        for _ in range(2)
    ]
    counter = redis.Redis.from_url(shared["redis_url"])
    try:
        with TestClient(apps[0]) as one, TestClient(apps[1]) as other:
            username = register(one)
            log_in(one, username)
            log_in(other, username)
            log_in(one, username)
            refused = other.post("/v1/auth/token", data={"username": username, "password": PASSWORD})
            assert refused.status_code == 429
            assert 3600 - 60 < int(refused.headers["retry-after"]) <= 3600
        # Both apps counted under one key: TestClient's address, refused there before its name was counted.
        assert int(counter.get(f"{prefix}:login:address:testclient")) == 4
    finally:
        keys = list(counter.scan_iter(f"{prefix}:*"))
        if keys:
            counter.delete(*keys)
        counter.close()
