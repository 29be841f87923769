"""Settings are resolved when an app is built: one pytest run can build apps with other
settings, on either engine, side by side, without touching the environment."""

import os
import secrets
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from config import Settings
from conftest import PASSWORD, SERVER_URL, SETTINGS
from main import create_app


def register_and_log_in(client: TestClient) -> int:
    username = f"factory_{uuid.uuid4().hex[:8]}"
    body = {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
    assert client.post("/v1/auth/register", json=body).status_code == 201
    return client.post("/v1/auth/token", data={"username": username, "password": PASSWORD}).status_code


def test_an_app_with_other_settings_in_the_same_process(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'other.db'}",
        secret_key=secrets.token_urlsafe(48),
        rate_limit_login="1/minute",
        max_content_bytes=10,
        redis_url="",
    )
    env_before = dict(os.environ)
    with TestClient(create_app(settings)) as client:
        assert register_and_log_in(client) == 200
        assert client.post("/v1/auth/token", data={"username": "someone", "password": PASSWORD}).status_code == 429
    assert dict(os.environ) == env_before
    assert (tmp_path / "other.db").exists()


def test_the_suite_app_keeps_its_own_limits(client: TestClient) -> None:
    # The other app's 10-byte content limit and 1/minute login limit never reached this one.
    assert client.app.state.settings is SETTINGS
    assert register_and_log_in(client) == 200


def test_sqlite_and_postgresql_apps_side_by_side(tmp_path: Path) -> None:
    urls = [f"sqlite:///{tmp_path / 'side.db'}"]
    admin_url = SERVER_URL or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    name = f"factory_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        urls.append(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
        apps = [
            create_app(Settings(_env_file=None, database_url=url, secret_key=secrets.token_urlsafe(48), redis_url=""))
            for url in urls
        ]
        with TestClient(apps[0]) as sqlite_client, TestClient(apps[1]) as postgresql_client:
            assert sqlite_client.app.state.database.engine.dialect.name == "sqlite"
            assert postgresql_client.app.state.database.engine.dialect.name == "postgresql"
            assert register_and_log_in(sqlite_client) == 200
            assert register_and_log_in(postgresql_client) == 200
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
