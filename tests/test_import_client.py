"""The import through a client generated from the service's own /openapi.json, as a user would
make one (openapi-python-client), against a real server: both documented body types work, and
every error comes back parsed in its documented shape, its message kept."""

import importlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from types import ModuleType

import httpx
import pytest

from conftest import PASSWORD
from server import PYTHON, free_port, running, server_env
from service import examples

PACKAGE = "generated_chat_client"
EXPORT = json.dumps(examples.CHATGPT_CONVERSATIONS).encode()
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ModuleType, str]]:
    """A server (its import limited to LIMIT bytes), a client package generated from its schema
    and a logged-in user's token."""
    scratch = tmp_path_factory.mktemp("generated")
    port = free_port()
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--no-access-log"]
    env = server_env(DATABASE_URL=f"sqlite:///{scratch}/client.db", MAX_IMPORT_BYTES=str(LIMIT), REDIS_URL="")
    with running(command, env, scratch, port) as base_url:
        (scratch / "openapi.json").write_text(json.dumps(httpx.get(f"{base_url}/openapi.json").json()))
        generate = [PYTHON, "-m", "openapi_python_client", "generate", "--path", "openapi.json", "--meta", "none"]
        generate += ["--output-path", PACKAGE]
        generated = subprocess.run(generate, cwd=scratch, capture_output=True, text=True, timeout=120)
        assert generated.returncode == 0, generated.stdout + generated.stderr
        # The generator names what it could not generate as a warning, and still succeeds.
        assert "/v1/chats/import" not in generated.stdout + generated.stderr

        username = f"generated_{port}"
        account = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
        assert httpx.post(f"{base_url}/v1/auth/register", json=account).status_code == 201
        token = httpx.post(f"{base_url}/v1/auth/token", data={"username": username, "password": PASSWORD}).json()

        sys.path.insert(0, str(scratch))
        try:
            yield base_url, importlib.import_module(PACKAGE), token["access_token"]
        finally:
            sys.path.remove(str(scratch))
            for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
                del sys.modules[name]


def zipped(conversations: bytes) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as export:
        export.writestr("conversations.json", conversations)
    return archive.getvalue()


def call_import(served: tuple[str, ModuleType, str], body: object, key: str | None = None) -> object:
    base_url, package, token = served
    operation = importlib.import_module(f"{PACKAGE}.api.chats.import_chats_v1_chats_import_post")
    with package.AuthenticatedClient(base_url=base_url, token=token) as client:
        return operation.sync_detailed(client=client, body=body, idempotency_key=key or package.types.UNSET)


def upload(served: tuple[str, ModuleType, str], content: bytes, name: str = "export.zip") -> object:
    models = importlib.import_module(f"{PACKAGE}.models")
    (form,) = [model for model_name, model in vars(models).items() if model_name.endswith("ImportUpload")]
    return form(file=served[1].types.File(payload=content, file_name=name))


def raw(served: tuple[str, ModuleType, str], content: bytes) -> object:
    return served[1].types.File(payload=content)


def test_a_generated_client_imports_an_upload_and_a_raw_body(served: tuple[str, ModuleType, str]) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    for body in (
        upload(served, zipped(EXPORT)),
        raw(served, EXPORT),
    ):
        response = call_import(served, body)
        assert response.status_code == 201, response.content
        assert isinstance(response.parsed, models.ImportResult)
        assert response.parsed.format_.value == "chatgpt"
        assert response.parsed.messages == 2
        assert [chat.title for chat in response.parsed.chats] == ["Two days in Kyoto"]


def test_a_generated_client_reads_every_error_with_its_message(served: tuple[str, ModuleType, str]) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")

    not_an_export = call_import(served, raw(served, b'{"hello": "world"}'))
    assert not_an_export.status_code == 422
    assert isinstance(not_an_export.parsed, models.Error)
    assert not_an_export.parsed.detail.startswith("Not a chat export")

    bad_key = call_import(served, raw(served, EXPORT), key="k" * 256)
    assert bad_key.status_code == 422
    assert isinstance(bad_key.parsed, models.HTTPValidationError)
    assert bad_key.parsed.detail[0].loc == ["header", "Idempotency-Key"]

    # A part without a file name is a form field, not a file.
    no_file = call_import(served, upload(served, b"", name=""))
    assert no_file.status_code == 422
    assert isinstance(no_file.parsed, models.Error) and "field `file`" in no_file.parsed.detail

    too_large = call_import(served, raw(served, b" " * (LIMIT + 1)))
    assert too_large.status_code == 413
    assert isinstance(too_large.parsed, models.Error) and too_large.parsed.detail

    first = call_import(served, raw(served, EXPORT), key="generated-retry")
    assert first.status_code == 201
    conflict = call_import(served, upload(served, zipped(b"[]")), key="generated-retry")
    assert conflict.status_code == 409
    assert isinstance(conflict.parsed, models.Error) and "Idempotency-Key" in conflict.parsed.detail

    base_url, _package, _token = served
    with served[1].Client(base_url=base_url) as anonymous:
        operation = importlib.import_module(f"{PACKAGE}.api.chats.import_chats_v1_chats_import_post")
        unauthenticated = operation.sync_detailed(client=anonymous, body=raw(served, b"[]"))
    assert unauthenticated.status_code == 401
    assert isinstance(unauthenticated.parsed, models.Error)
