"""Users, their sessions and their API keys: the SQL, and the functions that each run in one transaction
(see database.py). They raise domain errors, never HTTP ones, and return rows or plain
values that the routes shape."""

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, RowMapping, bindparam, delete, func, insert, select, update

from models import ApiKey, AuthSession, SpentRefreshToken, User
from security import new_secret, same_hash, secret_hash
from service.errors import Conflict, EmailTaken, NotAuthenticated, NotFound, UsernameTaken
from service.rules import KEY_PREFIX, KEY_SHOWN, KEYS_MAX

logger = logging.getLogger(__name__)

PUBLIC_COLUMNS = (User.id, User.email, User.username, User.created_at)
USER_BY_TOKEN = select(*PUBLIC_COLUMNS).where(
    User.id == bindparam("user_id"), User.token_generation == bindparam("generation")
)
LOGIN_BY_NAME = select(User.id, User.hashed_password).where(User.username == bindparam("username"))
HASH_BY_ID = select(User.hashed_password).where(User.id == bindparam("user_id"))
TAKEN = select(User.username).where((User.username == bindparam("username")) | (User.email == bindparam("email")))
EMAIL_TAKEN = select(User.id).where(User.email == bindparam("email"), User.id != bindparam("user_id"))
TOKEN_OWNER = select(User.username, User.token_generation).where(User.id == bindparam("user_id"))
SESSION_OWNER = (
    select(User.username).join(AuthSession, AuthSession.user_id == User.id).where(AuthSession.id == bindparam("sid"))
)
SESSION_FOR_REFRESH = (
    select(AuthSession.user_id, AuthSession.token_hash, AuthSession.expires_at)
    .where(AuthSession.id == bindparam("sid"))
    .with_for_update()
)
SPENT = select(SpentRefreshToken.token_hash).where(
    SpentRefreshToken.session_id == bindparam("sid"), SpentRefreshToken.token_hash == bindparam("token_hash")
)
ROTATE = (
    update(AuthSession)
    .where(AuthSession.id == bindparam("sid"))
    .values(token_hash=bindparam("token_hash"), expires_at=bindparam("expires_at"))
)
SPEND = insert(SpentRefreshToken)
END_SESSION = delete(AuthSession).where(AuthSession.id == bindparam("sid"))
END_USER_SESSION = delete(AuthSession).where(
    AuthSession.id == bindparam("sid"), AuthSession.user_id == bindparam("uid")
)
EXPIRED_SESSIONS = delete(AuthSession).where(
    AuthSession.user_id == bindparam("uid"), AuthSession.expires_at < bindparam("now")
)
END_ALL_SESSIONS = delete(AuthSession).where(AuthSession.user_id == bindparam("uid"))
NEXT_GENERATION = update(User).where(User.id == bindparam("uid")).values(token_generation=User.token_generation + 1)
SET_HASH = update(User).where(User.id == bindparam("uid")).values(hashed_password=bindparam("hashed_password"))
SET_EMAIL = update(User).where(User.id == bindparam("uid")).values(email=bindparam("email"))
DELETE_USER = delete(User).where(User.id == bindparam("uid"))

KEY_COLUMNS = (
    ApiKey.id,
    ApiKey.prefix,
    ApiKey.name,
    ApiKey.scopes,
    ApiKey.created_at,
    ApiKey.expires_at,
    ApiKey.last_used_at,
)
KEYS_OF = select(*KEY_COLUMNS).where(ApiKey.owner_id == bindparam("uid")).order_by(ApiKey.id)
KEY_COUNT = select(func.count()).select_from(ApiKey).where(ApiKey.owner_id == bindparam("uid"))
REVOKE_KEY = delete(ApiKey).where(ApiKey.id == bindparam("key_id"), ApiKey.owner_id == bindparam("uid"))
KEY_OWNER = (
    select(
        *PUBLIC_COLUMNS,
        User.token_generation,
        ApiKey.id.label("key_id"),
        ApiKey.scopes,
        ApiKey.expires_at,
        ApiKey.last_used_at,
    )
    .join(ApiKey, ApiKey.owner_id == User.id)
    .where(ApiKey.key_hash == bindparam("key_hash"))
)
KEY_USED = update(ApiKey).where(ApiKey.id == bindparam("key_id")).values(last_used_at=bindparam("now"))


