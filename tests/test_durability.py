"""Nothing is lost: several workers appending at once, a server killed mid-stream, and
the database closing the service's connections."""

import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text

from conftest import ENGINE as database_engine
from conftest import PASSWORD, SERVER_URL, Account
from models import Message
from server import PYTHON, free_port, running, server_env


def sign_up(client: httpx.Client) -> dict[str, str]:
    username = f"writer_{uuid.uuid4().hex[:8]}"
    body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
    assert client.post("/v1/auth/register", json=body).status_code == 201
    token = client.post("/v1/auth/token", data={"username": username, "password": PASSWORD}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def stored(database_url: str, chat_id: int) -> list:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(Message.id, Message.parent_id, Message.content, Message.created_at)
            return connection.execute(query.where(Message.chat_id == chat_id).order_by(Message.id)).all()
    finally:
        engine.dispose()


@pytest.mark.timeout(300)  # two server starts and 2,000 appends: about a minute on PostgreSQL
def test_two_workers_32_clients_2000_appends_all_stored_in_order(fresh_database_url: str, tmp_path: Path) -> None:
    port = free_port()
    # Both workers migrate the empty database at start-up, at the same moment.
    env = server_env(DATABASE_URL=fresh_database_url, SECRET_KEY="w" * 48)
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--workers", "2", "--loop", "asyncio"]
    command += ["--no-access-log"]
    with running(command, env, tmp_path, port) as base_url:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            headers = sign_up(client)
            chat_id = client.post("/v1/chats/", json={"title": "shared"}, headers=headers).json()["id"]
            start = client.get("/v1/chats/changes", headers=headers).json()["cursor"]
        local = threading.local()

        def append(index: int) -> tuple[int, int]:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=base_url, timeout=60, headers=headers)
            response = local.client.post(f"/v1/chats/{chat_id}/message", json={"role": "user", "content": f"#{index}"})
            return response.status_code, response.json().get("id", 0)

        with ThreadPoolExecutor(max_workers=32) as pool:
            results = list(pool.map(append, range(2000)))
        with httpx.Client(base_url=base_url, timeout=60, headers=headers) as client:
            shown = client.get(f"/v1/chats/{chat_id}").json()["current_message_id"]
            page = client.get("/v1/chats/changes", params={"since": start, "limit": 500}).json()
            logged = page["data"]
            while page["has_more"]:
                page = client.get("/v1/chats/changes", params={"since": page["cursor"], "limit": 500}).json()
                logged += page["data"]

    assert [status for status, _ in results] == [201] * 2000
    assert len({message_id for _, message_id in results}) == 2000
    rows = stored(fresh_database_url, chat_id)
    assert len(rows) == 2000
    assert {row.id for row in rows} == {message_id for _, message_id in results}
    assert sorted(row.content for row in rows) == sorted(f"#{i}" for i in range(2000))
    assert [row.created_at for row in rows] == sorted(row.created_at for row in rows)
    # Appended below the current leaf, each one in turn: one line, shown to its end.
    assert [row.parent_id for row in rows] == [None, *(row.id for row in rows[:-1])]
    assert shown == rows[-1].id
    # The sync log lists every one of them, each once, in the order they were stored.
    assert [e["id"] for e in logged if e["kind"] == "message"] == [row.id for row in rows]
    assert len(logged) == 2 * 2000  # each message created, and the chat updated


def test_every_answered_message_survives_sigkill(fresh_database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(DATABASE_URL=fresh_database_url, SECRET_KEY="k" * 48, RELOAD="false", PORT=str(port))
    command = [PYTHON, str(Path(__file__).resolve().parent.parent / "main.py")]
    answered: dict[int, str] = {}
    with running(command, env, tmp_path, port) as base_url:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            headers = sign_up(client)
            chat_id = client.post("/v1/chats/", json={"title": "killed"}, headers=headers).json()["id"]
        stop = threading.Event()

        def stream(worker: int) -> None:
            with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
                for index in range(10_000):
                    try:
                        response = client.post(
                            f"/v1/chats/{chat_id}/message", json={"role": "user", "content": f"{worker}-{index}"}
                        )
                    except httpx.TransportError:
                        return
                    if response.status_code == 201:
                        answered[response.json()["id"]] = f"{worker}-{index}"
                    if stop.is_set():
                        return

        threads = [threading.Thread(target=stream, args=(worker,)) for worker in range(8)]
        for thread in threads:
            thread.start()
        # Until 300 are answered; a server that stops answering fails the test, not hangs it.
        deadline = time.monotonic() + 60
        while len(answered) < 300 and time.monotonic() < deadline and any(t.is_alive() for t in threads):
            threading.Event().wait(0.01)
        enough = len(answered) >= 300
        if enough:
            _kill_listener(port)
        stop.set()
        for thread in threads:
            thread.join()

    assert enough, f"only {len(answered)} appends answered in 60 s"
    if not SERVER_URL:
        engine = create_engine(fresh_database_url)
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        engine.dispose()
    with running(command, env, tmp_path, port) as base_url:
        assert httpx.get(f"{base_url}/v1/auth/test_token", headers=headers).status_code == 200
        read = httpx.get(f"{base_url}/v1/chats/{chat_id}", headers=headers, timeout=30)
        assert read.status_code == 200
        kept = {message["id"]: message["content"] for message in read.json()["messages"]}
    assert {message_id: kept.get(message_id) for message_id in answered} == answered


def _kill_listener(port: int) -> None:
    """SIGKILL the process that listens on `port`."""
    inode = _listening_inode(port)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]" for fd in fds):
                os.kill(int(pid), signal.SIGKILL)
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue


def _listening_inode(port: int) -> str:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as sockets:
            for line in sockets.readlines()[1:]:
                fields = line.split()
                if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
                    return fields[9]
    raise AssertionError(f"nothing listens on {port}")


def close_every_other_connection() -> int:
    with database_engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()


@pytest.mark.skipif(not SERVER_URL, reason="PostgreSQL: a server that closes the service's connections")
def test_requests_go_on_after_the_database_closes_every_connection(client: TestClient, alice: Account) -> None:
    chat = client.post("/v1/chats/", json={"title": "Before the restart"}, headers=alice.headers).json()
    for _ in range(2):
        # As after a restart of PostgreSQL: every pooled connection is gone.
        assert close_every_other_connection() >= 1
        assert client.get("/v1/auth/me", headers=alice.headers).status_code == 200
        # The write after it, on a connection closed in the meantime, is stored once.
        close_every_other_connection()
        added = client.post(
            f"/v1/chats/{chat['id']}/message", json={"role": "user", "content": "still here"}, headers=alice.headers
        )
        assert added.status_code == 201, added.text
    messages = client.get(f"/v1/chats/{chat['id']}/messages", headers=alice.headers).json()["data"]
    assert [m["content"] for m in messages] == ["still here", "still here"]
