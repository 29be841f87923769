"""README promises about the ChatGPT import: which files are read, in which order, and its
size limit on a streamed upload."""

import io
import json
import warnings
import zipfile
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from test_import import chat_count, conversation, zipped

from conftest import DATABASE_URL, SETTINGS, WORK_DIR, Account
from server import PYTHON, free_port, running, server_env


def post_zip(client: TestClient, account: Account, archive: bytes) -> httpx.Response:
    headers = {**account.headers, "Content-Type": "application/zip"}
    return client.post("/v1/chats/import", content=archive, headers=headers)


def export_of(*titles: str) -> bytes:
    return json.dumps([conversation(title, [("user", f"in {title}")], title) for title in titles]).encode()


def test_conversations_json_is_read_first_then_the_numbered_files_by_number(client: TestClient, alice: Account) -> None:
    archive = zipped(
        {
            "export/conversations-10.json": export_of("ten"),
            "export/conversations-9.json": export_of("nine"),
            "export/conversations.json": export_of("unnumbered"),
            "export/conversations-000.json": export_of("zero", "zero again"),
        }
    )
    response = post_zip(client, alice, archive)
    assert response.status_code == 201, response.text
    assert [chat["title"] for chat in response.json()["chats"]] == ["unnumbered", "zero", "zero again", "nine", "ten"]


def test_a_name_stored_twice_in_the_archive_is_read_twice_in_stored_order(client: TestClient, alice: Account) -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name, which is the point
        archive.writestr("conversations.json", export_of("stored first"))
        archive.writestr("conversations.json", export_of("stored second"))
    response = post_zip(client, alice, buffer.getvalue())
    assert response.status_code == 201, response.text
    assert [chat["title"] for chat in response.json()["chats"]] == ["stored first", "stored second"]


def test_nested_archives_are_never_opened(client: TestClient, alice: Account) -> None:
    inner = zipped({"conversations.json": export_of("inside the inner zip")})
    both = post_zip(client, alice, zipped({"inner.zip": inner, "conversations.json": export_of("outer")}))
    assert both.status_code == 201
    assert [chat["title"] for chat in both.json()["chats"]] == ["outer"]

    only_nested = post_zip(client, alice, zipped({"export.zip": inner}))
    assert only_nested.status_code == 422
    assert only_nested.json()["detail"] == (
        "Not a chat export: the ZIP holds no conversations.json (nor conversations-000.json, ...)"
    )
    disguised = post_zip(client, alice, zipped({"conversations.json": inner}))
    assert disguised.status_code == 422
    assert disguised.json()["detail"].startswith("Not a chat export: conversations.json: invalid JSON")
    assert chat_count(alice) == 1


IMPORT_LIMIT = 64 * 1024


@pytest.fixture
def small_import_server(client: TestClient) -> Iterator[str]:  # client: the suite's database is migrated
    port = free_port()
    env = server_env(
        DATABASE_URL=DATABASE_URL,
        SECRET_KEY=SETTINGS.secret_key,
        MIGRATE_ON_START="false",
        MAX_IMPORT_BYTES=str(IMPORT_LIMIT),
    )
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--no-access-log"]
    with running(command, env, WORK_DIR, port) as base_url:
        yield base_url


def chunks(body: bytes) -> Iterator[bytes]:
    """The body as a stream: sent chunked, without Content-Length."""
    for start in range(0, len(body), 4096):
        yield body[start : start + 4096]


def test_a_streamed_import_without_content_length_is_413_once_past_the_limit(
    small_import_server: str, alice: Account
) -> None:
    exact = export_of("streamed")[:-1] + b" " * (IMPORT_LIMIT - len(export_of("streamed"))) + b"]"
    assert len(exact) == IMPORT_LIMIT
    headers = {**alice.headers, "Content-Type": "application/json"}
    with httpx.Client(base_url=small_import_server, timeout=30) as http:
        over = http.post("/v1/chats/import", content=chunks(exact[:-1] + b" ]"), headers=headers)
        assert over.status_code == 413
        assert over.json() == {"detail": f"Request body is larger than {IMPORT_LIMIT} bytes"}
        assert chat_count(alice) == 0
        accepted = http.post("/v1/chats/import", content=chunks(exact), headers=headers)
        assert accepted.status_code == 201, accepted.text
        assert [chat["title"] for chat in accepted.json()["chats"]] == ["streamed"]
