"""The benchmark: starts the service on a fresh database, seeds it, drives each scenario
with wrk and prints a markdown table (also written to bench/results/).

    python bench/run.py                                    # SQLite, one worker
    python bench/run.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test --workers 2
    python bench/run.py --only 8                           # search: seeds 1,000,000 messages first
    python bench/run.py --only 1,2 --reference             # append and read-50 beside bench/reference.py
    python bench/run.py --only 9                           # login: an unknown user's cost ÷ a wrong password's

A PostgreSQL URL names the server: the bench creates its own database there and drops it after.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from argon2 import PasswordHasher, Type
from sqlalchemy import create_engine, insert, make_url, text, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import search_corpus  # noqa: E402

from config import Settings  # noqa: E402
from models import Change, Chat, ChatMetadata, Message, User  # noqa: E402

settings = Settings()

BENCH = Path(__file__).resolve().parent
PASSWORD = "correct horse battery"
CORES = os.cpu_count() or 1
# The service's and the reference's: both check the tokens the seed logs in for.
SECRET_KEY = uuid.uuid4().hex * 2


@dataclass
class Scenario:
    name: str
    method: str
    path: str  # formatted with the seeded ids (Seed.ids)
    body: str | None = None  # formatted body, from Seed.bodies
    user: str | None = "writer"  # whose token it sends; None: no token
    content_type: str = "application/json"
    connections: int = 32
    items: int = 1  # rows a request reads or writes, to compare costs per row
    baseline: str | None = None  # the small-data scenario this one must stay within 1.25x of
    min_rps: float | None = None
    max_p99_ms: float | None = None
    hash_bound: bool = False  # login: compared with cores / one hash's time
    seconds: float | None = None  # at least this long, whatever --duration says
    paths: str | None = None  # instead of path: each request the next of Seed.paths[paths]


CEILING = "ceiling: GET /v1"
# The deep pages: message 99,900 of a chat of 100,000 by id; depth 9,950 of a 10,000-message path.
DEEP_PAGE = "/v1/chats/{chat_100k}/messages?after={deep_after}&limit=50"
DEEP_PATH_PAGE = "/v1/chats/{tree}/path?before={tree_9950}&limit=50"
SCENARIOS = [
    Scenario(CEILING, "GET", "/v1", user=None),
    Scenario("1 append a message", "POST", "/v1/chats/{append}/message", "append", min_rps=1000, max_p99_ms=50),
    # Appends to one chat queue for its lock (it keeps id order and time order the same);
    # users appending to their own chats do not wait for each other.
    Scenario("1 append, to 32 chats in turn", "POST", "", "append", paths="append"),
    Scenario("1 append, 32 owners' chats in turn", "POST", "", "append", user=None, paths="owners"),
    Scenario("2 read a chat of 50 messages", "GET", "/v1/chats/{chat_50}", items=50, min_rps=1000, max_p99_ms=50),
    Scenario("3 first 20 of 10,000 chats", "GET", "/v1/chats/?limit=20", user="owner_10k"),
    Scenario("4 first 20 of 100,000 chats", "GET", "/v1/chats/?limit=20", user="owner_100k", baseline="3"),
    Scenario(
        "4 read a chat of 100,000 messages",
        "GET",
        "/v1/chats/{chat_100k}",
        connections=1,  # a read takes seconds: more would only queue
        seconds=10,
        items=100_000,
        baseline="2",
    ),
    Scenario("6 page of 50, chat of 50", "GET", "/v1/chats/{chat_50}/messages?limit=50", items=50),
    Scenario("6 page of 50 at message 99,900 of 100,000", "GET", DEEP_PAGE, items=50, baseline="6"),
    Scenario("7 bulk upload of 1,000 messages", "POST", "/v1/chats/{bulk}/messages", "bulk", items=1000),
    # A path of 10,000 messages with 100 side branches, read from its leaf backwards: the
    # page 50 messages back, and the page next to the root.
    Scenario("10 path page of 50 at depth 50", "GET", "/v1/chats/{tree}/path?before={tree_50}&limit=50", items=50),
    Scenario("10 path page of 50 at depth 9,950 of 10,000", "GET", DEEP_PATH_PAGE, items=50, baseline="10"),
    # Six queries in turn (bench/search_corpus.py), by one user of 100,000 messages among
    # 1,000,000: with 32 clients, and with one, the latency of a search on a server not saturated.
    Scenario("8 search 100,000 of 1,000,000 messages", "GET", "", user="searcher", max_p99_ms=100, paths="search"),
    Scenario("8 search, one client", "GET", "", user="searcher", connections=1, max_p99_ms=100, paths="search"),
    # Sync: a page of 500 changes from the middle of a log of 1,000, and of 1,000,000.
    Scenario(
        "11 changes: page of 500 of 1,000",
        "GET",
        "/v1/chats/changes?since={sync_1k}&limit=500",
        user="sync_1k",
        items=500,
    ),
    Scenario(
        "11 changes: page of 500 of 1,000,000",
        "GET",
        "/v1/chats/changes?since={sync_1m}&limit=500",
        user="sync_1m",
        items=500,
        baseline="11",
    ),
    # The chat list filtered by metadata: one chat in ten has project=travel.
    Scenario(
        "12 first 20 of 10,000 chats, metadata.project=travel",
        "GET",
        "/v1/chats/?limit=20&metadata.project=travel",
        user="owner_10k",
    ),
    Scenario(
        "12 first 20 of 100,000 chats, metadata.project=travel",
        "GET",
        "/v1/chats/?limit=20&metadata.project=travel",
        user="owner_100k",
        baseline="12",
    ),
    Scenario(
        "5 login",
        "POST",
        "/v1/auth/token",
        "login",
        user=None,
        content_type="application/x-www-form-urlencoded",
        hash_bound=True,
    ),
]


@dataclass
class Row:
    scenario: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    of_ceiling: float
    cost_vs_small: float | None
    peak_rss_mb: float
    target: str


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: a fresh SQLite file)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per scenario")
    parser.add_argument("--only", help="comma-separated scenario numbers to run (the ceiling always runs)")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also drive bench/reference.py (FastAPI and sqlite3, nothing else) with the append and read-50 "
        "scenarios, on the same database and event loop (SQLite, one worker)",
    )
    args = parser.parse_args()
    if args.reference and (args.database_url or args.workers != 1):
        sys.exit("--reference compares with SQLite on one worker, the asyncio loop of `python main.py`")
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")
    load_before = os.getloadavg()[0]

    with (
        database(args.database_url) as url,
        running_server(url, args.workers) as (base_url, server),
        reference_server(url if args.reference else None) as reference,
    ):
        engine_name = make_url(url).get_backend_name()
        print(f"# {engine_name}, {args.workers} worker(s), {args.duration:g} s per scenario, seeding...", flush=True)
        chosen = set(args.only.split(",")) if args.only else None
        seed = Seed(base_url, url, search=chosen is None or "8" in chosen)
        hash_seconds = one_hash_seconds()
        hash_limit = CORES / hash_seconds
        rows: list[Row] = []
        for scenario in SCENARIOS:
            if chosen is not None and scenario.name != CEILING and scenario.name.split()[0] not in chosen:
                continue
            # The machine's load drifts: each scenario is compared with a ceiling measured just before it.
            ceiling = requests_per_s(run_wrk(base_url, SCENARIOS[0], seed, 2, server)) if rows else None
            if scenario.hash_bound:
                hash_seconds = one_hash_seconds()
                hash_limit = CORES / hash_seconds
            result = run_wrk(base_url, scenario, seed, args.duration, server)
            rows.append(summarise(scenario, result, rows, ceiling, peak_rss_mb(server), hash_limit))
            print(f"  {rows[-1].scenario}: {rows[-1].requests_per_s:,.0f} req/s", file=sys.stderr, flush=True)
            if reference is not None and scenario.name in REFERENCE_SCENARIOS:
                rows.append(compared_with_reference(scenario, rows[-1], reference, seed, args.duration, ceiling))
                print(f"  {rows[-1].scenario}: {rows[-1].requests_per_s:,.0f} req/s", file=sys.stderr, flush=True)
        login_costs = login_cost_ms(base_url) if chosen is None or "9" in chosen else None
        peaks = {pid: peak_rss_mb_of(pid) for pid in workers(server)}

    when = datetime.now(UTC)
    header = (
        f"{when:%Y-%m-%d %H:%M} UTC · {engine_name} · {args.workers} worker(s) · wrk, {args.duration:g} s per "
        f"scenario · {CORES} cores · load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    footer = [
        f"Login's hash-bound limit: {CORES} cores ÷ {hash_seconds * 1000:.1f} ms per argon2id hash "
        f"(m={settings.argon2_memory_kib} KiB, t={settings.argon2_time_cost}, p={settings.argon2_parallelism}) "
        f"= {hash_limit:,.0f} logins/s.",
        "Peak RSS per worker after all scenarios (VmHWM): "
        + ", ".join(f"{mb:.0f} MB" for mb in peaks.values())
        + f" (target ≤ 150 MB: {'met' if max(peaks.values()) <= 150 else 'NOT met'}).",
    ]
    if login_costs:
        unknown_ms, wrong_ms = login_costs
        footer.append(
            f"9 login, unknown user vs wrong password (one client, {LOGIN_ROUNDS} of each in turn, medians): "
            f"{unknown_ms:.1f} ms ÷ {wrong_ms:.1f} ms = {unknown_ms / wrong_ms:.2f} (target: equal cost, 1.00)."
        )
    if engine_name == "sqlite":
        commit_ms = sqlite_commit_seconds(settings.sqlite_synchronous) * 1000
        footer.append(
            f"SQLite synchronous={settings.sqlite_synchronous}: one committed append costs {commit_ms:.2f} ms of "
            f"disk sync here, at most {1000 / commit_ms:,.0f} commits/s (writes are serial)."
        )
    table = markdown(header, rows, footer)
    print(table)
    save(when, engine_name, args.workers, table, rows, peaks, hash_seconds, login_costs)


@contextmanager
def database(server_url: str | None) -> Iterator[str]:
    """A fresh, empty database: a SQLite file in a temporary folder, or one created on the PostgreSQL server."""
    if server_url is None:
        folder = Path(tempfile.mkdtemp(prefix="chat-bench-"))
        try:
            yield f"sqlite:///{folder / 'bench.db'}"
        finally:
            shutil.rmtree(folder)
        return
    name = f"chat_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def running_server(database_url: str, worker_count: int) -> Iterator[tuple[str, int]]:
    """The service as deployed: `python main.py` for one worker, `uvicorn --workers N` for more;
    each migrates the fresh database at start-up."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "RELOAD": "false",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        # Login is measured against the hash, not against the limiter, which would answer
        # 429 after the first ten attempts of a minute (tests/test_rate_limits.py covers it);
        # the seed signs up thirteen users.
        "RATE_LIMIT_LOGIN": "1000000/minute",
        "RATE_LIMIT_REGISTER": "1000/minute",
        "REDIS_URL": "",
    }
    if worker_count == 1:
        command = [sys.executable, "main.py"]
    else:
        # The README's deploy command, with uvicorn's default loop (uvloop): with `--loop asyncio`,
        # the socket uvicorn binds for its workers leaves Nagle's algorithm on, and each
        # response's body waits ~40 ms for the client's delayed ACK of its headers.
        command = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--workers", str(worker_count)]
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    with open(results / "server.log", "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(base_url, process, worker_count)
            yield base_url, process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


REFERENCE_SCENARIOS = ("1 append a message", "2 read a chat of 50 messages")


@contextmanager
def reference_server(database_url: str | None) -> Iterator[tuple[str, int] | None]:
    """bench/reference.py on the service's (migrated, seeded) SQLite file, or nothing."""
    if database_url is None:
        yield None
        return
    port = free_port()
    env = {
        **os.environ,
        "REFERENCE_DATABASE": make_url(database_url).database,
        "SECRET_KEY": SECRET_KEY,
        "SQLITE_SYNCHRONOUS": settings.sqlite_synchronous,
        "PORT": str(port),
    }
    with open(BENCH / "results" / "reference.log", "wb") as log:
        process = subprocess.Popen([sys.executable, str(BENCH / "reference.py")], env=env, stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with suppress(httpx.TransportError):
                httpx.get(base_url, timeout=1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit("the reference did not start; see bench/results/reference.log")
            time.sleep(0.2)
        yield base_url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def compared_with_reference(
    scenario: Scenario, service: Row, reference: tuple[str, int], seed: "Seed", duration: float, ceiling: float | None
) -> Row:
    """The same scenario against the reference, just after the service ran it."""
    base_url, pid = reference
    result = run_wrk(base_url, scenario, seed, duration, pid)
    rps = requests_per_s(result)
    return Row(
        f"{scenario.name}: reference",
        rps,
        result["p50_us"] / 1000,
        result["p99_us"] / 1000,
        sum(result[kind] for kind in ("connect", "read", "write", "status", "timeout")),
        rps / (ceiling or rps),
        None,
        peak_rss_mb_of(pid),
        f"service at {service.requests_per_s / rps:.2f}× the reference",
    )


def wait_until_serving(base_url: str, process: subprocess.Popen, worker_count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("the server exited; see bench/results/server.log")
        with suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/v1", timeout=1).status_code == 200 and len(workers(process.pid)) >= worker_count:
                # Every worker is up once each has announced it.
                log = (BENCH / "results" / "server.log").read_text()
                if log.count("Application startup complete") >= worker_count:
                    return
        time.sleep(0.2)
    sys.exit("the server did not start within 60 s; see bench/results/server.log")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Seed:
    """Users and tokens through the API; chats and messages in bulk, straight into the tables."""

    def __init__(self, base_url: str, database_url: str, search: bool) -> None:
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        names = ["writer", "owner_10k", "owner_100k", "sync_1k", "sync_1m"]
        if search:
            names += ["searcher", *(f"other_{i}" for i in range(search_corpus.OTHER_USERS))]
        with httpx.Client(base_url=base_url, timeout=60) as client:
            user_ids = {name: self.sign_up(client, name) for name in names}
            headers = {"Authorization": f"Bearer {self.tokens['writer']}"}
            for chat in ("append", "chat_50", "chat_100k", "bulk", "tree"):
                self.ids[chat] = client.post("/v1/chats/", json={"title": chat}, headers=headers).json()["id"]
            chats = [client.post("/v1/chats/", json={"title": f"append {i}"}, headers=headers) for i in range(32)]
            self.add_tree(client, headers, self.ids["tree"])
            # Each a chat of its own owner, the owner's token after a tab (wrk.lua sends it).
            owners = []
            for i in range(32):
                self.sign_up(client, f"owner_{i}")
                token = self.tokens[f"owner_{i}"]
                chat = client.post("/v1/chats/", json={"title": "mine"}, headers={"Authorization": f"Bearer {token}"})
                owners.append(f"/v1/chats/{chat.json()['id']}/message\t{token}")
        self.paths = {"append": [f"/v1/chats/{chat.json()['id']}/message" for chat in chats], "owners": owners}
        if search:
            self.paths["search"] = search_corpus.paths()
        engine = create_engine(database_url)
        with engine.begin() as connection:
            self.add_messages(connection, user_ids["writer"], self.ids["chat_50"], 50)
            self.add_messages(connection, user_ids["writer"], self.ids["chat_100k"], 100_000)
            for owner, count in (("owner_10k", 10_000), ("owner_100k", 100_000)):
                self.add_metadata(connection, user_ids[owner], self.add_chats(connection, user_ids[owner], count))
            for owner, count in (("sync_1k", 1_000), ("sync_1m", 1_000_000)):
                self.add_changes(connection, user_ids[owner], count)
                self.ids[owner] = count // 2
            last = connection.execute(text("SELECT max(id) FROM messages")).scalar_one()
            # As migration 0007 makes today's chats: each message follows the one before.
            connection.execute(
                text(
                    "UPDATE messages SET parent_id = (SELECT max(earlier.id) FROM messages AS earlier "
                    "WHERE earlier.chat_id = messages.chat_id AND earlier.id < messages.id) "
                    "WHERE chat_id IN (:chat_50, :chat_100k)"
                ),
                self.ids,
            )
            connection.execute(
                text(
                    "UPDATE chats SET current_message_id = (SELECT max(id) FROM messages WHERE chat_id = chats.id) "
                    "WHERE id IN (:chat_50, :chat_100k)"
                ),
                self.ids,
            )
        if search:
            started = time.monotonic()
            with engine.begin() as connection:
                self.add_search_corpus(connection, user_ids)
            print(f"  (search corpus seeded in {time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        if engine.dialect.name == "postgresql":
            # What autovacuum does to tables grown by a million rows, some minutes later:
            # statistics for the planner, and the GIN index's pending list merged.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
        engine.dispose()
        self.ids["deep_after"] = last - 100
        self.bodies = {
            "append": json.dumps({"role": "user", "content": sentence(0)}),
            "bulk": json.dumps({"messages": [message(i) for i in range(1000)]}),
            "login": f"username=bench_writer&password={PASSWORD.replace(' ', '+')}",
        }

    def sign_up(self, client: httpx.Client, name: str) -> int:
        username = f"bench_{name}"
        body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
        registered = client.post("/v1/auth/register", json=body)
        registered.raise_for_status()
        token = client.post("/v1/auth/token", data={"username": username, "password": PASSWORD})
        self.tokens[name] = token.json()["access_token"]
        return registered.json()["id"]

    def add_tree(self, client: httpx.Client, headers: dict[str, str], chat_id: int) -> None:
        """A path of 10,000 messages through the API, with 100 side branches of 10 below it."""
        path: list[int] = []
        for first in range(0, 10_000, 1000):
            batch = {"messages": [message(i) for i in range(first, first + 1000)]}
            path += [m["id"] for m in client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=headers).json()]
        for branch in range(100):
            batch = {"parent_id": path[branch * 100 + 50], "messages": [message(i) for i in range(10)]}
            client.post(f"/v1/chats/{chat_id}/messages", json=batch, headers=headers).raise_for_status()
        client.patch(f"/v1/chats/{chat_id}", json={"current_message_id": path[-1]}, headers=headers).raise_for_status()
        self.ids["tree_50"], self.ids["tree_9950"] = path[-50], path[50]

    @staticmethod
    def add_messages(connection, owner_id: int, chat_id: int, count: int) -> None:
        start = datetime.now(UTC) - timedelta(days=1)
        for first in range(0, count, 10_000):
            rows = [
                {
                    **message(i),
                    "chat_id": chat_id,
                    "owner_id": owner_id,
                    "created_at": start + timedelta(milliseconds=i),
                }
                for i in range(first, min(first + 10_000, count))
            ]
            connection.execute(insert(Message), rows)

    @staticmethod
    def add_chats(connection, owner_id: int, count: int) -> list[int]:
        start = datetime.now(UTC) - timedelta(days=30)
        ids = []
        for first in range(0, count, 10_000):
            rows = [
                {
                    "owner_id": owner_id,
                    "title": f"Chat {i}",
                    "created_at": start + timedelta(seconds=i),
                    "updated_at": start + timedelta(seconds=i),
                }
                for i in range(first, min(first + 10_000, count))
            ]
            ids += connection.scalars(insert(Chat).returning(Chat.id, sort_by_parameter_order=True), rows).all()
        return ids

    @staticmethod
    def add_metadata(connection, owner_id: int, chat_ids: list[int]) -> None:
        """project=travel on one chat in ten, project=work on the others, as the API writes it."""
        for first in range(0, len(chat_ids), 10_000):
            rows = [
                {"chat_id": chat, "owner_id": owner_id, "key": "project", "value": "travel" if i % 10 == 0 else "work"}
                for i, chat in enumerate(chat_ids[first : first + 10_000], start=first)
            ]
            connection.execute(insert(ChatMetadata), rows)

    @staticmethod
    def add_changes(connection, owner_id: int, count: int) -> None:
        """A change log of `count` entries: a chat's messages created, one after another."""
        at = datetime.now(UTC)
        for first in range(0, count, 10_000):
            rows = [
                {
                    "owner_id": owner_id,
                    "seq": i,
                    "kind": "message",
                    "object_id": i,
                    "chat_id": 1,
                    "change": "created",
                    "at": at,
                }
                for i in range(first + 1, min(first + 10_000, count) + 1)
            ]
            connection.execute(insert(Change), rows)
        connection.execute(update(User).where(User.id == owner_id).values(change_seq=count))

    @classmethod
    def add_search_corpus(cls, connection, user_ids: dict[str, int]) -> None:
        """search_corpus's messages in the chats of the searcher and the others, the
        database's own triggers indexing each as the service's inserts do."""
        chats = {
            name: cls.add_chats(connection, user_id, search_corpus.CHATS_PER_USER)
            for name, user_id in user_ids.items()
            if name == "searcher" or name.startswith("other_")
        }
        # (chat, owner) pairs
        searchers = [(chat, user_ids["searcher"]) for chat in chats["searcher"]]
        others = [(chat, user_ids[name]) for name, ids in chats.items() if name != "searcher" for chat in ids]
        start = datetime.now(UTC) - timedelta(days=7)
        rows = []
        for i, (mine, content) in enumerate(search_corpus.contents()):
            chat_id, owner_id = searchers[i % len(searchers)] if mine else others[i % len(others)]
            role = ("user", "assistant")[i // search_corpus.SEARCHER_SHARE % 2]
            created_at = start + timedelta(milliseconds=i)
            rows.append(
                {"chat_id": chat_id, "owner_id": owner_id, "role": role, "content": content, "created_at": created_at}
            )
            if len(rows) == 10_000:
                connection.execute(insert(Message), rows)
                rows = []
        if rows:
            connection.execute(insert(Message), rows)


def sentence(i: int) -> str:
    return f"Message {i}: how do I keep a long conversation with a language model fast to read back?"


def message(i: int) -> dict[str, str]:
    return {"role": ("user", "assistant")[i % 2], "content": sentence(i)}


LOGIN_ROUNDS = 50


def login_cost_ms(base_url: str) -> tuple[float, float]:
    """Median milliseconds of a failed login for an unknown username and for a known one
    with a wrong password, taken in turn on one connection so that both see the same load."""
    unknown, wrong = [], []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for round_ in range(LOGIN_ROUNDS + 5):  # the first five warm up
            for username, times in ((f"bench_nobody_{round_}", unknown), ("bench_writer", wrong)):
                started = time.perf_counter()
                response = client.post("/v1/auth/token", data={"username": username, "password": "not the password"})
                elapsed = time.perf_counter() - started
                assert response.status_code == 401, response.text
                if round_ >= 5:
                    times.append(elapsed * 1000)
    return statistics.median(unknown), statistics.median(wrong)


def sqlite_commit_seconds(synchronous: str) -> float:
    """One small committed insert in WAL mode with the service's synchronous setting, the median of several."""
    with tempfile.TemporaryDirectory() as folder:
        connection = sqlite3.connect(Path(folder) / "commit.db", isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, content TEXT)")
        times = []
        for i in range(50):
            start = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO t (content) VALUES (?)", (sentence(i),))
            connection.execute("COMMIT")
            times.append(time.perf_counter() - start)
        connection.close()
    return statistics.median(times)


def one_hash_seconds() -> float:
    """One argon2id hash with the service's parameters, the median of several."""
    hasher = PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )
    times = []
    for _ in range(9):
        start = time.perf_counter()
        hasher.hash(PASSWORD)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_wrk(base_url: str, scenario: Scenario, seed: Seed, duration: float, server: int) -> dict:
    env = {**os.environ, "BENCH_METHOD": scenario.method, "BENCH_BODY_FILE": "", "BENCH_PATHS_FILE": ""}
    command = [
        "wrk",
        f"-t{min(2, scenario.connections)}",
        f"-c{scenario.connections}",
        "--timeout",
        "60s",
        "-s",
        str(BENCH / "wrk.lua"),
    ]
    if scenario.user:
        command += ["-H", f"Authorization: Bearer {seed.tokens[scenario.user]}"]
    with tempfile.NamedTemporaryFile("w", suffix=".body") as body, tempfile.NamedTemporaryFile("w") as paths:
        if scenario.body:
            body.write(seed.bodies[scenario.body])
            body.flush()
            env["BENCH_BODY_FILE"] = body.name
            command += ["-H", f"Content-Type: {scenario.content_type}"]
        if scenario.paths:
            paths.write("\n".join(seed.paths[scenario.paths]) + "\n")
            paths.flush()
            env["BENCH_PATHS_FILE"] = paths.name
        url = base_url + scenario.path.format(**seed.ids)
        # A second of warm-up first, so statement caches and connections are ready.
        subprocess.run([*command, "-d1s", url], env=env, capture_output=True, check=True)
        wait_until_idle(server)
        seconds = max(duration, scenario.seconds or 0)
        output = subprocess.run([*command, f"-d{seconds:g}s", url], env=env, capture_output=True, text=True, check=True)
    wait_until_idle(server)
    line = next(line for line in output.stdout.splitlines() if line.startswith("BENCH "))
    return json.loads(line.removeprefix("BENCH "))


def wait_until_idle(server_pid: int) -> None:
    """Waits for the requests wrk left in flight when it stopped (the server still finishes
    them) so that they do not slow down the next scenario."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        before = cpu_seconds(server_pid)
        time.sleep(0.5)
        if cpu_seconds(server_pid) - before < 0.05:
            return


def cpu_seconds(server_pid: int) -> float:
    ticks = 0
    for pid in workers(server_pid):
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime and stime
    return ticks / os.sysconf("SC_CLK_TCK")


def requests_per_s(result: dict) -> float:
    return result["requests"] / (result["duration_us"] / 1e6)


def summarise(
    scenario: Scenario, result: dict, done: list[Row], ceiling: float | None, peak_mb: float, hash_limit: float
) -> Row:
    rps = requests_per_s(result)
    errors = sum(result[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    p99_ms = result["p99_us"] / 1000
    cost = None
    verdicts = []
    if scenario.min_rps is not None:
        verdicts.append(rps >= scenario.min_rps)
    if scenario.max_p99_ms is not None:
        verdicts.append(p99_ms <= scenario.max_p99_ms and errors == 0)
    if scenario.baseline:
        small = next((s for s in SCENARIOS if s.name.split()[0] == scenario.baseline and not s.baseline), None)
        small_row = next((row for row in done if small and row.scenario == small.name), None)
        if small_row and rps:
            cost = (small_row.of_ceiling * small.items) / (rps / ceiling * scenario.items)
            verdicts.append(cost <= 1.25)
    if scenario.hash_bound:
        verdicts.append(rps >= 0.8 * hash_limit)
    target = "" if not verdicts else "met" if all(verdicts) else "**not met**"
    if scenario.hash_bound:
        target += f" ({rps / hash_limit:.0%} of hash-bound)"
    return Row(
        scenario.name,
        rps,
        result["p50_us"] / 1000,
        p99_ms,
        errors,
        rps / (ceiling or rps),
        cost,
        peak_mb,
        target,
    )


def markdown(header: str, rows: list[Row], footer: list[str]) -> str:
    lines = [
        header,
        "",
        "| scenario | req/s | p50 ms | p99 ms | errors | × ceiling | cost vs small | peak RSS MB | target |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        cost = f"{row.cost_vs_small:.2f}×" if row.cost_vs_small is not None else ""
        rps = f"{row.requests_per_s:,.0f}" if row.requests_per_s >= 10 else f"{row.requests_per_s:.2f}"
        lines.append(
            f"| {row.scenario} | {rps} | {row.p50_ms:.1f} | {row.p99_ms:.1f} | {row.errors} "
            f"| {row.of_ceiling:.2f} | {cost} | {row.peak_rss_mb:.0f} | {row.target} |"
        )
    return "\n".join([*lines, "", *footer])


def save(
    when: datetime,
    engine_name: str,
    worker_count: int,
    table: str,
    rows: list[Row],
    peaks: dict,
    hash_s: float,
    login_costs: tuple[float, float] | None,
) -> None:
    stem = BENCH / "results" / f"{when:%Y%m%d-%H%M%S}-{engine_name}-{worker_count}w"
    stem.with_suffix(".md").write_text(table + "\n")
    data = {
        "when": when.isoformat(),
        "engine": engine_name,
        "workers": worker_count,
        "cores": CORES,
        "hash_seconds": hash_s,
        "peak_rss_mb": {str(pid): mb for pid, mb in peaks.items()},
        "rows": [asdict(row) for row in rows],
        "login_unknown_user_vs_wrong_password_ms": login_costs,
    }
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    print(f"\n(written to {stem.relative_to(ROOT)}.md and .json)", file=sys.stderr)


def workers(server_pid: int) -> list[int]:
    """The processes that serve requests: the server itself, or the children uvicorn spawned."""
    children = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if int(stat.rsplit(")", 1)[1].split()[1]) == server_pid and b"spawn_main" in cmdline:
                children.append(int(pid))
    return children or [server_pid]


def peak_rss_mb_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(server_pid: int) -> float:
    return max(peak_rss_mb_of(pid) for pid in workers(server_pid))


if __name__ == "__main__":
    main()
