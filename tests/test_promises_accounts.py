"""README promises about accounts and sessions, at the precision the README states them."""

import base64
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import select

from conftest import ENGINE as engine
from conftest import PASSWORD, Account, unique_name
from conftest import SETTINGS as settings
from models import AuthSession
from service.rules import KEY_PREFIX


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict:
    response = client.post("/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def session_expiry(refresh_token: str) -> datetime:
    with engine.connect() as connection:
        return connection.scalar(select(AuthSession.expires_at).where(AuthSession.id == refresh_token.split(".")[0]))


def test_an_access_token_lives_exactly_access_token_expire_minutes(client: TestClient, alice: Account) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    tokens = login(client, alice.username)
    after = datetime.now(UTC)
    claims = jwt.get_unverified_claims(tokens["access_token"])
    assert claims["exp"] - claims["iat"] == settings.access_token_expire_minutes * 60 == 30 * 60
    assert before.timestamp() <= claims["iat"] <= after.timestamp()
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
    claims = jwt.get_unverified_claims(refreshed["access_token"])
    assert claims["exp"] - claims["iat"] == 30 * 60


def test_a_refresh_token_lives_refresh_token_expire_days_and_each_refresh_starts_a_new_lifetime(
    client: TestClient, alice: Account
) -> None:
    lifetime = timedelta(days=settings.refresh_token_expire_days)
    assert lifetime == timedelta(days=14)
    before = datetime.now(UTC)
    tokens = login(client, alice.username)
    expires = session_expiry(tokens["refresh_token"])
    assert before + lifetime <= expires <= datetime.now(UTC) + lifetime
    # Pushed back to a day from now, a refresh gives the session its whole lifetime again.
    with engine.begin() as connection:
        connection.execute(
            AuthSession.__table__.update()
            .where(AuthSession.id == tokens["refresh_token"].split(".")[0])
            .values(expires_at=datetime.now(UTC) + timedelta(days=1))
        )
    before = datetime.now(UTC)
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert before + lifetime <= session_expiry(refreshed.json()["refresh_token"]) <= datetime.now(UTC) + lifetime


def test_an_account_and_its_session_are_timed_in_utc_whatever_the_servers_time_zone(
    client: TestClient, far_time_zone: None
) -> None:
    username = unique_name("zone")
    before = datetime.now(UTC)
    body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
    registered = client.post("/v1/auth/register", json=body)
    assert registered.status_code == 201, registered.text
    assert before <= datetime.fromisoformat(registered.json()["created_at"]) <= datetime.now(UTC)
    lifetime = timedelta(days=settings.refresh_token_expire_days)
    before = datetime.now(UTC)
    tokens = login(client, username)
    first = tokens["refresh_token"]
    assert before + lifetime <= session_expiry(first) <= datetime.now(UTC) + lifetime
    claims = jwt.get_unverified_claims(tokens["access_token"])
    assert before.replace(microsecond=0).timestamp() <= claims["iat"] <= datetime.now(UTC).timestamp()
    # A session an hour from its end is not taken for an expired one when its user logs in again.
    with engine.begin() as connection:
        connection.execute(
            AuthSession.__table__.update()
            .where(AuthSession.id == first.split(".")[0])
            .values(expires_at=datetime.now(UTC) + timedelta(hours=1))
        )
    login(client, username)
    assert client.post("/v1/auth/refresh", json={"refresh_token": first}).status_code == 200


def test_token_ids_session_ids_secrets_and_api_keys_carry_the_random_bits_promised(
    client: TestClient, alice: Account
) -> None:
    def random_bits(text: str) -> int:
        return 8 * len(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))

    tokens = login(client, alice.username)
    session_id, secret = tokens["refresh_token"].split(".")
    jti = jwt.get_unverified_claims(tokens["access_token"])["jti"]
    key = client.post("/v1/auth/keys", json={"name": "bits", "scopes": ["read"]}, headers=alice.headers).json()["key"]
    assert key.startswith(KEY_PREFIX)
    found = [random_bits(part) for part in (jti, session_id, secret, key.removeprefix(KEY_PREFIX))]
    assert found == [96, 128, 256, 256]


def test_after_logout_the_access_token_in_hand_works_until_it_expires(client: TestClient, alice: Account) -> None:
    tokens = login(client, alice.username)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.post("/v1/auth/logout", headers=headers).status_code == 200
    assert client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert client.get("/v1/auth/me", headers=headers).status_code == 200
    assert client.post("/v1/chats/", json={"title": "after logout"}, headers=headers).status_code == 201


def test_usernames_are_case_sensitive(client: TestClient) -> None:
    lower = unique_name("case")
    upper = lower.upper()
    for index, username in enumerate((lower, upper)):
        body = {"email": f"{lower}-{index}@example.com", "username": username, "password": PASSWORD}
        response = client.post("/v1/auth/register", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["username"] == username
    me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {login(client, upper)['access_token']}"})
    assert me.json()["username"] == upper
    wrong_case = client.post("/v1/auth/token", data={"username": lower.capitalize(), "password": PASSWORD})
    assert wrong_case.status_code == 401
