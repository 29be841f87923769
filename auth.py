"""Accounts and sessions: password hashing, JWT access tokens, rotating refresh tokens,
the current user, and the account endpoints."""

import asyncio
import hmac
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from hashlib import sha256
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from jose import JWTError, jwt
from passlib.context import CryptContext
from pydantic import ValidationError
from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

import ratelimit
from config import settings
from database import DatabaseDep
from models import AuthSession, User
from schemas import (
    MAX_ID,
    AccountDeletion,
    AccountUpdate,
    Deleted,
    PasswordChange,
    RefreshRequest,
    Token,
    UserCreate,
    UserLogin,
    UserPublic,
)

ALGORITHM = "HS256"

logger = logging.getLogger(__name__)

password_context = CryptContext(
    schemes=["argon2"],
    argon2__type="ID",
    argon2__memory_cost=settings.argon2_memory_kib,
    argon2__time_cost=settings.argon2_time_cost,
    argon2__parallelism=settings.argon2_parallelism,
)
# Verified when the username does not exist, so a login costs the same either way.
DUMMY_HASH = password_context.hash("not a password anyone has")

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="v1/auth/token")

CREDENTIALS_ERROR = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="Could not validate credentials",
    headers={"WWW-Authenticate": "Bearer"},
)
LOGIN_ERROR = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="Incorrect username or password",
    headers={"WWW-Authenticate": "Bearer"},
)
REFRESH_ERROR = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="Invalid or expired refresh token",
    headers={"WWW-Authenticate": "Bearer"},
)
WRONG_PASSWORD = HTTPException(status.HTTP_400_BAD_REQUEST, "Incorrect password")

UNAUTHORIZED = {401: {"description": "Missing or invalid token"}}
THROTTLED = {429: {"description": "Too many attempts; retry after Retry-After seconds"}}

router = APIRouter()


# A hash takes tens of milliseconds of CPU and ARGON2_MEMORY_KIB of memory. argon2
# releases the GIL, so hashes run in threads, one per core: more would only queue for the
# CPU while each held its memory. Threads of their own, not the shared threadpool's: glibc
# keeps each hashing thread's freed buffer for its next hash (a fresh one would cost 45 %
# more time in page faults), and only these few threads ever hold one.
HASHERS = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="argon2")


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(HASHERS, password_context.hash, password)


async def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """(matches, a new hash when the stored one uses outdated parameters)."""
    verify = password_context.verify_and_update
    return await asyncio.get_running_loop().run_in_executor(HASHERS, verify, password, hashed)


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    generation: int
    session_id: str
    expires: float


def create_access_token(user_id: int, username: str, generation: int, session_id: str) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": username,
        "uid": user_id,
        "gen": generation,
        "sid": session_id,
        "jti": secrets.token_urlsafe(12),
        "iat": now,
        "exp": now + timedelta(minutes=settings.access_token_expire_minutes),
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.signing_key, algorithm=ALGORITHM)


def access_claims(token: str) -> AccessClaims | None:
    """What a valid, unexpired access token says, else None."""
    claims = _verified_claims(token)
    return claims if claims and time.time() < claims.expires else None


DECODE_OPTIONS = {
    "require_sub": True,
    "require_iat": True,
    "require_exp": True,
    "require_jti": True,
    "require_iss": bool(settings.jwt_issuer),
    "require_aud": bool(settings.jwt_audience),
}


def _is_id(value: object, low: int) -> bool:
    return type(value) is int and low <= value <= MAX_ID


