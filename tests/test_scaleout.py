"""Several nodes: the key they must share, a clean stop, and three app nodes behind HAProxy
on one PostgreSQL database and one Redis, one of them killed and brought back under load."""

import csv
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from conftest import DATABASE_URL, PASSWORD, SERVER_URL, SETTINGS, Account
from models import Message
from server import PYTHON, free_port, server_env

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Node:
    """A `uvicorn main:app` process of its own, as each machine of a deployment runs one."""

    port: int
    env: dict[str, str]
    folder: Path
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / f"node-{self.port}-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(self.port), "--no-access-log"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, seconds: float = 40) -> None:
        deadline = time.monotonic() + seconds
        while True:
            with suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            assert self.process.poll() is None, f"node exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"node not ready: {self.log.read_text()[-3000:]}"
            time.sleep(0.1)

    def signal(self, number: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, number)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
        return self.process.wait()


@contextmanager
def nodes(count: int, folder: Path, **env: str) -> Iterator[list[Node]]:
    started = [Node(free_port(), server_env(**env), folder) for _ in range(count)]
    try:
        for node in started:
            node.start()
        for node in started:
            node.wait_ready()
        yield started
    finally:
        for node in started:
            if node.process is not None:
                node.stop()


# -- one key for every node, and a clean stop


def test_a_database_server_without_secret_key_refuses_to_start(tmp_path: Path) -> None:
    # Each node would otherwise sign with a key of its own, and refuse the others' tokens.
    env = server_env(DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/any", MIGRATE_ON_START="false")
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(free_port())]
    started = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode != 0
    assert "SECRET_KEY must be set when DATABASE_URL is not SQLite" in started.stdout + started.stderr
    assert not (tmp_path / ".secret_key").exists()


def test_sigterm_lets_the_request_in_flight_finish_then_closes(
    client: TestClient, alice: Account, tmp_path: Path
) -> None:
    chat_id = client.post("/v1/chats/", json={"title": "last words"}, headers=alice.headers).json()["id"]
    env = {"DATABASE_URL": DATABASE_URL, "SECRET_KEY": SETTINGS.secret_key, "MIGRATE_ON_START": "false"}
    with nodes(1, tmp_path, **env) as (node,):
        body = b'{"role": "user", "content": "sent before and after the SIGTERM"}'
        head = (
            f"POST /v1/chats/{chat_id}/message HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {alice.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", node.port), timeout=30) as connection:
            # The request has begun (its headers are in) and waits for the rest of its body.
            connection.sendall(head + body[:10])
            time.sleep(0.5)
            node.signal(signal.SIGTERM)
            time.sleep(1)
            # Stopping: no new connections, but the one in flight is still served.
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{node.url}/healthz")
            assert node.process.poll() is None
            connection.sendall(body[10:])
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 201 "), answer[:200]
        # uvicorn stops cleanly, then exits by the signal it caught, as a process stopped by it does.
        assert node.process.wait(timeout=20) == -signal.SIGTERM
        output = node.log.read_text()
        assert "Application shutdown complete" in output
        assert "Traceback" not in output
    messages = client.get(f"/v1/chats/{chat_id}", headers=alice.headers).json()["messages"]
    assert [m["content"] for m in messages] == ["sent before and after the SIGTERM"]


# -- three nodes behind a load balancer

HAPROXY = """\
global
    stats socket {socket} mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend chat
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
{servers}
"""


@dataclass
class Balancer:
    port: int
    socket: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def servers(self) -> dict[str, dict[str, str]]:
        """HAProxy's own view of each node: status (UP, DOWN...) and stot, the requests sent to it."""
        with socket.socket(socket.AF_UNIX) as stats:
            stats.connect(str(self.socket))
            stats.sendall(b"show stat\n")
            text = b""
            while chunk := stats.recv(65536):
                text += chunk
        rows = csv.DictReader(text.decode().removeprefix("# ").splitlines())
        return {row["svname"]: row for row in rows if row["pxname"] == "nodes" and row["svname"].startswith("node")}

    def wait_for(self, server: str, status: str, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while self.servers()[server]["status"] != status:
            assert time.monotonic() < deadline, f"{server} not {status}: {self.servers()[server]}"
            time.sleep(0.05)


@contextmanager
def haproxy(backends: list[Node], folder: Path) -> Iterator[Balancer]:
    balancer = Balancer(free_port(), folder / "haproxy.sock")
    servers = "\n".join(f"    server node{i} 127.0.0.1:{node.port} check" for i, node in enumerate(backends))
    config = folder / "haproxy.cfg"
    config.write_text(HAPROXY.format(socket=balancer.socket, port=balancer.port, servers=servers))
    with open(folder / "haproxy.log", "wb") as log:
        process = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not balancer.socket.exists():
            assert process.poll() is None, (folder / "haproxy.log").read_text()
            assert time.monotonic() < deadline, "haproxy did not start"
            time.sleep(0.05)
        for i in range(len(backends)):
            balancer.wait_for(f"node{i}", "UP")
        yield balancer
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Load:
    """Client threads appending to their own chats, each message with its Idempotency-Key,
    retrying it with the same key whenever the balancer or the connection fails them."""

    url: str
    headers: dict[str, str]
    chats: list[int]
    stop: threading.Event = field(default_factory=threading.Event)
    acknowledged: dict[str, int] = field(default_factory=dict)  # key: the id answered
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Bounds, whatever happens: appends per client, and seconds until each must be done.
    APPENDS = 2000
    SECONDS = 50

    def client(self, chat_id: int) -> None:
        deadline = time.monotonic() + self.SECONDS
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=10) as http:
            for index in range(self.APPENDS):
                if self.stop.is_set():
                    return
                key = f"{chat_id}-{index}"
                while True:
                    assert time.monotonic() < deadline, f"{key} not stored in time"
                    try:
                        answer = http.post(
                            f"/v1/chats/{chat_id}/message",
                            json={"role": "user", "content": key},
                            headers={"Idempotency-Key": key},
                        )
                    except httpx.TransportError:
                        answer = None
                    if answer is not None and answer.status_code not in (502, 503, 504):
                        break
                    with self.lock:
                        self.retries += 1
                    time.sleep(0.05)
                assert answer.status_code == 201, answer.text
                with self.lock:
                    self.acknowledged[key] = answer.json()["id"]
                time.sleep(0.02)  # a steady load, not a flood

    def wait_for(self, count: int, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} of {count} appends acknowledged"
            time.sleep(0.02)


