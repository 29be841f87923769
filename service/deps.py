"""The routes' dependencies, declared once as types: `db: DatabaseDep`, `user: CurrentUser`
(an access token), `user: ChatUser` (an access token or an API key within its scopes)."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

import account_store
from database import Database, get_db
from schemas import UserPublic
from security import AccessClaims, PasswordHasher, TokenSigner
from service.errors import Forbidden, NotAuthenticated
from service.ratelimit import RateLimiter
from service.rules import KEY_PREFIX

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="v1/auth/token")

DatabaseDep = Annotated[Database, Depends(get_db)]


async def get_signer(request: Request) -> TokenSigner:
    return request.app.state.signer


async def get_hasher(request: Request) -> PasswordHasher:
    return request.app.state.hasher


async def get_limiter(request: Request) -> RateLimiter:
    return request.app.state.limiter


SignerDep = Annotated[TokenSigner, Depends(get_signer)]
HasherDep = Annotated[PasswordHasher, Depends(get_hasher)]
LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]


async def access_claims(signer: SignerDep, token: Annotated[str, Depends(oauth2_scheme)]) -> AccessClaims:
    claims = signer.claims(token)
    if claims is None:
        raise NotAuthenticated()
    return claims


ClaimsDep = Annotated[AccessClaims, Depends(access_claims)]


async def current_user(db: DatabaseDep, claims: ClaimsDep, request: Request) -> UserPublic:
    user = await db.read(account_store.current_user, claims.user_id, claims.generation)
    if user is None:
        raise NotAuthenticated()
    request.state.user_id = claims.user_id  # for the request log
    return UserPublic.model_validate(user)


CurrentUser = Annotated[UserPublic, Depends(current_user)]

# A key's last use is written at most this often: not a write with every request.
KEY_USE_RESOLUTION = timedelta(minutes=1)
READING = frozenset({"GET", "HEAD"})


async def chat_user(
    request: Request, db: DatabaseDep, signer: SignerDep, token: Annotated[str, Depends(oauth2_scheme)]
) -> UserPublic:
    """The user of an access token, or of an API key: a key may read with the `read`
    scope, and needs `write` for anything else."""
    if not token.startswith(KEY_PREFIX):
        return await current_user(db, await access_claims(signer, token), request)
    key = await db.read(account_store.key_owner, token) if len(token) <= signer.max_token_bytes else None
    now = datetime.now(UTC)
    if key is None or (key["expires_at"] is not None and key["expires_at"] <= now):
        raise NotAuthenticated("Invalid, expired or revoked API key")
    if request.method not in READING and "write" not in key["scopes"].split():
        raise Forbidden("This API key may only read")
    if key["last_used_at"] is None or now - key["last_used_at"] >= KEY_USE_RESOLUTION:
        await db.write(account_store.key_used, key["key_id"], now)
    request.state.user_id = key["id"]  # for the request log
    return UserPublic.model_validate(key)


ChatUser = Annotated[UserPublic, Depends(chat_user)]