# A client sends the same token with every request; checking its signature once is enough.
# The expiry is checked on every use, and the user and generation by the caller's query.
@lru_cache(maxsize=4096)
def _verified_claims(token: str) -> AccessClaims | None:
    try:
        claims = jwt.decode(
            token,
            settings.signing_key,
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer or None,
            audience=settings.jwt_audience or None,
            options=DECODE_OPTIONS,
        )
    except JWTError:
        return None
    user_id, generation, session_id, expires = claims.get("uid"), claims.get("gen"), claims.get("sid"), claims["exp"]
    if not (_is_id(user_id, 1) and _is_id(generation, 0) and isinstance(session_id, str)):
        return None
    if not isinstance(expires, int | float):
        return None
    return AccessClaims(user_id, generation, session_id, float(expires))


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
ROTATE = (
    update(AuthSession)
    .where(AuthSession.id == bindparam("sid"))
    .values(token_hash=bindparam("token_hash"), expires_at=bindparam("expires_at"))
)
END_SESSION = delete(AuthSession).where(AuthSession.id == bindparam("sid"))
END_USER_SESSION = delete(AuthSession).where(
    AuthSession.id == bindparam("sid"), AuthSession.user_id == bindparam("uid")
)
EXPIRED_SESSIONS = delete(AuthSession).where(
    AuthSession.user_id == bindparam("uid"), AuthSession.expires_at < bindparam("now")
)
END_ALL_SESSIONS = delete(AuthSession).where(AuthSession.user_id == bindparam("uid"))
NEXT_GENERATION = update(User).where(User.id == bindparam("uid")).values(token_generation=User.token_generation + 1)


def find_current_user(db: Connection, user_id: int, generation: int) -> UserPublic | None:
    row = db.execute(USER_BY_TOKEN, {"user_id": user_id, "generation": generation}).mappings().one_or_none()
    return UserPublic.model_validate(row) if row else None


def find_login(db: Connection, username: str) -> tuple[int, str] | None:
    row = db.execute(LOGIN_BY_NAME, {"username": username}).one_or_none()
    return (row.id, row.hashed_password) if row else None


def stored_hash(db: Connection, user_id: int) -> str | None:
    return db.execute(HASH_BY_ID, {"user_id": user_id}).scalar_one_or_none()


def conflict(db: Connection, user: UserCreate) -> str | None:
    """Why `user` cannot register, if a username or email is already taken."""
    taken = db.execute(TAKEN, {"username": user.username, "email": user.email}).scalars().all()
    if user.username in taken:
        return "Username already registered"
    return "Email already registered" if taken else None


def add_user(db: Connection, user: UserCreate, hashed_password: str) -> UserPublic:
    row = (
        db.execute(
            insert(User)
            .values(
                email=user.email,
                username=user.username,
                hashed_password=hashed_password,
                created_at=datetime.now(UTC),
                # SQLite gives a new user the id of a deleted newest one: a random first
                # generation keeps that user's old tokens from naming the new one.
                token_generation=secrets.randbits(62),
            )
            .returning(*PUBLIC_COLUMNS)
        )
        .mappings()
        .one()
    )
    return UserPublic.model_validate(row)


def set_password_hash(db: Connection, user_id: int, hashed_password: str) -> None:
    db.execute(update(User).where(User.id == user_id).values(hashed_password=hashed_password))


def _secret_hash(secret: str) -> str:
    # The secret is 256 random bits: a fast hash is as safe for it as a slow one.
    return sha256(secret.encode()).hexdigest()


def _tokens(db: Connection, user_id: int, session_id: str) -> Token:
    """A new refresh token for the session (replacing its last one) and an access token."""
    secret = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(days=settings.refresh_token_expire_days)
    db.execute(ROTATE, {"sid": session_id, "token_hash": _secret_hash(secret), "expires_at": expires_at})
    owner = db.execute(TOKEN_OWNER, {"user_id": user_id}).one()
    access = create_access_token(user_id, owner.username, owner.token_generation, session_id)
    return Token(access_token=access, refresh_token=f"{session_id}.{secret}")


def start_session(db: Connection, user_id: int) -> Token:
    session_id = secrets.token_urlsafe(16)
    now = datetime.now(UTC)
    # Sessions nobody refreshed until they expired go when their user next logs in.
    db.execute(EXPIRED_SESSIONS, {"uid": user_id, "now": now})
    db.execute(
        insert(AuthSession).values(id=session_id, user_id=user_id, token_hash="", created_at=now, expires_at=now)
    )
    return _tokens(db, user_id, session_id)


def login_session(db: Connection, user_id: int, new_hash: str | None) -> Token:
    if new_hash:
        set_password_hash(db, user_id, new_hash)
    return start_session(db, user_id)


def parse_refresh_token(token: str) -> tuple[str, str] | None:
    session_id, dot, secret = token.partition(".")
    return (session_id, secret) if dot and session_id and secret else None


def session_owner(db: Connection, session_id: str) -> str | None:
    return db.execute(SESSION_OWNER, {"sid": session_id}).scalar_one_or_none()


