"""Registration and login: password hashing, JWT access tokens and the current user."""

import ctypes
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from jose import JWTError, jwt
from passlib.context import CryptContext
from pydantic import ValidationError
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from config import settings
from database import DatabaseDep
from models import User
from schemas import Token, UserCreate, UserLogin, UserPublic

ALGORITHM = "HS256"
M_MMAP_THRESHOLD = -3  # mallopt option, from glibc's malloc.h

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

router = APIRouter()


# A hash takes tens of milliseconds of CPU and ARGON2_MEMORY_KIB of memory. argon2
# releases the GIL, so hashes run in threads, one per core at most: more would only
# queue for the CPU while each held its memory.
HASHERS = anyio.CapacityLimiter(os.cpu_count() or 1)

# glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB):
# after the first hash, each thread that hashes would keep a freed ARGON2_MEMORY_KIB block
# in its own heap (peak RSS 193 MB in bench/ instead of 148). A fixed threshold keeps the
# hash's memory in mmap, returned to the OS when the hash ends.
if sys.platform == "linux" and hasattr(libc := ctypes.CDLL(None), "mallopt"):
    libc.mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024)


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(password_context.hash, password, limiter=HASHERS)


async def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """(matches, a new hash when the stored one uses outdated parameters)."""
    return await anyio.to_thread.run_sync(password_context.verify_and_update, password, hashed, limiter=HASHERS)


def create_access_token(username: str) -> str:
    now = datetime.now(UTC)
    claims = {"sub": username, "iat": now, "exp": now + timedelta(minutes=settings.access_token_expire_minutes)}
    return jwt.encode(claims, settings.signing_key, algorithm=ALGORITHM)


def token_subject(token: str) -> str | None:
    """The username a valid, unexpired token names, else None."""
    subject, expires = _verified_claims(token)
    return subject if subject and time.time() < expires else None


# A client sends the same token with every request; checking its signature once is enough.
# The expiry is checked on every use, and the user's existence by the caller.
@lru_cache(maxsize=4096)
def _verified_claims(token: str) -> tuple[str | None, float]:
    try:
        claims = jwt.decode(token, settings.signing_key, algorithms=[ALGORITHM])
    except JWTError:
        return None, 0.0
    subject, expires = claims.get("sub"), claims.get("exp")
    if not isinstance(subject, str) or "iat" not in claims or not isinstance(expires, int | float):
        return None, 0.0
    return subject, float(expires)


PUBLIC_COLUMNS = (User.id, User.email, User.username, User.created_at)
USER_BY_NAME = select(*PUBLIC_COLUMNS).where(User.username == bindparam("username"))
LOGIN_BY_NAME = select(User.id, User.hashed_password).where(User.username == bindparam("username"))
TAKEN = select(User.username).where((User.username == bindparam("username")) | (User.email == bindparam("email")))


def find_user(db: Connection, username: str) -> UserPublic | None:
    row = db.execute(USER_BY_NAME, {"username": username}).mappings().one_or_none()
    return UserPublic.model_validate(row) if row else None


def find_login(db: Connection, username: str) -> tuple[int, str] | None:
    row = db.execute(LOGIN_BY_NAME, {"username": username}).one_or_none()
    return (row.id, row.hashed_password) if row else None


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
                email=user.email, username=user.username, hashed_password=hashed_password, created_at=datetime.now(UTC)
            )
            .returning(*PUBLIC_COLUMNS)
        )
        .mappings()
        .one()
    )
    return UserPublic.model_validate(row)


def set_password_hash(db: Connection, user_id: int, hashed_password: str) -> None:
    db.execute(update(User).where(User.id == user_id).values(hashed_password=hashed_password))


def is_valid_login(username: str, password: str) -> bool:
    """Whether these could be a registered user's credentials at all; others never reach the hasher."""
    try:
        UserLogin(username=username, password=password)
    except ValidationError:
        return False
    return True


async def get_current_user(db: DatabaseDep, token: Annotated[str, Depends(oauth2_scheme)]) -> UserPublic:
    username = token_subject(token)
    user = await db.read(find_user, username) if username else None
    if user is None:
        raise CREDENTIALS_ERROR
    return user


CurrentUser = Annotated[UserPublic, Depends(get_current_user)]


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={409: {"description": "Username or email already registered"}},
)
async def register(user: UserCreate, db: DatabaseDep) -> UserPublic:
    if reason := await db.read(conflict, user):
        raise HTTPException(status.HTTP_409_CONFLICT, reason)
    hashed_password = await hash_password(user.password)
    try:
        return await db.write(add_user, user, hashed_password)
    except IntegrityError:
        # Someone took the name or email between the check and the insert.
        raise HTTPException(status.HTTP_409_CONFLICT, "Username or email already registered") from None


@router.post("/token", response_model=Token, responses={401: {"description": "Incorrect username or password"}})
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], db: DatabaseDep) -> Token:
    if not is_valid_login(form.username, form.password):
        raise LOGIN_ERROR
    found = await db.read(find_login, form.username)
    user_id, hashed = found or (None, DUMMY_HASH)
    matches, new_hash = await verify_password(form.password, hashed)
    if user_id is None or not matches:
        raise LOGIN_ERROR
    if new_hash:
        await db.write(set_password_hash, user_id, new_hash)
    return Token(access_token=create_access_token(form.username))


@router.get("/test_token", response_model=UserPublic, responses={401: {"description": "Missing or invalid token"}})
@router.post("/test_token", response_model=UserPublic, responses={401: {"description": "Missing or invalid token"}})
async def test_token(user: CurrentUser) -> UserPublic:
    return user
