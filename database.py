"""The engine, the transaction runner routes use, and start-up migrations.

Routes are `async def` and hand their database work, a plain function taking a
`Connection`, to `Database.read` or `Database.write`: one transaction per call. SQLite
is in-process and answers in microseconds, so that work runs inline on the event loop.
PostgreSQL's runs on the loop too, through psycopg's asyncio connections
(`AsyncConnection.run_sync`): each round trip is awaited, so it never blocks the loop,
and no request pays for a hop to a thread and back.
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
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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
        # PostgreSQL: connections belong to the event loop that opened them, so the pool
        # is made on first use and closed with the app (`close`).
        self._pooled: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None
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
        if self._pooled is None:
            url = self.engine.url
            self._pooled = create_async_engine(
                url, pool_size=self.pool_size, max_overflow=0, json_deserializer=_json_loads
            )
            # Under READ COMMITTED every statement of a read-only transaction takes its
            # own snapshot anyway: BEGIN and COMMIT around a read would be two round
            # trips that change nothing it sees.
            self._reader = self._pooled.execution_options(isolation_level="AUTOCOMMIT")
        # The limiter queues transactions first come, first served; the pool's own queue
        # lets a newcomer take a connection a waiter was woken for, which starves some.
        asked = time.perf_counter()
        async with self.connections:
            POOL_WAIT_SECONDS.observe(time.perf_counter() - asked)
            async with (self._pooled if write and not alone else self._reader).connect() as conn:
                return await conn.run_sync(self.transaction, write, work)

    async def close(self) -> None:
        if self._pooled is not None:
            await self._pooled.dispose()
            self._pooled = self._reader = None
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

    def migrate(self) -> None:
        """Brings the schema to head; env.py serialises concurrent runs with a database lock."""
        config = Config(str(ALEMBIC_INI))
        config.set_main_option("script_location", str(ALEMBIC_INI.with_name("alembic")))
        config.attributes["engine"] = self.engine
        command.upgrade(config, "head")


async def get_db(request: Request) -> Database:
    return request.app.state.database
