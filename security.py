"""Password hashing and access tokens (JWT): nothing else, no routes and no SQL.

Both are built from the settings when the app is (main.create_app)."""

import asyncio
import hmac
import os
import secrets
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from hashlib import sha256

from jose import JWTError, jwt
from passlib.context import CryptContext

from config import Settings
from service.rules import is_id

ALGORITHM = "HS256"


class PasswordHasher:
    """argon2id. A hash takes tens of milliseconds of CPU and ARGON2_MEMORY_KIB of memory;
    argon2 releases the GIL, so hashes run in threads, one per core: more would only
    queue for the CPU while each held its memory. Threads of their own, not the shared
    threadpool's: glibc keeps each hashing thread's freed buffer for its next hash (a
    fresh one costs much more time in page faults), and only these few ever hold one."""

    def __init__(self, settings: Settings) -> None:
        self.context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=settings.argon2_memory_kib,
            argon2__time_cost=settings.argon2_time_cost,
            argon2__parallelism=settings.argon2_parallelism,
        )
        self.threads = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="argon2")
        # Verified when the username does not exist, so a login costs the same either way.
        self.dummy_hash = self.context.hash("not a password anyone has")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self.threads, self.context.hash, password)

    async def verify(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """(matches, a new hash when the stored one uses outdated parameters). With no
        stored hash the dummy one is verified, at the same cost, and never matches."""
        verify = self.context.verify_and_update
        loop = asyncio.get_running_loop()
        matches, new_hash = await loop.run_in_executor(self.threads, verify, password, hashed or self.dummy_hash)
        return (matches and hashed is not None), (new_hash if hashed is not None else None)

    def close(self) -> None:
        self.threads.shutdown(wait=False)


def secret_hash(secret: str) -> str:
    """A refresh secret as stored: it is 256 random bits, so a fast hash is as safe as a slow one."""
    return sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def same_hash(stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored, presented)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    generation: int
    session_id: str
    expires: float


class VerifiedTokens:
    """The claims of tokens whose signature was checked, newest use last, bounded by the
    bytes of the tokens it holds: a client sends the same token with every request, and
    checking its signature once is enough. Only valid tokens are kept, so junk sent by
    strangers never stays in memory."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.entries: OrderedDict[str, AccessClaims] = OrderedDict()

    def get(self, token: str) -> AccessClaims | None:
        claims = self.entries.get(token)
        if claims is not None:
            self.entries.move_to_end(token)
        return claims

    def put(self, token: str, claims: AccessClaims) -> None:
        self.entries[token] = claims
        self.bytes += len(token)
        while self.bytes > self.max_bytes:
            oldest, _ = self.entries.popitem(last=False)
            self.bytes -= len(oldest)


class TokenSigner:
    """Signs and checks access tokens."""

    CACHE_BYTES = 4 * 1024 * 1024

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lifetime = timedelta(minutes=settings.access_token_expire_minutes)
        self.issuer = settings.jwt_issuer or None
        self.audience = settings.jwt_audience or None
        self.max_token_bytes = settings.max_token_bytes
        self.options = {
            "require_sub": True,
            "require_iat": True,
            "require_exp": True,
            "require_jti": True,
            "require_iss": bool(self.issuer),
            "require_aud": bool(self.audience),
        }
        self.verified = VerifiedTokens(self.CACHE_BYTES)

    @cached_property
    def key(self) -> str:
        # Resolved at first use: a generated key is a file, made when the app first signs.
        return self.settings.signing_key

    def access_token(self, user_id: int, username: str, generation: int, session_id: str) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": username,
            "uid": user_id,
            "gen": generation,
            "sid": session_id,
            "jti": secrets.token_urlsafe(12),
            "iat": now,
            "exp": now + self.lifetime,
        }
        if self.issuer:
            claims["iss"] = self.issuer
        if self.audience:
            claims["aud"] = self.audience
        return jwt.encode(claims, self.key, algorithm=ALGORITHM)

    def claims(self, token: str) -> AccessClaims | None:
        """What a valid, unexpired access token says, else None. The expiry is checked on
        every use; the user and generation by the caller's query."""
        if len(token) > self.max_token_bytes:
            return None
        claims = self.verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if claims is None:
                return None
            self.verified.put(token, claims)
        return claims if time.time() < claims.expires else None

    def _verify(self, token: str) -> AccessClaims | None:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                options=self.options,
            )
        # Signed claims can still be absurd: an `exp` of 1e400 or Infinity overflows the
        # library's own checks.
        except (JWTError, ValueError, TypeError, OverflowError, ArithmeticError):
            return None
        user_id, generation, session_id, expires = (
            claims.get("uid"),
            claims.get("gen"),
            claims.get("sid"),
            claims["exp"],
        )
        if not (is_id(user_id) and is_id(generation, 0) and isinstance(session_id, str)):
            return None
        if isinstance(expires, bool) or not isinstance(expires, int | float) or not (0 < expires < 2**53):
            return None
        return AccessClaims(user_id, generation, session_id, float(expires))