def login(http: httpx.Client, url: str, username: str, password: str = PASSWORD) -> httpx.Response:
    return http.post(f"{url}/v1/auth/token", data={"username": username, "password": password})


@pytest.mark.skipif(not SERVER_URL, reason="several nodes share a database server: PostgreSQL")
def test_three_nodes_behind_haproxy_survive_losing_one(fresh_database_url: str, tmp_path: Path) -> None:
    prefix = f"scaleout-test-{uuid.uuid4().hex}"
    shared = redis.Redis.from_url(REDIS_URL)
    assert shared.ping(), "the scale-out test needs Redis at 127.0.0.1:6379"
    env = {
        "DATABASE_URL": fresh_database_url,
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "REDIS_URL": REDIS_URL,
        "RATE_LIMIT_PREFIX": prefix,
        "RATE_LIMIT_LOGIN": "6/hour",
    }
    with ExitStack() as stack:
        stack.callback(lambda: [shared.delete(key) for key in shared.scan_iter(f"{prefix}:*")])
        cluster = stack.enter_context(nodes(3, tmp_path, **env))
        balancer = stack.enter_context(haproxy(cluster, tmp_path))
        http = stack.enter_context(httpx.Client(timeout=10))

        username = f"scaler_{uuid.uuid4().hex[:8]}"
        body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
        assert http.post(f"{balancer.url}/v1/auth/register", json=body).status_code == 201
        token = login(http, balancer.url, username).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        # A token issued by any node works on every node.
        for issuer in cluster:
            issued = login(http, issuer.url, username)
            assert issued.status_code == 200
            bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
            for node in cluster:
                checked = http.get(f"{node.url}/v1/auth/test_token", headers=bearer)
                assert checked.status_code == 200 and checked.json()["username"] == username

        created = [
            http.post(f"{balancer.url}/v1/chats/", json={"title": f"load {i}"}, headers=headers) for i in range(4)
        ]
        chats = [chat.json()["id"] for chat in created]
        load = Load(balancer.url, headers, chats)
        victim, name = cluster[1], "node1"
        with ThreadPoolExecutor(len(chats)) as pool:
            clients = [pool.submit(load.client, chat_id) for chat_id in chats]
            try:
                load.wait_for(40)
                victim.signal(signal.SIGKILL)
                victim.process.wait()
                killed_at = len(load.acknowledged)
                load.wait_for(killed_at + 40)  # the other two carry the load
                balancer.wait_for(name, "DOWN")
                victim.start()
                victim.wait_ready()
                balancer.wait_for(name, "UP")
                # Back in the rotation: the balancer sends it requests again.
                sent_before = int(balancer.servers()[name]["stot"])
                load.wait_for(len(load.acknowledged) + 40)
                assert int(balancer.servers()[name]["stot"]) > sent_before
            finally:
                load.stop.set()
                for finished in clients:
                    finished.result()

        # Every acknowledged message is stored once, under the id it was answered with, and
        # no retry stored a second copy.
        engine = create_engine(fresh_database_url)
        with engine.connect() as connection:
            stored = connection.execute(
                select(Message.content, func.count(), func.min(Message.id))
                .where(Message.chat_id.in_(chats))
                .group_by(Message.content)
            ).all()
        engine.dispose()
        assert {content: count for content, count, _ in stored} == dict.fromkeys(load.acknowledged, 1)
        assert {content: first for content, _, first in stored} == load.acknowledged

        # The login limit is counted in Redis: 6 attempts an hour for this address and this
        # username, whichever node they reach, the restarted one included.
        stranger = f"stranger_{uuid.uuid4().hex[:8]}"
        transport = httpx.HTTPTransport(local_address="127.0.0.9")
        with httpx.Client(transport=transport, timeout=10) as elsewhere:
            spread = [cluster[i % 3].url for i in (0, 2, 1, 0, 2, 1)]
            assert [login(elsewhere, url, stranger, "wrong password").status_code for url in spread] == [401] * 6
            assert login(elsewhere, victim.url, stranger, "wrong password").status_code == 429
        print(f"{len(load.acknowledged)} appends acknowledged, {load.retries} retried")
