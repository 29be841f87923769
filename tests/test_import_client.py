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
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from conftest import PASSWORD, SETTINGS
from server import PYTHON, free_port, running, server_env
from service import examples

PACKAGE = "generated_chat_client"
EXPORT = json.dumps(examples.CHATGPT_CONVERSATIONS).encode()
LIMIT = 64 * 1024


@dataclass
class GeneratedClient:
    """The package generated from a running server's schema, and a logged-in user of that server."""

    base_url: str
    package: ModuleType
    token: str

    def module(self, name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.{name}")

    def call_import(self, body: object, key: str | None = None, token: bool = True) -> object:
        operation = self.module("api.chats.import_chats_v1_chats_import_post")
        if not token:
            with self.package.Client(base_url=self.base_url) as anonymous:
                return operation.sync_detailed(client=anonymous, body=body)
        with self.package.AuthenticatedClient(base_url=self.base_url, token=self.token) as client:
            return operation.sync_detailed(client=client, body=body, idempotency_key=key or self.package.types.UNSET)

    def upload(self, content: bytes, name: str = "export.zip") -> object:
        """The multipart body: its model is named after the schema's title."""
        (form,) = [model for name_, model in vars(self.module("models")).items() if name_.endswith("ImportUpload")]
        return form(file=self.package.types.File(payload=content, file_name=name))

    def raw(self, content: bytes) -> object:
        """The file's bytes as the body."""
        return self.package.types.File(payload=content)


@pytest.fixture
def generated(fresh_database_url: str, tmp_path: Path) -> Iterator[GeneratedClient]:
    """A server (its import limited to LIMIT bytes) and a client package generated from its schema."""
    port = free_port()
    command = [PYTHON, "-m", "uvicorn", "main:app", "--port", str(port), "--no-access-log"]
    env = server_env(
        DATABASE_URL=fresh_database_url, SECRET_KEY=SETTINGS.secret_key, MAX_IMPORT_BYTES=str(LIMIT), REDIS_URL=""
    )
    with running(command, env, tmp_path, port) as base_url:
        (tmp_path / "openapi.json").write_text(json.dumps(httpx.get(f"{base_url}/openapi.json").json()))
        generate = [PYTHON, "-m", "openapi_python_client", "generate", "--path", "openapi.json", "--meta", "none"]
        generate += ["--output-path", PACKAGE]
        result = subprocess.run(generate, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        # The generator names what it could not generate in a warning, and still succeeds.
        assert "/v1/chats/import" not in result.stdout + result.stderr

        username = f"generated_{port}"
        account = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
        assert httpx.post(f"{base_url}/v1/auth/register", json=account).status_code == 201
        token = httpx.post(f"{base_url}/v1/auth/token", data={"username": username, "password": PASSWORD}).json()

        sys.path.insert(0, str(tmp_path))
        try:
            yield GeneratedClient(base_url, importlib.import_module(PACKAGE), token["access_token"])
        finally:
            sys.path.remove(str(tmp_path))
            for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
                del sys.modules[name]


def zipped(conversations: bytes) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as export:
        export.writestr("conversations.json", conversations)
    return archive.getvalue()


def test_a_generated_client_imports_both_ways_and_reads_every_error(generated: GeneratedClient) -> None:
    models = generated.module("models")
    for body in (generated.upload(zipped(EXPORT)), generated.raw(EXPORT)):
        response = generated.call_import(body)
        assert response.status_code == 201, response.content
        assert isinstance(response.parsed, models.ImportResult)
        assert response.parsed.format_.value == "chatgpt"
        assert response.parsed.messages == 2
        assert [chat.title for chat in response.parsed.chats] == ["Two days in Kyoto"]

    not_an_export = generated.call_import(generated.raw(b'{"hello": "world"}'))
    assert not_an_export.status_code == 422
    assert isinstance(not_an_export.parsed, models.Error)
    assert not_an_export.parsed.detail.startswith("Not a chat export")

    bad_key = generated.call_import(generated.raw(EXPORT), key="k" * 256)
    assert bad_key.status_code == 422
    assert isinstance(bad_key.parsed, models.HTTPValidationError)
    assert bad_key.parsed.detail[0].loc == ["header", "Idempotency-Key"]

    # A part without a file name is a form field, not a file.
    no_file = generated.call_import(generated.upload(b"", name=""))
    assert no_file.status_code == 422
    assert isinstance(no_file.parsed, models.Error) and "field `file`" in no_file.parsed.detail

    too_large = generated.call_import(generated.raw(b" " * (LIMIT + 1)))
    assert too_large.status_code == 413
    assert isinstance(too_large.parsed, models.Error) and too_large.parsed.detail

    assert generated.call_import(generated.raw(EXPORT), key="generated-retry").status_code == 201
    conflict = generated.call_import(generated.upload(zipped(b"[]")), key="generated-retry")
    assert conflict.status_code == 409
    assert isinstance(conflict.parsed, models.Error) and "Idempotency-Key" in conflict.parsed.detail

    unauthenticated = generated.call_import(generated.raw(EXPORT), token=False)
    assert unauthenticated.status_code == 401
    assert isinstance(unauthenticated.parsed, models.Error)

    # Only the three imports answered 201 made chats.
    headers = {"Authorization": f"Bearer {generated.token}"}
    chats = httpx.get(f"{generated.base_url}/v1/chats/", headers=headers).json()
    assert [chat["title"] for chat in chats] == ["Two days in Kyoto"] * 3

    # The one documented error a generated client cannot provoke: a multipart body that is not one.
    broken = httpx.post(
        f"{generated.base_url}/v1/chats/import",
        content=b"not a multipart body",
        headers={**headers, "Content-Type": "multipart/form-data; boundary=xx"},
    )
    assert broken.status_code == 400, broken.text
    assert isinstance(models.Error.from_dict(broken.json()).detail, str)