def refresh_session(db: Connection, session_id: str, secret: str) -> Token | None:
    """Rotates the session's refresh token; None if `secret` is not its current one.

    A secret that is not the current one was used already (or stolen and used by someone
    else first): the whole session ends, and that is committed, not rolled back.
    """
    row = db.execute(SESSION_FOR_REFRESH, {"sid": session_id}).one_or_none()
    if row is None:
        return None
    reused = not hmac.compare_digest(row.token_hash, _secret_hash(secret))
    if reused or row.expires_at <= datetime.now(UTC):
        if reused:
            logger.warning("Refresh token reused: ended a session of user id %s", row.user_id)
        db.execute(END_SESSION, {"sid": session_id})
        return None
    return _tokens(db, row.user_id, session_id)


def end_session(db: Connection, user_id: int, session_id: str) -> Deleted:
    db.execute(END_USER_SESSION, {"sid": session_id, "uid": user_id})
    return Deleted()


def end_all_sessions(db: Connection, user_id: int) -> Deleted:
    """Ends every session and makes every access token issued so far invalid."""
    db.execute(END_ALL_SESSIONS, {"uid": user_id})
    db.execute(NEXT_GENERATION, {"uid": user_id})
    return Deleted()


def change_password(db: Connection, user_id: int, hashed_password: str) -> Token:
    set_password_hash(db, user_id, hashed_password)
    end_all_sessions(db, user_id)
    return start_session(db, user_id)


def change_email(db: Connection, user: UserPublic, email: str | None) -> UserPublic | None:
    """The updated user, or None if another user has that email."""
    if email is None or email == user.email:
        return user
    if db.execute(EMAIL_TAKEN, {"email": email, "user_id": user.id}).first() is not None:
        return None
    db.execute(update(User).where(User.id == user.id).values(email=email))
    return user.model_copy(update={"email": email})


def delete_user(db: Connection, user_id: int) -> Deleted:
    # Chats, messages, idempotency keys and sessions go with it (ON DELETE CASCADE).
    db.execute(delete(User).where(User.id == user_id))
    return Deleted()


def is_valid_login(username: str, password: str) -> bool:
    """Whether these could be a registered user's credentials at all; others never reach the hasher."""
    try:
        UserLogin(username=username, password=password)
    except ValidationError:
        return False
    return True


async def get_current_user(db: DatabaseDep, token: Annotated[str, Depends(oauth2_scheme)]) -> UserPublic:
    claims = access_claims(token)
    user = await db.read(find_current_user, claims.user_id, claims.generation) if claims else None
    if user is None:
        raise CREDENTIALS_ERROR
    return user


CurrentUser = Annotated[UserPublic, Depends(get_current_user)]


async def check_password(db: DatabaseDep, user: UserPublic, password: str, request: Request) -> None:
    """400 unless `password` is the user's: for changes that must not ride on a stolen token."""
    await ratelimit.check(ratelimit.PASSWORD, request, user.username)
    hashed = await db.read(stored_hash, user.id) or DUMMY_HASH
    matches, _ = await verify_password(password, hashed)
    if not matches:
        raise WRONG_PASSWORD


def failed_login(username: str, request: Request) -> HTTPException:
    logger.warning("Failed login for username %r from %s", username[:100], ratelimit.client_address(request))
    return LOGIN_ERROR


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={409: {"description": "Username or email already registered"}} | THROTTLED,
)
async def register(user: UserCreate, db: DatabaseDep, request: Request) -> UserPublic:
    await ratelimit.check(ratelimit.REGISTER, request, user.username)
    if reason := await db.read(conflict, user):
        raise HTTPException(status.HTTP_409_CONFLICT, reason)
    hashed_password = await hash_password(user.password)
    try:
        return await db.write(add_user, user, hashed_password)
    except IntegrityError:
        # Someone took the name or email between the check and the insert.
        raise HTTPException(status.HTTP_409_CONFLICT, "Username or email already registered") from None


@dataclass(frozen=True)
class LoginForm:
    username: str
    password: str