@dataclass(frozen=True, slots=True)
class Owner:
    """The user a request acts for, as its access token (or API key) names them, not yet
    read from the database: the statement that reads or writes for them checks that they
    still exist at this token generation (the hot routes, see deps.chat_owner)."""

    id: int
    generation: int


@dataclass(frozen=True, slots=True)
class Grant:
    """A session's new refresh secret and what an access token for it names."""

    user_id: int
    username: str
    generation: int
    session_id: str
    secret: str


def current_user(conn: Connection, user_id: int, generation: int) -> RowMapping | None:
    return conn.execute(USER_BY_TOKEN, {"user_id": user_id, "generation": generation}).mappings().one_or_none()


def check_current(conn: Connection, owner: Owner) -> None:
    """NotAuthenticated unless the owner's token is still good: after a statement that checks
    it found nothing, this tells a revoked token (401) from a chat that is not theirs (404)."""
    if current_user(conn, owner.id, owner.generation) is None:
        raise NotAuthenticated()


def login_of(conn: Connection, username: str) -> tuple[int | None, str | None]:
    """The user id and password hash registered under `username`, or (None, None)."""
    row = conn.execute(LOGIN_BY_NAME, {"username": username}).one_or_none()
    return (row.id, row.hashed_password) if row else (None, None)


def password_hash(conn: Connection, user_id: int) -> str | None:
    return conn.execute(HASH_BY_ID, {"user_id": user_id}).scalar_one_or_none()


def check_available(conn: Connection, username: str, email: str) -> None:
    taken = conn.execute(TAKEN, {"username": username, "email": email}).scalars().all()
    if username in taken:
        raise UsernameTaken()
    if taken:
        raise EmailTaken()


def add_user(conn: Connection, email: str, username: str, hashed_password: str) -> RowMapping:
    values = {
        "email": email,
        "username": username,
        "hashed_password": hashed_password,
        "created_at": datetime.now(UTC),
        # SQLite gives a new user the id of a deleted newest one: a random first
        # generation keeps that user's old tokens from naming the new one.
        "token_generation": secrets.randbits(62),
    }
    return conn.execute(insert(User).values(values).returning(*PUBLIC_COLUMNS)).mappings().one()


def _grant(conn: Connection, user_id: int, session_id: str, lifetime: timedelta) -> Grant:
    """A new refresh secret for the session, replacing its last one."""
    secret = new_secret()
    expires_at = datetime.now(UTC) + lifetime
    conn.execute(ROTATE, {"sid": session_id, "token_hash": secret_hash(secret), "expires_at": expires_at})
    owner = conn.execute(TOKEN_OWNER, {"user_id": user_id}).one()
    return Grant(user_id, owner.username, owner.token_generation, session_id, secret)


def start_session(conn: Connection, user_id: int, lifetime: timedelta, new_hash: str | None = None) -> Grant:
    """A new session (a login); `new_hash` replaces the stored password hash, if given."""
    if new_hash:
        conn.execute(SET_HASH, {"uid": user_id, "hashed_password": new_hash})
    session_id = secrets.token_urlsafe(16)
    now = datetime.now(UTC)
    # Sessions nobody refreshed until they expired go when their user next logs in.
    conn.execute(EXPIRED_SESSIONS, {"uid": user_id, "now": now})
    conn.execute(
        insert(AuthSession).values(id=session_id, user_id=user_id, token_hash="", created_at=now, expires_at=now)
    )
    return _grant(conn, user_id, session_id, lifetime)


def session_owner(conn: Connection, session_id: str) -> str | None:
    return conn.execute(SESSION_OWNER, {"sid": session_id}).scalar_one_or_none()


