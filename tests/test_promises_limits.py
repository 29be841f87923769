"""README promises about password hashing and rate limits that only a real server process
shows: its own settings, its memory, its log."""

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from conftest import DATABASE_URL, PASSWORD, SETTINGS, WORK_DIR, Account, unique_name
from conftest import ENGINE as engine
from models import User
from server import PYTHON, free_port, running, server_env, serving_pid

pytestmark = pytest.mark.usefixtures("client")  # the suite's database is migrated

HIGH = {f"RATE_LIMIT_{name}": "100000/minute" for name in ("LOGIN", "REGISTER", "REFRESH", "PASSWORD")}


@contextmanager
def server(**env: str) -> Iterator[str]:
    """One uvicorn process on the suite's database, with the settings given."""
    port = free_port()
    environment = server_env(
        DATABASE_URL=DATABASE_URL, SECRET_KEY=SETTINGS.secret_key, MIGRATE_ON_START="false", **{**HIGH, **env}
    )
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--no-access-log"]
    with running(command, environment, WORK_DIR, port) as base_url:
        yield base_url


def log_of(base_url: str) -> str:
    return (WORK_DIR / f"server-{base_url.rsplit(':', 1)[1]}.log").read_text()


def from_address(base_url: str, address: str) -> httpx.Client:
    """A client whose requests come from `address` (any of 127.0.0.0/8 reaches the server)."""
    return httpx.Client(base_url=base_url, transport=httpx.HTTPTransport(local_address=address), timeout=30)


