"""The account endpoints under /v1/auth: register, log in, refresh, log out, the current
user, password change, account deletion and API keys. Routes only: the SQL is in account_store.py,
hashing and tokens in security.py."""

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

import account_store
from account_store import Grant
from schemas import (
    AccountDeletion,
    AccountUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    Deleted,
    PasswordChange,
    RefreshRequest,
    Token,
    UserCreate,
    UserLogin,
    UserPublic,
)
from schemas import Id as PathId
from security import TokenSigner
from service.deps import ClaimsDep, CurrentUser, DatabaseDep, HasherDep, LimiterDep, SignerDep
from service.errors import Conflict, EmailTaken, LoginFailed, RefreshFailed, WrongPassword
from service.metrics import LOGIN_FAILURES
from service.ratelimit import client_address

logger = logging.getLogger(__name__)

UNAUTHORIZED = {401: {"description": "Missing or invalid token"}}
THROTTLED = {429: {"description": "Too many attempts; retry after Retry-After seconds"}}
# A refresh token as issued: `<session id>.<secret>`, both URL-safe base64.
REFRESH_TOKEN = re.compile(r"([A-Za-z0-9_-]{1,32})\.([A-Za-z0-9_-]{1,128})")

router = APIRouter()


async def refresh_lifetime(request: Request) -> timedelta:
    return timedelta(days=request.app.state.settings.refresh_token_expire_days)


RefreshLifetime = Annotated[timedelta, Depends(refresh_lifetime)]


def tokens(signer: TokenSigner, grant: Grant) -> Token:
    access = signer.access_token(grant.user_id, grant.username, grant.generation, grant.session_id)
    return Token(access_token=access, refresh_token=f"{grant.session_id}.{grant.secret}")


def is_valid_login(username: str, password: str) -> bool:
    """Whether these could be a registered user's credentials at all; others never reach the database."""
    try:
        UserLogin(username=username, password=password)
    except ValidationError:
        return False
    return True


class PasswordCheck:
    """The current user, once the password they sent is checked: for changes that must not
    ride on a stolen token (WrongPassword otherwise)."""

    def __init__(
        self, user: CurrentUser, db: DatabaseDep, hasher: HasherDep, limiter: LimiterDep, request: Request
    ) -> None:
        self.user, self.db, self.hasher, self.limiter, self.request = user, db, hasher, limiter, request

    async def __call__(self, password: str) -> UserPublic:
        await self.limiter.check(self.limiter.password, self.request, self.user.username)
        matches, _ = await self.hasher.verify(password, await self.db.read(account_store.password_hash, self.user.id))
        if not matches:
            raise WrongPassword()
        return self.user


PasswordChecked = Annotated[PasswordCheck, Depends()]


def failed_login(username: str, request: Request) -> LoginFailed:
    LOGIN_FAILURES.inc()
    logger.warning("Failed login for username %r from %s", username[:100], client_address(request))
    return LoginFailed()


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={409: {"description": "Username or email already registered"}} | THROTTLED,
)
async def register(
    user: UserCreate, db: DatabaseDep, hasher: HasherDep, limiter: LimiterDep, request: Request
) -> UserPublic:
    await limiter.check(limiter.register, request, user.username)
    await db.read(account_store.check_available, user.username, user.email)
    hashed_password = await hasher.hash(user.password)
    try:
        created = await db.write(account_store.add_user, user.email, user.username, hashed_password)
    except IntegrityError:
        # Someone took the name or email between the check and the insert.
        raise Conflict("Username or email already registered") from None
    return UserPublic.model_validate(created)


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
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body", name), "msg": "Field required"} for name in ("username", "password")]
        )
    return LoginForm(username or "", password or "")


@router.post(
    "/token", response_model=Token, responses={401: {"description": "Incorrect username or password"}} | THROTTLED
)
async def login(
    form: Annotated[LoginForm, Depends(login_form)],
    db: DatabaseDep,
    hasher: HasherDep,
    signer: SignerDep,
    limiter: LimiterDep,
    lifetime: RefreshLifetime,
    request: Request,
) -> Token:
    """Log in: an access token for `Authorization: Bearer`, and a refresh token for /refresh."""
    await limiter.check(limiter.login, request, form.username)
    if not is_valid_login(form.username, form.password):
        raise failed_login(form.username, request)
    user_id, hashed = await db.read(account_store.login_of, form.username)
    matches, new_hash = await hasher.verify(form.password, hashed)
    if user_id is None or not matches:
        raise failed_login(form.username, request)
    return tokens(signer, await db.write(account_store.start_session, user_id, lifetime, new_hash))


