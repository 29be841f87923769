"""Settings, read from the environment and `.env` when the app is built (main.create_app);
nothing else reads os.environ."""

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

MiB = 1024 * 1024
# "10/minute": at most 10 attempts in each window of a minute.
RateLimit = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}/(second|minute|hour|day)$")]


class Settings(BaseSettings):
    # An invalid setting is named in the error, its value never shown (it can be a secret).
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    database_url: str = "sqlite:///./chat.db"
    secret_key: str = ""
    access_token_expire_minutes: int = Field(default=30, ge=1)
    refresh_token_expire_days: int = Field(default=14, ge=1)
    # Put into access tokens, and required of them, when set.
    jwt_issuer: str = ""
    jwt_audience: str = ""
    # "development" allows a SECRET_KEY shorter than 32 bytes, and a generated one beside a
    # database other than SQLite.
    environment: Literal["development", "production"] = "production"

    # Shared by all workers when set (redis://host:6379/0); else counted in each worker.
    redis_url: str = ""
    rate_limit_prefix: str = "chat-api:ratelimit"
    rate_limit_login: RateLimit = "10/minute"
    rate_limit_register: RateLimit = "10/minute"
    rate_limit_refresh: RateLimit = "10/minute"
    rate_limit_password: RateLimit = "10/minute"

    # A chat in the trash is deleted for good after this many days; the sync log keeps its
    # entries as long.
    trash_days: int = Field(default=30, ge=1, le=36500)

    host: str = "0.0.0.0"
    port: int = 8000
    reload: bool = True
    migrate_on_start: bool = True
    cors_origins: Annotated[list[str], NoDecode] = []
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    # networks, comma-separated); empty: the client is the TCP peer.
    trusted_proxies: Annotated[list[str], NoDecode] = []

    max_body_bytes: int = Field(default=2 * MiB, ge=1024)
    # A request's line and headers together; an access token alone.
    max_head_bytes: int = Field(default=32 * 1024, ge=4096)
    max_token_bytes: int = Field(default=4096, ge=512)
    max_content_bytes: int = Field(default=1 * MiB, ge=1)
    # An export: the upload, and what its conversations unpack to.
    max_import_bytes: int = Field(default=200 * MiB, ge=1024)
    # Connections each worker keeps open to PostgreSQL; SQLite work runs inline on the
    # event loop and needs one.
    db_pool_size: int = Field(default=16, ge=1)
    # FULL: a message answered 201 survives a power cut, not only a crash of the server.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"

    # argon2id cost; the defaults are OWASP's minimum (19 MiB, 2 passes, 1 lane).
    argon2_memory_kib: int = Field(default=19456, ge=8192)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)

    # GET /metrics answers only when this is set, and only to `Authorization: Bearer <it>`.
    metrics_token: str = ""
    # Read by prometheus-client itself from the environment: each worker's values go there.
    prometheus_multiproc_dir: str = ""
    # "json": one JSON line per request on standard output.
    log_format: Literal["text", "json"] = "text"

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def strong_secret_key(self) -> "Settings":
        if self.secret_key and len(self.secret_key.encode()) < 32 and self.environment != "development":
            raise ValueError("SECRET_KEY must be at least 32 bytes (or set ENVIRONMENT=development)")
        return self

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @cached_property
    def signing_key(self) -> str:
        """SECRET_KEY, or a key generated once and kept beside the SQLite database."""
        if self.secret_key:
            return self.secret_key
        if not self.is_sqlite and self.environment != "development":
            # A database server is shared by nodes that share no disk: each would generate a
            # key of its own, and a token signed by one would be refused by the others.
            raise RuntimeError(
                "SECRET_KEY must be set when DATABASE_URL is not SQLite, the same on every node "
                "(or set ENVIRONMENT=development to keep a generated key in ./.secret_key)"
            )
        return _stored_key(self._key_file())

    def _key_file(self) -> Path:
        url = make_url(self.database_url)
        if self.is_sqlite and url.database and url.database != ":memory:":
            return Path(url.database).resolve().with_name(Path(url.database).name + ".key")
        return Path(".secret_key").resolve()


def _stored_key(path: Path) -> str:
    """Reads the key file, creating it (mode 0600) if missing.

    The key is written to a private temporary file and linked into place, so workers
    starting at once agree on one key and none reads a half-written file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(48))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip()
