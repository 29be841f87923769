"""Runs migrations on the app's engine: the one the app passes in, else one made from the
settings (DATABASE_URL) for the `alembic` command."""

from logging.config import fileConfig

from alembic import context
from config import Settings
from database import make_engine
from models import Base

if context.config.config_file_name and context.config.attributes.get("configure_logger", True):
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

# Any number for pg_advisory_xact_lock, as long as it is always the same one.
MIGRATION_LOCK = 727_465_001


def outside_search_index(name: str | None, _type: str, _parents: object) -> bool:
    """Leaves the search index (made by hand in 0003, kept by triggers) out of `alembic check`."""
    return not (name or "").startswith(("search_", "ix_search_"))


def run_migrations_online() -> None:
    engine = context.config.attributes.get("engine") or make_engine(Settings())
    with engine.connect() as conn:
        # On SQLite "write" begins with BEGIN IMMEDIATE: the lock that serialises workers
        # migrating at start-up. PostgreSQL takes an advisory lock for the same purpose.
        conn.execution_options(write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            context.configure(
                connection=conn,
                target_metadata=Base.metadata,
                render_as_batch=True,
                transactional_ddl=True,
                compare_type=True,
                include_name=outside_search_index,
            )
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Offline (--sql) migrations are not supported; run against a database.")
run_migrations_online()
