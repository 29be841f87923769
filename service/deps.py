"""The routes' dependencies, declared once as types: `db: DatabaseDep`, `user: CurrentUser`
(an access token), `user: ChatUser` (an access token or an API key within its scopes),
`owner: ChatOwner` (the same, with the user's row left for the route's statement to check)."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import RowMapping

import account_store
from account_store import Owner
from database import Database, get_db
from schemas import UserPublic
from security import AccessClaims, PasswordHasher, TokenSigner
from service.errors import Forbidden, NotAuthenticated
from service.ratelimit import RateLimiter
from service.rules import KEY_PREFIX

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="v1/auth/token")
Token = Annotated[str, Depends(oauth2_scheme)]

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


async def access_claims(signer: SignerDep, token: Token) -> AccessClaims:
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


async def key_user(request: Request, db: Database, signer: TokenSigner, token: str) -> RowMapping:
    """The user of an API key, with their token generation: a key may read with the `read`
    scope, and needs `write` for anything else."""
    key = await db.read(account_store.key_owner, token) if len(token) <= signer.max_token_bytes else None
    now = datetime.now(UTC)
    if key is None or (key["expires_at"] is not None and key["expires_at"] <= now):
        raise NotAuthenticated("Invalid, expired or revoked API key")
    if request.method not in READING and "write" not in key["scopes"].split():
        raise Forbidden("This API key may only read")
    if key["last_used_at"] is None or now - key["last_used_at"] >= KEY_USE_RESOLUTION:
        await db.write(account_store.key_used, key["key_id"], now)
    request.state.user_id = key["id"]  # for the request log
    return key


async def chat_user(request: Request, db: DatabaseDep, signer: SignerDep, token: Token) -> UserPublic:
    """The user of an access token, or of an API key (`key_user`)."""
    if not token.startswith(KEY_PREFIX):
        return await current_user(db, await access_claims(signer, token), request)
    return UserPublic.model_validate(await key_user(request, db, signer, token))


async def chat_owner(request: Request, db: DatabaseDep, signer: SignerDep, token: Token) -> Owner:
    """`chat_user` for the hot routes: an access token's user is not read here, the route's
    one statement checks it (a request then costs one round trip, not two)."""
    if token.startswith(KEY_PREFIX):
        key = await key_user(request, db, signer, token)
        return Owner(key["id"], key["token_generation"])
    claims = await access_claims(signer, token)
    request.state.user_id = claims.user_id  # for the request log: signed by us, if perhaps revoked
    return Owner(claims.user_id, claims.generation)


ChatUser = Annotated[UserPublic, Depends(chat_user)]
ChatOwner = Annotated[Owner, Depends(chat_owner)]
