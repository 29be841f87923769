"""The settings as the README's table gives them, resolved here from an environment and a
`.env` file each test writes (the suite's own settings were resolved before any test ran):
their defaults, their parsing, the refusals that stop a start, and where a generated
signing key is kept."""

import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from test_app_factory import register_and_log_in

from config import Settings
from main import create_app

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/chat"
STRONG_KEY = "k" * 32


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own, and an environment holding none of the settings."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_setting_defaults_to_the_documented_value(environment: Path) -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///./chat.db"
    assert (settings.secret_key, settings.environment) == ("", "production")
    assert (settings.access_token_expire_minutes, settings.refresh_token_expire_days) == (30, 14)
    assert (settings.jwt_issuer, settings.jwt_audience) == ("", "")
    assert settings.trash_days == 30
    assert (settings.host, settings.port, settings.reload, settings.migrate_on_start) == ("0.0.0.0", 8000, True, True)
    assert (settings.cors_origins, settings.trusted_proxies) == ([], [])
    assert (settings.max_head_bytes, settings.max_token_bytes) == (32768, 4096)
    assert (settings.max_body_bytes, settings.max_content_bytes) == (2097152, 1048576)
    assert settings.max_import_bytes == 209715200
    assert (settings.db_pool_size, settings.sqlite_synchronous) == (16, "FULL")
    assert (settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism) == (19456, 2, 1)
    assert settings.redis_url == ""
    limits = [settings.rate_limit_login, settings.rate_limit_register, settings.rate_limit_refresh]
    assert [*limits, settings.rate_limit_password] == ["10/minute"] * 4
    assert (settings.metrics_token, settings.prometheus_multiproc_dir, settings.log_format) == ("", "", "text")
    assert settings.rate_limit_prefix == "chat-api:ratelimit"


def test_a_dotenv_file_in_the_working_directory_is_read_and_lists_are_comma_separated(environment: Path) -> None:
    (environment / ".env").write_text(
        "CORS_ORIGINS= http://a.example , http://b.example,,\n"
        "TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1\n"
        "RATE_LIMIT_LOGIN=3/second\n"
        "TRASH_DAYS=7\n"
        "SQLITE_SYNCHRONOUS=NORMAL\n"
        "RELOAD=false\n"
    )
    settings = Settings()
    assert settings.cors_origins == ["http://a.example", "http://b.example"]
    assert settings.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    assert settings.rate_limit_login == "3/second"
    assert (settings.trash_days, settings.sqlite_synchronous, settings.reload) == (7, "NORMAL", False)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_LIMIT_LOGIN", "10/week"),
        ("RATE_LIMIT_PASSWORD", "0/minute"),
        ("TRASH_DAYS", "0"),
        ("MAX_HEAD_BYTES", "4095"),
        ("ARGON2_MEMORY_KIB", "1024"),
        ("SQLITE_SYNCHRONOUS", "OFF"),
        ("ENVIRONMENT", "staging"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_an_invalid_setting_is_named_and_its_value_not_shown(
    environment: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert name.lower() in str(refused.value)
    assert value not in str(refused.value)


def test_a_short_secret_key_is_refused_outside_development(environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "short-secret")
    with pytest.raises(ValidationError, match="SECRET_KEY must be at least 32 bytes") as refused:
        Settings()
    assert "short-secret" not in str(refused.value)
    monkeypatch.setenv("ENVIRONMENT", "development")
    assert Settings().signing_key == "short-secret"


def test_a_set_secret_key_signs_and_no_key_file_is_written(environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("DATABASE_URL", SERVER)
    assert Settings().signing_key == STRONG_KEY
    assert list(environment.iterdir()) == []


def test_a_database_server_without_a_secret_key_refuses_to_start(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", SERVER)
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set when DATABASE_URL is not SQLite"):
        Settings().signing_key  # noqa: B018
    assert list(environment.iterdir()) == []


def test_a_generated_key_is_kept_beside_the_sqlite_file_for_its_owner_only(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///./data/chat.db")
    key = Settings().signing_key
    kept = environment / "data" / "chat.db.key"
    assert os.listdir(kept.parent) == ["chat.db.key"]
    assert kept.read_text() == key
    assert mode(kept) == 0o600
    assert len(key) >= 32
    # Every worker and every later start signs with the same key.
    assert Settings().signing_key == key
    assert Settings(_env_file=None, database_url=f"sqlite:///{environment / 'data' / 'chat.db'}").signing_key == key


@pytest.mark.parametrize(
    ("database_url", "environment_name"),
    [(SERVER, "development"), ("sqlite:///:memory:", "production"), ("sqlite://", "production")],
)
def test_without_a_database_file_the_generated_key_is_kept_in_the_working_directory(
    environment: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, environment_name: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ENVIRONMENT", environment_name)
    key = Settings().signing_key
    kept = environment / ".secret_key"
    assert os.listdir(environment) == [".secret_key"]
    assert (kept.read_text(), mode(kept)) == (key, 0o600)
    assert Settings().signing_key == key


def test_a_sqlite_database_in_a_folder_not_made_yet_starts(environment: Path) -> None:
    settings = Settings(_env_file=None, database_url="sqlite:///./new/folder/chat.db", redis_url="")
    with TestClient(create_app(settings)) as client:
        assert register_and_log_in(client) == 200
    assert {"chat.db", "chat.db.key"} <= set(os.listdir(environment / "new" / "folder"))
