"""Rate limits on login, register, refresh and password change, per address and per
username: real servers with low limits, counting in memory and, with two workers, in Redis."""

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from conftest import DATABASE_URL, PASSWORD, SETTINGS, WORK_DIR, Account, unique_name
from server import PYTHON, free_port, running, server_env
from service import ratelimit
from service.ratelimit import MemoryCounter

REDIS_URL = "redis://127.0.0.1:6379/0"
LOW = {f"RATE_LIMIT_{name}": "3/minute" for name in ("LOGIN", "REGISTER", "REFRESH", "PASSWORD")}


@contextmanager
def server(workers: int = 1, **env: str) -> Iterator[str]:
    """The app with low limits, on the suite's (already migrated) database."""
    port = free_port()
    environment = server_env(
        DATABASE_URL=DATABASE_URL, SECRET_KEY=SETTINGS.secret_key, MIGRATE_ON_START="false", **LOW, **env
    )
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--no-access-log", "--workers", str(workers)]
    with running(command, environment, WORK_DIR, port) as base_url:
        yield base_url


def from_address(base_url: str, address: str) -> httpx.Client:
    """A client whose requests come from `address` (any of 127.0.0.0/8 reaches the server)."""
    return httpx.Client(base_url=base_url, transport=httpx.HTTPTransport(local_address=address), timeout=30)


