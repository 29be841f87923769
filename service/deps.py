"""The routes' dependencies, declared once as types: `db: DatabaseDep`, `user: CurrentUser`."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

import account_store
from database import Database, get_db
from schemas import UserPublic
from security import AccessClaims, PasswordHasher, TokenSigner
from service.errors import NotAuthenticated
from service.ratelimit import RateLimiter

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