def refresh_session(conn: Connection, session_id: str, secret: str, lifetime: timedelta) -> Grant | None:
    """Rotates the session's refresh secret; None if `secret` is not its current one.

    A secret that was issued for this session and already rotated away was used before
    (or stolen, and used by someone else first): the whole session ends, and that is
    committed, not rolled back. A secret never issued is a guess and changes nothing."""
    row = conn.execute(SESSION_FOR_REFRESH, {"sid": session_id}).one_or_none()
    if row is None:
        return None
    presented = secret_hash(secret)
    if not same_hash(row.token_hash, presented):
        if conn.execute(SPENT, {"sid": session_id, "token_hash": presented}).first() is not None:
            logger.warning("Refresh token reused: ended a session of user id %s", row.user_id)
            conn.execute(END_SESSION, {"sid": session_id})
        return None
    if row.expires_at <= datetime.now(UTC):
        conn.execute(END_SESSION, {"sid": session_id})
        return None
    conn.execute(SPEND, {"session_id": session_id, "token_hash": presented})
    return _grant(conn, row.user_id, session_id, lifetime)


def end_session(conn: Connection, user_id: int, session_id: str) -> None:
    conn.execute(END_USER_SESSION, {"sid": session_id, "uid": user_id})


def end_all_sessions(conn: Connection, user_id: int) -> None:
    """Ends every session and makes every access token issued so far invalid."""
    conn.execute(END_ALL_SESSIONS, {"uid": user_id})
    conn.execute(NEXT_GENERATION, {"uid": user_id})


def change_password(conn: Connection, user_id: int, hashed_password: str, lifetime: timedelta) -> Grant:
    """Ends every session and token, then starts this client's new session."""
    conn.execute(SET_HASH, {"uid": user_id, "hashed_password": hashed_password})
    end_all_sessions(conn, user_id)
    return start_session(conn, user_id, lifetime)


def change_email(conn: Connection, user_id: int, email: str) -> None:
    if conn.execute(EMAIL_TAKEN, {"email": email, "user_id": user_id}).first() is not None:
        raise EmailTaken()
    conn.execute(SET_EMAIL, {"uid": user_id, "email": email})


def delete_user(conn: Connection, user_id: int) -> None:
    # Chats, messages, idempotency keys and sessions go with it (ON DELETE CASCADE).
    conn.execute(DELETE_USER, {"uid": user_id})


def _key_row(row: RowMapping) -> dict:
    return {**row, "scopes": row["scopes"].split()}


def add_key(
    conn: Connection, user_id: int, name: str, scopes: list[str], expires_at: datetime | None
) -> tuple[dict, str]:
    """A new API key of the user's: its row, and the key itself (kept only as a hash)."""
    if conn.execute(KEY_COUNT, {"uid": user_id}).scalar_one() >= KEYS_MAX:
        raise Conflict(f"You have {KEYS_MAX} API keys already: revoke one first")
    key = KEY_PREFIX + new_secret()
    values = {
        "owner_id": user_id,
        "name": name,
        "prefix": key[:KEY_SHOWN],
        "key_hash": secret_hash(key),
        "scopes": " ".join(scopes),
        "created_at": datetime.now(UTC),
        "expires_at": expires_at,
    }
    row = conn.execute(insert(ApiKey).values(values).returning(*KEY_COLUMNS)).mappings().one()
    return _key_row(row), key


def keys_of(conn: Connection, user_id: int) -> list[dict]:
    return [_key_row(row) for row in conn.execute(KEYS_OF, {"uid": user_id}).mappings()]


def revoke_key(conn: Connection, user_id: int, key_id: int) -> None:
    if conn.execute(REVOKE_KEY, {"key_id": key_id, "uid": user_id}).rowcount == 0:
        raise NotFound("API key not found")


def key_owner(conn: Connection, key: str) -> RowMapping | None:
    """The user an API key belongs to, with the key's id, scopes, expiry and last use."""
    return conn.execute(KEY_OWNER, {"key_hash": secret_hash(key)}).mappings().one_or_none()


def key_used(conn: Connection, key_id: int, now: datetime) -> None:
    conn.execute(KEY_USED, {"key_id": key_id, "now": now})
