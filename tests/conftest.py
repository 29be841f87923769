"""The suite runs against a real database through the real app: a fresh SQLite file per
run, or, with TEST_DATABASE_URL set to a PostgreSQL server, a fresh database on it."""

import fcntl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from main import create_app
from suite import (
    DATABASE_URL,
    ENGINE,
    FRONT_END_ORIGIN,
    SERVER_URL,
    SETTINGS,
    WORK_DIR,
    app,
    drop_postgres_database,
    fresh_postgres_database,
)

# What the test modules take from here; the stateful part is made once per process in suite.py.
__all__ = ["DATABASE_URL", "ENGINE", "FRONT_END_ORIGIN", "SERVER_URL", "SETTINGS", "WORK_DIR", "app"]

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session", autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    app.state.database.engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _migrated() -> None:
    """Every session brings the suite's database to head before its first test, whichever
    tests it runs: a server that a test starts with MIGRATE_ON_START=false finds its tables
    even when no test before it has opened `client` (a mutant's session runs only that
    mutant's tests)."""
    app.state.database.migrate()


@pytest.fixture(autouse=True)
def _database_lock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Several processes may test on the suite's database at once (mutmut runs two mutants'
    sessions side by side): a test that counts every row (`@pytest.mark.whole_database`) has
    it to itself, the others share it. A waiting whole-database test holds the turnstile, so
    the sharers' next tests wait behind it instead of overtaking it."""
    exclusive = request.node.get_closest_marker("whole_database") is not None
    with open(WORK_DIR / "turnstile.lock", "a") as turnstile, open(WORK_DIR / "database.lock", "a") as database:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(database, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        yield


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the suite's engine, for a server to migrate itself."""
    if not SERVER_URL:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = fresh_postgres_database(SERVER_URL)
    yield url
    drop_postgres_database(SERVER_URL, url)


@pytest.fixture
def far_time_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time 13 h 45 min ahead of UTC while the test runs."""
    monkeypatch.setenv("TZ", "Pacific/Chatham")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    with TestClient(app) as client:  # runs the lifespan: migrations to head
        yield client


@pytest.fixture
def built() -> Iterator[TestClient]:
    """An app built in the test itself, with the suite's settings, on its database. What
    create_app assembles once (pages, policies, middleware) is built here under a mutant too:
    the suite's app (`client`) is built before mutmut switches one on. One app per test:
    mutmut links a shared fixture's calls to the first test that used it only."""
    with TestClient(create_app(SETTINGS)) as built:
        yield built


@dataclass
class Account:
    id: int
    username: str
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


# What a browser front end sends with its requests, and asks a preflight about.
BROWSER_HEADERS = "authorization,content-type,idempotency-key"


def preflight(client: TestClient, path: str, method: str = "POST", origin: str = FRONT_END_ORIGIN) -> Response:
    """The answer to the CORS preflight a browser sends before `method path` from `origin`."""
    asked = {"Access-Control-Request-Method": method, "Access-Control-Request-Headers": BROWSER_HEADERS}
    return client.options(path, headers={"Origin": origin, **asked})


def logins_from_forged_addresses(http: httpx.Client) -> list[int]:
    """Three failed logins, each naming another user and claiming another address in
    X-Forwarded-For: their statuses (with a login limit of 2, the third is 429 unless each
    address is believed)."""
    return [
        http.post(
            "/v1/auth/token",
            data={"username": f"nobody{i}", "password": "wrong password"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        ).status_code
        for i in range(3)
    ]


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_account(client: TestClient) -> Callable[[], Account]:
    def make() -> Account:
        username = unique_name()
        email = f"{username}@example.com"
        registered = client.post("/v1/auth/register", json={"email": email, "username": username, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        token = client.post("/v1/auth/token", data={"username": username, "password": PASSWORD})
        assert token.status_code == 200, token.text
        return Account(registered.json()["id"], username, email, PASSWORD, token.json()["access_token"])

    return make


@pytest.fixture
def alice(make_account: Callable[[], Account]) -> Account:
    return make_account()


@pytest.fixture
def bob(make_account: Callable[[], Account]) -> Account:
    return make_account()


@pytest.fixture
def chat_id(client: TestClient, alice: Account) -> int:
    response = client.post("/v1/chats/", json={"title": "Alice's chat"}, headers=alice.headers)
    assert response.status_code == 201
    return response.json()["id"]