def login(http: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return http.post("/v1/auth/token", data={"username": username, "password": password})


def assert_throttled(response: httpx.Response, window: int = 60) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= window
    assert response.json()["detail"].startswith("Too many")


@pytest.fixture
def memory_server(client) -> Iterator[str]:  # client: the suite's database is migrated
    with server() as base_url:
        yield base_url


def test_login_is_limited_per_username_from_any_address(memory_server: str, alice: Account) -> None:
    with from_address(memory_server, "127.0.0.2") as first, from_address(memory_server, "127.0.0.3") as second:
        assert [login(first, alice.username, "wrong password").status_code for _ in range(3)] == [401] * 3
        # From another address, and even with the right password: this username is throttled.
        assert_throttled(login(second, alice.username))
        # Other usernames from that other address are not.
        assert login(second, unique_name(), "wrong password").status_code == 401


def test_login_is_limited_per_address_whatever_the_username(memory_server: str, alice: Account) -> None:
    with from_address(memory_server, "127.0.0.4") as attacker, from_address(memory_server, "127.0.0.5") as user:
        assert [login(attacker, unique_name(), "guess guess").status_code for _ in range(3)] == [401] * 3
        assert_throttled(login(attacker, alice.username))
        assert login(user, alice.username).status_code == 200


def test_register_is_limited_per_address(memory_server: str) -> None:
    def register(http: httpx.Client) -> httpx.Response:
        username = unique_name()
        body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
        return http.post("/v1/auth/register", json=body)

    with from_address(memory_server, "127.0.0.6") as http:
        assert [register(http).status_code for _ in range(3)] == [201] * 3
        assert_throttled(register(http))


def test_refresh_is_limited(memory_server: str, alice: Account) -> None:
    with from_address(memory_server, "127.0.0.7") as http:
        assert [http.post("/v1/auth/refresh", json={"refresh_token": "no.such"}).status_code for _ in range(3)] == [
            401
        ] * 3
        assert_throttled(http.post("/v1/auth/refresh", json={"refresh_token": "no.such"}))
    with from_address(memory_server, "127.0.0.8") as http:
        # Per user: three refreshes of alice's sessions from elsewhere use up hers.
        tokens = [login(http, alice.username).json() for _ in range(2)]
    refresh_tokens = [t["refresh_token"] for t in tokens]
    for index, address in enumerate(["127.0.0.9", "127.0.0.10", "127.0.0.11"]):
        with from_address(memory_server, address) as http:
            response = http.post("/v1/auth/refresh", json={"refresh_token": refresh_tokens[0]})
            assert response.status_code == 200, index
            refresh_tokens[0] = response.json()["refresh_token"]
    with from_address(memory_server, "127.0.0.12") as http:
        assert_throttled(http.post("/v1/auth/refresh", json={"refresh_token": refresh_tokens[1]}))


def test_password_checks_are_limited_and_a_throttled_attempt_changes_nothing(
    memory_server: str, alice: Account
) -> None:
    with from_address(memory_server, "127.0.0.13") as http:
        headers = alice.headers
        change = {"current_password": "a wrong guess", "new_password": "new passphrase!"}
        assert [http.post("/v1/auth/password", json=change, headers=headers).status_code for _ in range(3)] == [400] * 3
        right = {"current_password": PASSWORD, "new_password": "new passphrase!"}
        assert_throttled(http.post("/v1/auth/password", json=right, headers=headers))
        deletion = http.request("DELETE", "/v1/auth/me", json={"password": PASSWORD}, headers=headers)
        assert_throttled(deletion)
        assert http.get("/v1/auth/me", headers=headers).status_code == 200
    with from_address(memory_server, "127.0.0.15") as http:  # counted per username too
        assert_throttled(http.post("/v1/auth/password", json=right, headers=headers))
    with from_address(memory_server, "127.0.0.14") as http:
        assert login(http, alice.username).status_code == 200


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this run's own, removed afterwards."""
    prefix = f"chat-api-test:{uuid.uuid4().hex}"
    yield prefix
    connection = redis.Redis.from_url(REDIS_URL)
    keys = list(connection.scan_iter(f"{prefix}:*"))
    if keys:
        connection.delete(*keys)
    connection.close()


def test_limits_are_shared_by_two_workers_through_redis(
    client, redis_prefix: str, make_account: Callable[[], Account]
) -> None:
    account = make_account()
    with server(workers=2, REDIS_URL=REDIS_URL, RATE_LIMIT_PREFIX=redis_prefix) as base_url:
        statuses = []
        for attempt in range(12):
            # A new connection each time: the two workers take turns accepting them.
            with from_address(base_url, f"127.0.1.{attempt + 1}") as http:
                response = login(http, account.username, "wrong password")
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert_throttled(response)
        # Counted in each worker's memory, up to 3 per worker would get through.
        assert statuses == [401] * 3 + [429] * 9
    counter = redis.Redis.from_url(REDIS_URL)
    key = f"{redis_prefix}:login:username:{account.username}"
    assert int(counter.get(key)) == 12
    assert 0 < counter.ttl(key) <= 60
    counter.close()


def test_an_unreachable_redis_falls_back_to_limits_in_memory(client, alice: Account) -> None:
    with server(REDIS_URL="redis://127.0.0.1:1/0") as base_url, from_address(base_url, "127.0.0.15") as http:
        assert [login(http, alice.username, "wrong password").status_code for _ in range(3)] == [401] * 3
        assert_throttled(login(http, alice.username))
        log = (WORK_DIR / f"server-{base_url.rpartition(':')[2]}.log").read_text()
    warning = "Rate limiting in memory, Redis is unavailable: Error 111 connecting to 127.0.0.1:1. Connection refused."
    assert warning in log.splitlines(), log[-2000:]


def test_expired_windows_are_swept_when_a_new_one_starts_with_sweep_at_keys_held() -> None:
    counter = MemoryCounter()
    counter.SWEEP_AT = 3
    counter.windows = {"a": (0.0, 1), "b": (0.0, 1)}  # windows long over
    counter.hit("c", 60)  # two keys held: nothing swept
    assert list(counter.windows) == ["a", "b", "c"]
    counter.hit("d", 60)  # three held: the windows that are over go
    assert list(counter.windows) == ["c", "d"]
    assert counter.hit("c", 60)[0] == 2


def test_a_request_with_no_client_address_is_limited_as_the_address_unknown(client, alice: Account) -> None:
    """As over a UNIX socket, where the server knows no peer address."""
    nowhere = TestClient(client.app, client=None)
    response = nowhere.post("/v1/auth/token", data={"username": alice.username, "password": "wrong"})
    assert response.status_code == 401
    windows = client.app.state.limiter.memory.windows
    assert f"{SETTINGS.rate_limit_prefix}:login:address:unknown" in windows


def test_retry_after_is_the_seconds_left_rounded_up(client, alice: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=lambda: 1000.0))
    limiter = client.app.state.limiter
    stranger = TestClient(client.app, client=("203.0.113.7", 50000))
    key = f"{SETTINGS.rate_limit_prefix}:login:username:{alice.username}"
    for ends, retry_after in ((1000.2, "1"), (1001.0, "1"), (1001.1, "2")):
        limiter.memory.windows[key] = (ends, limiter.login.count)  # the window full, ending then
        response = stranger.post("/v1/auth/token", data={"username": alice.username, "password": "wrong"})
        assert (response.status_code, response.headers["retry-after"]) == (429, retry_after)
