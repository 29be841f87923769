"""The OpenAPI schema, completed with the errors every operation can answer, so that
clients (and the fuzzer in CI) can rely on it: every documented 4xx is `{"detail": ...}`."""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

ERROR = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"title": "Detail", "type": "string"}},
    "required": ["detail"],
}
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
# A 422 that is either the route's own `{"detail": "<why>"}` or FastAPI's list naming a bad
# parameter. The list comes first: a generated client tries each shape in turn, and only the
# list's parser refuses the other shape (the string one would take a list as its `detail`).
ERROR_OR_INVALID_CONTENT = {
    "application/json": {
        "schema": {
            "oneOf": [{"$ref": "#/components/schemas/HTTPValidationError"}, {"$ref": "#/components/schemas/Error"}]
        }
    }
}
UNAUTHORIZED = {
    "description": "Missing, malformed, expired or revoked token",
    "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
}
THROTTLED_HEADERS = {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}}
BODY_ERRORS = {
    "400": {"description": "The body could not be parsed (not UTF-8, or not a form)"},
    "413": {"description": "The body is larger than the limit"},
}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path in schema.get("paths", {}).values():
        for method, operation in path.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                for code, response in BODY_ERRORS.items():
                    responses.setdefault(code, dict(response))
            if operation.get("security"):
                responses.setdefault("401", {}).update({**UNAUTHORIZED, **responses.get("401", {})})
                responses["401"]["headers"] = UNAUTHORIZED["headers"]
            if "429" in responses:
                responses["429"]["headers"] = THROTTLED_HEADERS
            for code, response in responses.items():
                if code.startswith("4") and code != "422":
                    response["content"] = ERROR_CONTENT
    return schema


def install(app: FastAPI) -> None:
    """Makes `app.openapi()` return the completed schema."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
