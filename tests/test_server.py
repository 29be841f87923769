"""The service as users run it: a real server process, concurrent clients, restarts."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from conftest import DATABASE_URL, PASSWORD, SERVER_URL, WORK_DIR, Account
from conftest import ENGINE as engine
from models import Message
from server import PYTHON, ROOT, free_port, running, server_env, serving_pid


def walkthrough(base_url: str) -> tuple[str, int]:
    """The seed's curl examples: register, log in, create a chat, add a message, read the chat."""
    username = f"walker_{uuid.uuid4().hex[:8]}"
    registered = httpx.post(
        f"{base_url}/v1/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    token = httpx.post(f"{base_url}/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert token.status_code == 200
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    chat = httpx.post(f"{base_url}/v1/chats/", json={"title": "我的第一个对话"}, headers=headers)
    assert chat.status_code == 201
    chat_id = chat.json()["id"]
    message = httpx.post(
        f"{base_url}/v1/chats/message?chat_id={chat_id}",
        json={"role": "user", "content": "上传对话历史 ✓"},
        headers=headers,
    )
    assert message.status_code == 201
    read = httpx.get(f"{base_url}/v1/chats/{chat_id}", headers=headers)
    assert read.status_code == 200
    assert [m["content"] for m in read.json()["messages"]] == ["上传对话历史 ✓"]
    return token.json()["access_token"], chat_id


def test_python_main_py_serves_migrates_and_keeps_data_and_tokens_across_a_restart(tmp_path: Path) -> None:
    # A fresh checkout's defaults: the SQLite file and its key appear in the working directory.
    # (A database server needs SECRET_KEY, or development mode to keep a generated one.)
    database = {} if not SERVER_URL else {"DATABASE_URL": DATABASE_URL, "ENVIRONMENT": "development"}
    env = server_env(HOST="127.0.0.1", PORT=str(port := free_port()), RELOAD="false", **database)
    command = [PYTHON, str(ROOT / "main.py")]
    with running(command, env, tmp_path, port) as base_url:
        token, chat_id = walkthrough(base_url)
    key_file = tmp_path / ("chat.db.key" if not SERVER_URL else ".secret_key")
    assert key_file.stat().st_mode & 0o777 == 0o600
    if not SERVER_URL:
        assert (tmp_path / "chat.db").exists()

    with running(command, env, tmp_path, port) as base_url:
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base_url}/v1/auth/test_token", headers=headers).status_code == 200
        chat = httpx.get(f"{base_url}/v1/chats/{chat_id}", headers=headers).json()
        assert [m["content"] for m in chat["messages"]] == ["上传对话历史 ✓"]


def test_a_token_from_one_worker_works_on_the_other(fresh_database_url: str, tmp_path: Path) -> None:
    # No SECRET_KEY: the workers must agree on the key they generate into the shared file.
    port = free_port()
    env = server_env(DATABASE_URL=fresh_database_url, **({"ENVIRONMENT": "development"} if SERVER_URL else {}))
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--workers", "2", "--no-access-log"]
    with running(command, env, tmp_path, port) as base_url, ExitStack() as stack:
        username = f"roamer_{uuid.uuid4().hex[:8]}"
        body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
        assert httpx.post(f"{base_url}/v1/auth/register", json=body).status_code == 201
        # A kept-alive connection stays with the worker that accepted it: open connections
        # until each worker holds one.
        by_worker: dict[int, httpx.Client] = {}
        for _ in range(200):
            client = stack.enter_context(httpx.Client(base_url=base_url))
            by_worker.setdefault(serving_pid(port, client.get("/v1")), client)
            if len(by_worker) == 2:
                break
        assert len(by_worker) == 2, "one worker accepted every connection"
        (first, on_first), (second, on_second) = by_worker.items()
        for issuer, checker, checker_pid in ((on_first, on_second, second), (on_second, on_first, first)):
            login = issuer.post("/v1/auth/token", data={"username": username, "password": PASSWORD})
            token = login.json()["access_token"]
            check = checker.get("/v1/auth/test_token", headers={"Authorization": f"Bearer {token}"})
            assert check.status_code == 200
            assert serving_pid(port, check) == checker_pid != serving_pid(port, login)


@pytest.fixture
def uvicorn_server() -> str:
    port = free_port()
    env = server_env(DATABASE_URL=DATABASE_URL, SECRET_KEY="s" * 48, MIGRATE_ON_START="false")
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--no-access-log"]
    with running(command, env, WORK_DIR, port) as base_url:
        yield base_url


def test_300_concurrent_appends_from_24_threads_are_all_stored(uvicorn_server: str, make_account) -> None:
    with httpx.Client(base_url=uvicorn_server) as client:
        account: Account = make_account()
        token = client.post("/v1/auth/token", data={"username": account.username, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        chat_id = client.post("/v1/chats/", json={"title": "busy"}, headers=headers).json()["id"]

        def append(index: int) -> tuple[int, int | None]:
            with httpx.Client(base_url=uvicorn_server, timeout=30) as worker:
                response = worker.post(
                    f"/v1/chats/{chat_id}/message", json={"role": "user", "content": f"m{index}"}, headers=headers
                )
                return response.status_code, response.json().get("id")

        with ThreadPoolExecutor(max_workers=24) as pool:
            results = list(pool.map(append, range(300)))

    assert [status for status, _ in results] == [201] * 300
    answered_ids = {message_id for _, message_id in results}
    assert len(answered_ids) == 300
    with engine.connect() as connection:
        stored = connection.execute(
            select(Message.id, Message.content, Message.created_at)
            .where(Message.chat_id == chat_id)
            .order_by(Message.id)
        ).all()
    assert {row.id for row in stored} == answered_ids
    assert sorted(row.content for row in stored) == sorted(f"m{i}" for i in range(300))
    assert [row.created_at for row in stored] == sorted(row.created_at for row in stored)
