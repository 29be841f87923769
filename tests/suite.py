"""The suite's database and app, made once per process.

pytest imports `conftest` anew for each session it runs in one process, but a test module it
has imported stays imported, holding what it took from the first `conftest`. mutmut's runner
is such a process: it collects the tests once, then runs each mutant's tests in a session of
a forked copy. So what must be one per process (the database, the app over it, the settings
that signed its tokens) lives here, in a module that is imported once, and `conftest` hands
it on."""

import atexit
import os
import secrets
import shutil
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from config import Settings
from main import create_app

WORK_DIR = Path(tempfile.mkdtemp(prefix="chat-tests-"))


def fresh_postgres_database(server_url: str) -> str:
    url = make_url(server_url)
    name = f"chat_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(server_url: str, url: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


SERVER_URL = os.environ.get("TEST_DATABASE_URL")
DATABASE_URL = fresh_postgres_database(SERVER_URL) if SERVER_URL else f"sqlite:///{WORK_DIR / 'test.db'}"
# The app as deployed for one browser front end on another origin (see test_web.py).
FRONT_END_ORIGIN = "http://front.example:3000"
# The suite registers and logs in hundreds of users from one address; the limits
# themselves are tested with low ones in test_rate_limits.py.
UNLIMITED = "100000/minute"
SETTINGS = Settings(
    _env_file=None,
    database_url=DATABASE_URL,
    secret_key=secrets.token_urlsafe(48),
    cors_origins=[FRONT_END_ORIGIN],
    rate_limit_login=UNLIMITED,
    rate_limit_register=UNLIMITED,
    rate_limit_refresh=UNLIMITED,
    rate_limit_password=UNLIMITED,
    redis_url="",
)
app = create_app(SETTINGS)
# The tests' own reads and writes, on the app's engine. On SQLite each begins as a writer
# (BEGIN IMMEDIATE): a deferred transaction that turns into a writer fails at once, without
# waiting, when another process has written since it began (mutmut's sessions run side by side).
ENGINE = app.state.database.engine.execution_options(write=True)

# The processes forked from this one (mutmut's) leave the database to it.
CREATOR = os.getpid()


@atexit.register
def _remove_the_database() -> None:
    if os.getpid() != CREATOR:
        return
    app.state.database.engine.dispose()
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    if SERVER_URL:
        drop_postgres_database(SERVER_URL, DATABASE_URL)
