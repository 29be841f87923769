"""Domain errors, raised below the routes, and the one place that maps them (and every
other error) to an HTTP answer: always JSON `{"detail": ...}`, never an echo of much input."""

import json
import logging
from typing import Any

from fastapi import FastAPI, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

logger = logging.getLogger(__name__)

# A rejected value named in an error (an object key, say) is cut to this many characters.
EXCERPT_CHARS = 64
MESSAGE_CHARS = 500


class DomainError(Exception):
    """A request the service refuses: the HTTP status and the `detail` it answers with; a
    subclass names its own, `class ChatNotFound(NotFound, detail="Chat not found")`."""

    status_code = status.HTTP_400_BAD_REQUEST
    detail = "Bad request"

    def __init_subclass__(cls, status_code: int | None = None, detail: str | None = None) -> None:
        super().__init_subclass__()
        cls.status_code = status_code or cls.status_code
        cls.detail = detail or cls.detail

    def __init__(self, detail: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail
        self.headers = headers


class NotAuthenticated(DomainError, status_code=status.HTTP_401_UNAUTHORIZED, detail="Could not validate credentials"):
    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, {"WWW-Authenticate": "Bearer"})


class LoginFailed(NotAuthenticated, detail="Incorrect username or password"): ...


class RefreshFailed(NotAuthenticated, detail="Invalid or expired refresh token"): ...


class WrongPassword(DomainError, detail="Incorrect password"): ...


class ConfirmationMissing(DomainError, detail="Add ?confirm=true to delete all of your chats"): ...


class Forbidden(DomainError, status_code=status.HTTP_403_FORBIDDEN): ...


class NotFound(DomainError, status_code=status.HTTP_404_NOT_FOUND): ...


class ChatNotFound(NotFound, detail="Chat not found"): ...


class MessageNotFound(NotFound, detail="Message not found"): ...


class Conflict(DomainError, status_code=status.HTTP_409_CONFLICT): ...


class UsernameTaken(Conflict, detail="Username already registered"): ...


class EmailTaken(Conflict, detail="Email already registered"): ...


class IdempotencyConflict(Conflict, detail="This Idempotency-Key was already used for another request"): ...


class TooLarge(DomainError, status_code=status.HTTP_413_CONTENT_TOO_LARGE): ...


class NotAnExport(DomainError, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT): ...


class CursorExpired(
    DomainError,
    status_code=status.HTTP_410_GONE,
    detail="This cursor is older than the change log kept (or not one of yours): reload, then sync from a new cursor",
): ...


class VersionMismatch(DomainError, status_code=status.HTTP_412_PRECONDITION_FAILED):
    """If-Match named a version that is no longer the current one: the answer carries it."""

    def __init__(self, version: int) -> None:
        super().__init__(f"Changed since: the current version is {version}", {"ETag": f'"{version}"'})
        self.version = version


class Unprocessable(DomainError, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT):
    """Input that is well-formed but names what is not there (a parent not in the chat):
    a 422 in the shape of every other one, naming the input."""

    def __init__(self, where: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.where = where


class RateLimited(DomainError, status_code=status.HTTP_429_TOO_MANY_REQUESTS):
    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(
            f"Too many {what} attempts; try again in {retry_after} seconds", {"Retry-After": str(retry_after)}
        )


def invalid(where: tuple[str | int, ...], message: str) -> RequestValidationError:
    """A 422 in the shape of every other one: a list of errors naming the input."""
    return RequestValidationError([{"type": "value_error", "loc": where, "msg": message}])


def _excerpt(value: Any, chars: int = EXCERPT_CHARS) -> Any:
    if isinstance(value, str) and len(value) > chars:
        return value[:chars] + "…"
    return value


def _validation_errors(errors: Any) -> list[dict[str, Any]]:
    # FastAPI's default echoes every rejected input back, which can be a password or a
    # megabyte of content; an object key named in `loc` can be as long. Where and why
    # stay, each cut to an excerpt.
    return [
        {
            **{key: value for key, value in error.items() if key not in ("input", "loc", "msg")},
            "loc": [_excerpt(part) for part in error.get("loc", ())],
            "msg": _excerpt(error.get("msg"), MESSAGE_CHARS),
        }
        for error in errors
    ]


async def domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if isinstance(exc, Unprocessable):
        detail = [{"type": "value_error", "loc": list(exc.where), "msg": exc.detail}]
        return JSONResponse({"detail": detail}, exc.status_code)
    if isinstance(exc, VersionMismatch):
        return JSONResponse({"detail": exc.detail, "version": exc.version}, exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


async def validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # ASCII-escaped JSON carries any character, lone surrogates included.
    body = json.dumps({"detail": _validation_errors(exc.errors())}, default=str)
    return Response(body, status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


# The answer to an unexpected error, wherever it is caught: it tells nothing of the error.
UNEXPECTED = {"detail": "Internal server error"}
UNEXPECTED_BODY = json.dumps(UNEXPECTED).encode()
UNEXPECTED_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]


async def unexpected_error(request: Request, exc: Exception) -> Response:
    # Answered outside every middleware (Starlette's outermost layer), so it carries its
    # own headers; the traceback goes to the log, never to the client.
    logger.error("Unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    headers = {name.decode(): value.decode() for name, value in UNEXPECTED_HEADERS}
    return JSONResponse(UNEXPECTED, 500, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