def login(http: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return http.post("/v1/auth/token", data={"username": username, "password": password})


def register(http: httpx.Client, username: str) -> httpx.Response:
    body = {"email": f"{unique_name()}@example.com", "username": username, "password": PASSWORD}
    return http.post("/v1/auth/register", json=body)


def stored_hash(username: str) -> str:
    with engine.connect() as connection:
        return connection.scalar(select(User.hashed_password).where(User.username == username))


class PeakMemory:
    """The server's peak resident memory (VmHWM), reset before each request: a password
    hash shows as ARGON2_MEMORY_KIB more, a request that hashes nothing as next to none."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def _peak_kib(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))

    def growth_kib(self, request: httpx.Client, username: str, password: str) -> tuple[int, int]:
        """(status code, KiB the peak grew by while the server answered one login)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # peak := current
        before = self._peak_kib()
        response = login(request, username, password)
        return response.status_code, self._peak_kib() - before


ARGON2_KIB = 131_072  # large enough to stand out from anything else a login allocates


def test_a_login_hashes_for_a_wrong_password_and_an_unknown_user_alike_and_never_when_malformed_or_throttled() -> None:
    user, other = unique_name(), unique_name()
    with server(ARGON2_MEMORY_KIB=str(ARGON2_KIB), RATE_LIMIT_LOGIN="3/minute") as base_url:
        with from_address(base_url, "127.0.3.1") as http:
            assert register(http, user).status_code == 201
            assert register(http, other).status_code == 201
            memory = PeakMemory(serving_pid(int(base_url.rsplit(":", 1)[1]), http.get("/v1")))
            # Could not be a valid password: the same 401, without the hasher.
            for _ in range(3):
                status, growth = memory.growth_kib(http, user, "short")
                assert status == 401 and growth < ARGON2_KIB // 4
        with from_address(base_url, "127.0.3.2") as http:
            # Over the limit for this username: 429 before any hash, even with the right password.
            status, growth = memory.growth_kib(http, user, PASSWORD)
            assert status == 429 and growth < ARGON2_KIB // 4
            status, wrong_password = memory.growth_kib(http, other, "a wrong password")
            assert status == 401 and wrong_password >= ARGON2_KIB * 3 // 4
        with from_address(base_url, "127.0.3.3") as http:
            status, unknown_user = memory.growth_kib(http, unique_name("nobody"), "a wrong password")
            assert status == 401 and unknown_user >= ARGON2_KIB * 3 // 4
        # The dummy hash costs what a real one does.
        assert abs(unknown_user - wrong_password) < ARGON2_KIB // 8


def test_a_hash_with_other_argon2_parameters_is_upgraded_at_the_next_login(alice: Account) -> None:
    assert stored_hash(alice.username).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    argon2 = {"ARGON2_MEMORY_KIB": "8192", "ARGON2_TIME_COST": "3", "ARGON2_PARALLELISM": "2"}
    with server(**argon2) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        assert login(http, alice.username, "a wrong password").status_code == 401
        assert stored_hash(alice.username).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert login(http, alice.username).status_code == 200
        upgraded = stored_hash(alice.username)
        assert upgraded.startswith("$argon2id$v=19$m=8192,t=3,p=2$")
        assert login(http, alice.username).status_code == 200
        assert stored_hash(alice.username) == upgraded  # already current: not hashed again


def test_register_is_limited_per_username_from_any_address() -> None:
    username = unique_name()
    with server(RATE_LIMIT_REGISTER="3/minute") as base_url:
        statuses = []
        for index in range(4):
            with from_address(base_url, f"127.0.4.{index + 1}") as http:
                statuses.append(register(http, username).status_code)
        assert statuses == [201, 409, 409, 429]
        with from_address(base_url, "127.0.4.4") as http:
            assert register(http, unique_name()).status_code == 201


def retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    return int(response.headers["retry-after"])


def test_limits_are_counted_per_second_hour_or_day(alice: Account) -> None:
    limits = {"RATE_LIMIT_LOGIN": "2/second", "RATE_LIMIT_REGISTER": "2/hour", "RATE_LIMIT_REFRESH": "2/day"}
    with server(**limits) as base_url, from_address(base_url, "127.0.5.1") as http:
        assert [register(http, unique_name()).status_code for _ in range(2)] == [201, 201]
        assert 60 < retry_after(register(http, unique_name())) <= 3600

        refresh = {"refresh_token": "no.such"}
        assert [http.post("/v1/auth/refresh", json=refresh).status_code for _ in range(2)] == [401, 401]
        assert 3600 < retry_after(http.post("/v1/auth/refresh", json=refresh)) <= 86400

        # A window starts at its first attempt: two in it, then 429 until the second is over.
        user = unique_name()
        answers = [login(http, user, "a wrong password") for _ in range(3)]
        assert [r.status_code for r in answers] == [401, 401, 429]
        assert retry_after(answers[2]) == 1
        deadline = time.monotonic() + 5
        while (status := login(http, user, "a wrong password").status_code) == 429 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 401


def test_an_unreachable_redis_is_logged_as_a_warning_and_limits_are_counted_in_memory(alice: Account) -> None:
    closed = free_port()  # nothing listens there
    with server(REDIS_URL=f"redis://127.0.0.1:{closed}/0", RATE_LIMIT_LOGIN="3/minute") as base_url:
        with from_address(base_url, "127.0.6.1") as http:
            assert [login(http, alice.username, "a wrong password").status_code for _ in range(3)] == [401] * 3
            assert retry_after(login(http, alice.username)) <= 60
        assert "Rate limiting in memory, Redis is unavailable" in log_of(base_url)


def test_each_kind_of_attempt_has_its_own_count_and_says_which_is_over(alice: Account) -> None:
    limits = {"RATE_LIMIT_LOGIN": "3/minute", "RATE_LIMIT_REGISTER": "3/minute"}
    with server(**limits) as base_url, from_address(base_url, "127.0.7.1") as http:
        assert [login(http, alice.username, "a wrong password").status_code for _ in range(3)] == [401] * 3
        throttled = login(http, alice.username)
        assert re.fullmatch(r"Too many login attempts; try again in [0-9]+ seconds", throttled.json()["detail"])
        assert int(throttled.headers["retry-after"]) <= 60
        # Logins used up, registering from the same address is not.
        assert [register(http, unique_name()).status_code for _ in range(3)] == [201] * 3
        over = register(http, unique_name())
        assert over.status_code == 429
        assert over.json()["detail"].startswith("Too many register attempts; try again in ")
