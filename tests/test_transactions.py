"""The transaction runner (database.Database) on the suite's database, driven directly: a
write is all or nothing, and is run again only on a new connection after the server closed
its own; on PostgreSQL a worker holds DB_POOL_SIZE connections at once, and a time read is
UTC whatever the session's time zone."""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

import account_store
from config import Settings
from conftest import ENGINE, SERVER_URL, SETTINGS, Account
from database import Database
from main import create_app
from models import User


def with_url_query(settings: Settings, **query: str) -> Settings:
    """The settings with `query` added to the database URL: a PostgreSQL connection's options."""
    url = make_url(settings.database_url).update_query_dict(query)
    return settings.model_copy(update={"database_url": url.render_as_string(hide_password=False)})


class Refused(Exception):
    """What a store function raises once it has written."""


async def half_a_registration(database: Database, name: str) -> tuple[int | None, str | None]:
    """Runs a write that registers `name` and then fails (it must raise), and closes the
    database; what it has under the name afterwards."""

    def register_then_fail(conn: Connection) -> None:
        account_store.add_user(conn, f"{name}@example.com", name, "not a hash")
        raise Refused()

    try:
        with pytest.raises(Refused):
            await database.write(register_then_fail)
        return await database.read(account_store.login_of, name)
    finally:
        await database.close()


def test_a_write_that_fails_after_it_has_written_leaves_nothing(client: TestClient) -> None:
    name = f"half_{uuid.uuid4().hex[:10]}"
    assert asyncio.run(half_a_registration(Database(client.app.state.settings), name)) == (None, None)


@pytest.mark.skipif(not SERVER_URL, reason="PostgreSQL's pool (SQLite's transactions run inline, one at a time)")
def test_a_worker_runs_db_pool_size_transactions_at_once_and_queues_the_rest(client: TestClient) -> None:
    size, name = 7, f"pool_{uuid.uuid4().hex[:10]}"
    named = with_url_query(client.app.state.settings, application_name=name)
    settings = named.model_copy(update={"db_pool_size": size})
    connections = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")

    def wait_for_the_others(conn: Connection) -> int:
        """Connections of this worker open while this transaction runs, once `size` are or 10 s have passed."""
        deadline = time.monotonic() + 10
        while (seen := conn.execute(connections, {"name": name}).scalar_one()) < size and time.monotonic() < deadline:
            conn.execute(text("SELECT pg_sleep(0.02)"))
        return seen

    async def transactions() -> list[int]:
        database = Database(settings)
        try:
            return await asyncio.gather(*(database.read(wait_for_the_others) for _ in range(size + 2)))
        finally:
            await database.close()

    assert asyncio.run(transactions()) == [size] * (size + 2)


@pytest.mark.skipif(not SERVER_URL, reason="PostgreSQL: a write on a connection the server has closed is run again")
def test_a_write_run_again_on_a_new_connection_is_still_all_or_nothing(client: TestClient) -> None:
    name = f"again_{uuid.uuid4().hex[:10]}"
    settings = with_url_query(client.app.state.settings, application_name=name)
    terminate = text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :name")
    left = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")

    async def attempt() -> tuple[int | None, str | None]:
        database = Database(settings)
        await database.read(account_store.login_of, name)  # leaves one pooled connection open
        # As after a restart of PostgreSQL: that connection is gone when the write takes it.
        with ENGINE.connect() as conn:
            assert conn.execute(terminate, {"name": name}).scalar_one() == 1
            deadline = time.monotonic() + 10
            while conn.execute(left, {"name": name}).scalar_one() and time.monotonic() < deadline:
                time.sleep(0.01)
        return await half_a_registration(database, name)

    assert asyncio.run(attempt()) == (None, None)


def test_a_statement_that_fails_on_a_live_connection_is_not_run_again(client: TestClient) -> None:
    calls = []

    def read_no_such_table(conn: Connection) -> None:
        calls.append(conn)
        conn.execute(text("SELECT * FROM no_such_table"))

    async def attempt() -> None:
        database = Database(client.app.state.settings)
        try:
            with pytest.raises(DBAPIError) as raised:
                await database.write(read_no_such_table)
            assert not raised.value.connection_invalidated
        finally:
            await database.close()

    asyncio.run(attempt())
    assert len(calls) == 1


@pytest.mark.skipif(not SERVER_URL, reason="PostgreSQL hands back times in the session's time zone")
def test_a_time_read_in_a_session_of_another_time_zone_is_the_same_utc_instant(client: TestClient) -> None:
    settings = with_url_query(client.app.state.settings, options="-c TimeZone=Asia/Tokyo")
    name = f"zone_{uuid.uuid4().hex[:10]}"

    async def created_at() -> datetime:
        database = Database(settings)
        try:
            user = await database.write(account_store.add_user, f"{name}@example.com", name, "not a hash")
            return user["created_at"]
        finally:
            await database.close()

    in_tokyo = asyncio.run(created_at())
    with ENGINE.connect() as conn:  # the suite's session, in the server's zone (UTC)
        in_utc = conn.execute(select(User.created_at).where(User.username == name)).scalar_one()
    assert in_tokyo.tzinfo is UTC
    assert in_tokyo == in_utc
    assert abs(in_utc - datetime.now(UTC)) < timedelta(minutes=5)


def test_an_app_started_again_after_it_stopped_serves_again(alice: Account) -> None:
    """A stopped app closes its connections (the shutdown); started once more (a test
    client used twice, a server's lifespan run again), it opens new ones."""
    app = create_app(SETTINGS)
    for _ in range(2):
        with TestClient(app) as served:
            assert served.get("/readyz").json()["checks"] == {"database": "ok"}
            assert served.get("/v1/chats/", headers=alice.headers).status_code == 200