async def login_form(
    username: Annotated[str | None, Form()] = None, password: Annotated[str | None, Form()] = None
) -> LoginForm:
    """The OAuth2 password form. A form without one of the fields, or with it empty, is a
    login that cannot succeed: the same 401 as a wrong password. Only no form at all is a 422."""
    if username is None and password is None:
        missing = [
            {"type": "missing", "loc": ("body", name), "msg": "Field required"} for name in ("username", "password")
        ]
        raise RequestValidationError(missing)
    return LoginForm(username or "", password or "")


@router.post(
    "/token", response_model=Token, responses={401: {"description": "Incorrect username or password"}} | THROTTLED
)
async def login(form: Annotated[LoginForm, Depends(login_form)], db: DatabaseDep, request: Request) -> Token:
    """Log in: an access token for `Authorization: Bearer`, and a refresh token for /refresh."""
    await ratelimit.check(ratelimit.LOGIN, request, form.username)
    if not is_valid_login(form.username, form.password):
        raise failed_login(form.username, request)
    found = await db.read(find_login, form.username)
    user_id, hashed = found or (None, DUMMY_HASH)
    matches, new_hash = await verify_password(form.password, hashed)
    if user_id is None or not matches:
        raise failed_login(form.username, request)
    return await db.write(login_session, user_id, new_hash)


@router.post(
    "/refresh",
    response_model=Token,
    responses={401: {"description": "Invalid, expired or already used refresh token"}} | THROTTLED,
)
async def refresh(body: RefreshRequest, db: DatabaseDep, request: Request) -> Token:
    """Trade a refresh token for new tokens. Each refresh token works once: using one
    again ends its session, for whoever holds the newer token too."""
    parsed = parse_refresh_token(body.refresh_token)
    owner = await db.read(session_owner, parsed[0]) if parsed else None
    await ratelimit.check(ratelimit.REFRESH, request, owner)
    tokens = await db.write(refresh_session, *parsed) if parsed and owner else None
    if tokens is None:
        raise REFRESH_ERROR
    return tokens


@router.post("/logout", response_model=Deleted, responses=UNAUTHORIZED)
async def logout(user: CurrentUser, db: DatabaseDep, token: Annotated[str, Depends(oauth2_scheme)]) -> Deleted:
    """End this session: its refresh token stops working (the access token expires on its own)."""
    claims = access_claims(token)
    if claims is None:
        raise CREDENTIALS_ERROR
    return await db.write(end_session, user.id, claims.session_id)


@router.post("/logout_all", response_model=Deleted, responses=UNAUTHORIZED)
async def logout_all(user: CurrentUser, db: DatabaseDep) -> Deleted:
    """End every session of yours, and make every access token issued so far invalid at once."""
    return await db.write(end_all_sessions, user.id)


@router.get("/me", response_model=UserPublic, responses=UNAUTHORIZED)
async def read_me(user: CurrentUser) -> UserPublic:
    return user


@router.patch("/me", response_model=UserPublic, responses=UNAUTHORIZED | {409: {"description": "Email taken"}})
async def update_me(changes: AccountUpdate, user: CurrentUser, db: DatabaseDep) -> UserPublic:
    """Change your email (unique regardless of case)."""
    try:
        updated = await db.write(change_email, user, changes.email)
    except IntegrityError:
        updated = None
    if updated is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "Email already registered")
    return updated


@router.delete(
    "/me",
    response_model=Deleted,
    responses=UNAUTHORIZED | THROTTLED | {400: {"description": "Incorrect password"}},
)
async def delete_me(body: AccountDeletion, user: CurrentUser, db: DatabaseDep, request: Request) -> Deleted:
    """Delete your account with all your chats and messages; your tokens stop working."""
    await check_password(db, user, body.password, request)
    return await db.write(delete_user, user.id)


@router.post(
    "/password",
    response_model=Token,
    responses=UNAUTHORIZED | THROTTLED | {400: {"description": "Incorrect current password"}},
)
async def password(body: PasswordChange, user: CurrentUser, db: DatabaseDep, request: Request) -> Token:
    """Change your password. Every session and token of yours ends; the answer holds new ones."""
    await check_password(db, user, body.current_password, request)
    hashed_password = await hash_password(body.new_password)
    return await db.write(change_password, user.id, hashed_password)


@router.get("/test_token", response_model=UserPublic, responses=UNAUTHORIZED)
@router.post("/test_token", response_model=UserPublic, responses=UNAUTHORIZED)
async def test_token(user: CurrentUser) -> UserPublic:
    return user