@router.post(
    "/refresh",
    response_model=Token,
    responses={401: {"description": "Invalid, expired or already used refresh token"}} | THROTTLED,
)
async def refresh(
    body: RefreshRequest,
    db: DatabaseDep,
    signer: SignerDep,
    limiter: LimiterDep,
    lifetime: RefreshLifetime,
    request: Request,
) -> Token:
    """Trade a refresh token for new tokens. Each refresh token works once: using one
    again ends its session, for whoever holds the newer token too."""
    parsed = REFRESH_TOKEN.fullmatch(body.refresh_token)
    owner = await db.read(account_store.session_owner, parsed[1]) if parsed else None
    await limiter.check(limiter.refresh, request, owner)
    grant = await db.write(account_store.refresh_session, parsed[1], parsed[2], lifetime) if parsed and owner else None
    if grant is None:
        raise RefreshFailed()
    return tokens(signer, grant)


@router.post("/logout", response_model=Deleted, responses=UNAUTHORIZED)
async def logout(user: CurrentUser, claims: ClaimsDep, db: DatabaseDep) -> Deleted:
    """End this session: its refresh token stops working (the access token expires on its own)."""
    await db.write(account_store.end_session, user.id, claims.session_id)
    return Deleted()


@router.post("/logout_all", response_model=Deleted, responses=UNAUTHORIZED)
async def logout_all(user: CurrentUser, db: DatabaseDep) -> Deleted:
    """End every session of yours, and make every access token issued so far invalid at once."""
    await db.write(account_store.end_all_sessions, user.id)
    return Deleted()


@router.get("/me", response_model=UserPublic, responses=UNAUTHORIZED)
async def read_me(user: CurrentUser) -> UserPublic:
    return user


@router.patch("/me", response_model=UserPublic, responses=UNAUTHORIZED | {409: {"description": "Email taken"}})
async def update_me(changes: AccountUpdate, user: CurrentUser, db: DatabaseDep) -> UserPublic:
    """Change your email (unique regardless of case)."""
    if changes.email is None or changes.email == user.email:
        return user
    try:
        await db.write(account_store.change_email, user.id, changes.email)
    except IntegrityError:
        raise EmailTaken() from None
    return user.model_copy(update={"email": changes.email})


@router.delete(
    "/me",
    response_model=Deleted,
    responses=UNAUTHORIZED | THROTTLED | {400: {"description": "Incorrect password"}},
)
async def delete_me(body: AccountDeletion, check: PasswordChecked, db: DatabaseDep) -> Deleted:
    """Delete your account with all your chats and messages; your tokens stop working."""
    user = await check(body.password)
    await db.write(account_store.delete_user, user.id)
    return Deleted()


@router.post(
    "/password",
    response_model=Token,
    responses=UNAUTHORIZED | THROTTLED | {400: {"description": "Incorrect current password"}},
)
async def password(
    body: PasswordChange,
    check: PasswordChecked,
    db: DatabaseDep,
    hasher: HasherDep,
    signer: SignerDep,
    lifetime: RefreshLifetime,
) -> Token:
    """Change your password. Every session and token of yours ends; the answer holds new ones."""
    user = await check(body.current_password)
    hashed_password = await hasher.hash(body.new_password)
    return tokens(signer, await db.write(account_store.change_password, user.id, hashed_password, lifetime))


@router.get("/test_token", response_model=UserPublic, responses=UNAUTHORIZED)
@router.post("/test_token", response_model=UserPublic, responses=UNAUTHORIZED)
async def test_token(user: CurrentUser) -> UserPublic:
    return user


# API keys are managed with an access token only: a key can neither make nor list keys.
@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=UNAUTHORIZED | {409: {"description": "Too many keys"}},
)
async def create_key(body: ApiKeyCreate, user: CurrentUser, db: DatabaseDep) -> ApiKeyCreated:
    """A personal API key for `Authorization: Bearer` on the chat endpoints, within its
    scopes: `read`, or `read` and `write`. The answer's `key` is shown this once."""
    row, key = await db.write(account_store.add_key, user.id, body.name, body.scopes, body.expires_at)
    return ApiKeyCreated(**row, key=key)


@router.get("/keys", response_model=list[ApiKeyPublic], responses=UNAUTHORIZED)
async def list_keys(user: CurrentUser, db: DatabaseDep) -> list[ApiKeyPublic]:
    """Your API keys (never the keys themselves)."""
    return [ApiKeyPublic(**row) for row in await db.read(account_store.keys_of, user.id)]


@router.delete(
    "/keys/{key_id}", response_model=Deleted, responses=UNAUTHORIZED | {404: {"description": "No such key of yours"}}
)
async def revoke_key(key_id: PathId, user: CurrentUser, db: DatabaseDep) -> Deleted:
    """Revoke a key: it stops working at once."""
    await db.write(account_store.revoke_key, user.id, key_id)
    return Deleted()
