"""The engine, the transaction runner routes use, and start-up migrations.

Routes are `async def` and hand their database work, a plain function taking a
`Connection`, to `Database.read` or `Database.write`: one transaction per call. SQLite
is in-process and answers in microseconds, so that work runs inline on the event loop.
PostgreSQL's runs on the loop too, through psycopg's asyncio connections
(`AsyncConnection.run_sync`): each round trip is awaited, so it never blocks the loop,
and no request pays for a hop to a thread and back. Those connections stay open and in
autocommit mode (see `Database._pooled_transaction`).
"""

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio
from alembic.config import Config
from fastapi import Request
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from alembic import command
from config import Settings
from service.metrics import POOL_WAIT_SECONDS, TRANSACTION_SECONDS

P = ParamSpec("P")
T = TypeVar("T")
Work = Callable[Concatenate[Connection, P], T]

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def _json_loads(text: str | bytes) -> Any:
    # Most metadata is empty, and json.loads is a noticeable part of reading a page.
    return {} if text == "{}" or text == b"{}" else json.loads(text)


def _sqlite_engine(settings: Settings) -> Engine:
    # Inline work shares one connection (see Database); the pool's others serve migrations,
    # which run in a thread (SQLAlchemy opens a file database's connections for any thread).
    engine = create_engine(settings.database_url, json_deserializer=_json_loads)
    synchronous = settings.sqlite_synchronous

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN itself (the driver's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(conn: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that read first
        # could not wait for the lock and would fail with "database is locked".
        write = conn.get_execution_options().get("write", False)
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def make_engine(settings: Settings) -> Engine:
    """SQLite's engine, or, for PostgreSQL, the one that runs migrations (and names the
    server for the asyncio pool that runs the app's transactions, see Database)."""
    if settings.is_sqlite:
        return _sqlite_engine(settings)
    return create_engine(settings.database_url)


def one_statement(work: Work[P, T]) -> Work[P, T]:
    """Marks store work that sends exactly one statement on PostgreSQL: atomic by itself,
    `Database.write` runs it without BEGIN and COMMIT, one round trip instead of three."""
    work.one_statement = True  # type: ignore[attr-defined]
    return work


class Database:
    """One app's database: its engine and the runner of its transactions."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings)
        self.pool_size = settings.db_pool_size
        self.inline = self.engine.dialect.name == "sqlite"
        self._inline_connection: Connection | None = None
        # PostgreSQL: connections belong to the event loop that opened them, so they are
        # opened on first use and closed with the app (`close`).
        self._pooled: AsyncEngine | None = None
        self._idle: list[AsyncConnection] = []
        self.connections = anyio.CapacityLimiter(self.pool_size)
        self._timers = {write: TRANSACTION_SECONDS.labels("write" if write else "read") for write in (False, True)}

    async def read(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(False, lambda conn: work(conn, *args, **kwargs))

    async def write(self, work: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        alone = getattr(work, "one_statement", False)
        return await self._run(True, lambda conn: work(conn, *args, **kwargs), alone)

    async def _run(self, write: bool, work: Callable[[Connection], T], alone: bool = False) -> T:
        started = time.perf_counter()
        try:
            if self.inline:
                # Inline transactions never overlap (each runs to its end without yielding
                # to the loop), so one long-lived connection serves them all.
                conn = self._inline_connection
                if conn is None or conn.closed or conn.invalidated:
                    conn = self._inline_connection = self.engine.connect()
                return self.transaction(conn, write, work)
            try:
                return await self._pooled_transaction(write, work, alone)
            except DBAPIError as error:
                # A pooled connection the server has since closed (a restart, a terminated
                # backend) fails at its first statement, and the pool then drops all its
                # connections as old as it. A statement failed, so no COMMIT was sent and the
                # server rolled back: the work is run once more, on a new connection. (Not
                # pinging every connection at checkout saves a round trip per transaction.)
                if not error.connection_invalidated or error.statement is None:
                    raise
            return await self._pooled_transaction(write, work, alone)
        finally:
            self._timers[write].observe(time.perf_counter() - started)

    async def _pooled_transaction(self, write: bool, work: Callable[[Connection], T], alone: bool) -> T:
        """Runs the work on one of at most `pool_size` connections, which stay checked out
        of SQLAlchemy's pool and in autocommit mode: a checkout and check-in per transaction
        (events, resetting, switching autocommit on and off) cost more than a short
        transaction's statements. Under READ COMMITTED every statement of a read-only
        transaction takes its own snapshot anyway, so a read or a one-statement write
        needs no BEGIN and COMMIT; a write of several statements sends them itself."""
        if self._pooled is None:
            self._pooled = create_async_engine(
                self.engine.url,
                pool_size=self.pool_size,
                max_overflow=0,
                isolation_level="AUTOCOMMIT",
                json_deserializer=_json_loads,
            )
        # The limiter queues transactions first come, first served, and bounds how many
        # connections are open: one is opened only when none is idle, so all are in use.
        asked = time.perf_counter()
        async with self.connections:
            POOL_WAIT_SECONDS.observe(time.perf_counter() - asked)
            conn = self._idle.pop() if self._idle else await self._pooled.connect()
            try:
                run = self._sent_transaction if write and not alone else self.transaction
                result = await conn.run_sync(run, write, work)
            except Exception:
                if conn.invalidated:
                    # The server closed it, and most likely every connection as old (a restart).
                    await self._close_idle()
                    await conn.close()
                else:
                    self._idle.append(conn)
                raise
            except BaseException:
                # Cancelled mid-statement: the connection's state is unknown.
                with anyio.CancelScope(shield=True):
                    await conn.invalidate()
                    await conn.close()
                raise
            self._idle.append(conn)
            return result

    async def _close_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.invalidate()
            await conn.close()

    async def close(self) -> None:
        if self._pooled is not None:
            idle, self._idle = self._idle, []
            for conn in idle:
                await conn.close()
            await self._pooled.dispose()
            self._pooled = None
        if self._inline_connection is not None:
            self._inline_connection.close()
            self._inline_connection = None
        self.engine.dispose()

    @staticmethod
    def transaction(conn: Connection, write: bool, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one transaction: committed if it returns, rolled back if it raises."""
        conn.execution_options(write=write)
        with conn.begin():
            return work(conn)

    @staticmethod
    def _sent_transaction(conn: Connection, write: bool, work: Callable[[Connection], T]) -> T:
        """`transaction` on a connection in autocommit mode, which sends BEGIN and COMMIT itself."""

        def begun(conn: Connection) -> T:
            conn.exec_driver_sql("BEGIN")
            try:
                result = work(conn)
            except BaseException:
                if not conn.invalidated:
                    conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
            return result

        return Database.transaction(conn, write, begun)

    def migrate(self) -> None:
        """Brings the schema to head; env.py serialises concurrent runs with a database lock."""
        config = Config(str(ALEMBIC_INI))
        config.set_main_option("script_location", str(ALEMBIC_INI.with_name("alembic")))
        config.attributes["engine"] = self.engine
        command.upgrade(config, "head")


async def get_db(request: Request) -> Database:
    return request.app.state.database
