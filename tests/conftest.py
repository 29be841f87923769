"""The suite runs against a real database through the real app: a fresh SQLite file per
run, or, with TEST_DATABASE_URL set to a PostgreSQL server, a fresh database on it."""

import atexit
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import create_engine, make_url, text

from config import Settings
from main import create_app

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = Path(tempfile.mkdtemp(prefix="chat-tests-"))


def _fresh_postgres_database(server_url: str) -> str:
    url = make_url(server_url)
    name = f"chat_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


SERVER_URL = os.environ.get("TEST_DATABASE_URL")
DATABASE_URL = _fresh_postgres_database(SERVER_URL) if SERVER_URL else f"sqlite:///{WORK_DIR / 'test.db'}"
# The app as deployed for one browser front end on another origin (see test_web.py).
FRONT_END_ORIGIN = "http://front.example:3000"
# The suite registers and logs in hundreds of users from one address; the limits
# themselves are tested with low ones in test_rate_limits.py.
UNLIMITED = "100000/minute"
SETTINGS = Settings(
    _env_file=None,
    database_url=DATABASE_URL,
    secret_key=secrets.token_urlsafe(48),
    cors_origins=[FRONT_END_ORIGIN],
    rate_limit_login=UNLIMITED,
    rate_limit_register=UNLIMITED,
    rate_limit_refresh=UNLIMITED,
    rate_limit_password=UNLIMITED,
    redis_url="",
)
app = create_app(SETTINGS)
ENGINE = app.state.database.engine

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session", autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    ENGINE.dispose()


# The database lives as long as the process that made it, not one pytest session: a runner
# that runs several sessions in one process (the mutation tests) finds it in each, and the
# processes it forks to run them leave it to their parent.
CREATOR = os.getpid()


@atexit.register
def _remove_the_database() -> None:
    if os.getpid() != CREATOR:
        return
    ENGINE.dispose()
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    if SERVER_URL:
        name = make_url(DATABASE_URL).database
        admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the suite's engine, for a server to migrate itself."""
    if not SERVER_URL:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = _fresh_postgres_database(SERVER_URL)
    yield url
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def client() -> Iterator[TestClient]:
    with TestClient(app) as client:  # runs the lifespan: migrations to head
        yield client


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
