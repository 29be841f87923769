"""The transaction runner (database.Database) on the suite's database, driven directly: a
write is all or nothing, and on PostgreSQL a worker holds DB_POOL_SIZE connections at once."""

import asyncio
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

import account_store
from conftest import SERVER_URL
from database import Database


class Refused(Exception):
    """What a store function raises once it has written."""


def test_a_write_that_fails_after_it_has_written_leaves_nothing(client: TestClient) -> None:
    name = f"half_{uuid.uuid4().hex[:10]}"

    def half_a_registration(conn: Connection) -> None:
        account_store.add_user(conn, f"{name}@example.com", name, "not a hash")
        raise Refused()

    async def attempt() -> tuple[int | None, str | None]:
        database = Database(client.app.state.settings)
        try:
            with pytest.raises(Refused):
                await database.write(half_a_registration)
            return await database.read(account_store.login_of, name)
        finally:
            await database.close()

    assert asyncio.run(attempt()) == (None, None)


@pytest.mark.skipif(not SERVER_URL, reason="PostgreSQL's pool (SQLite's transactions run inline, one at a time)")
def test_a_worker_runs_db_pool_size_transactions_at_once_and_queues_the_rest(client: TestClient) -> None:
    size, name = 7, f"pool_{uuid.uuid4().hex[:10]}"
    url = make_url(client.app.state.settings.database_url).update_query_dict({"application_name": name})
    settings = client.app.state.settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False), "db_pool_size": size}
    )
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
