"""The errors as /openapi.json documents them and as the service answers them: every
documented 4xx but a 422 is `{"detail": "<why>"}`, every operation says the 400 and 413 of
its body, the 401 (with `WWW-Authenticate`) of its token and the `Retry-After` of its 429;
the answers themselves are JSON in those shapes. The schema is built here, on an app of the
test's own (the suite's app may have built and kept its schema already)."""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import SETTINGS, Account
from main import create_app
from service.errors import DomainError, NotFound
from service.examples import example

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
TOKEN_401 = "Missing, malformed, expired or revoked token"


def documented() -> dict[str, Any]:
    """The schema of an app built in the test itself."""
    return create_app(SETTINGS.model_copy(update={"migrate_on_start": False})).openapi()


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_the_error_body_is_documented_as_an_object_with_a_detail_string() -> None:
    spec = documented()
    assert spec["components"]["schemas"]["Error"] == {
        "title": "Error",
        "type": "object",
        "properties": {"detail": {"title": "Detail", "type": "string"}},
        "required": ["detail"],
    }


def test_every_documented_client_error_but_a_422_is_the_error_body() -> None:
    spec = documented()
    client_errors = 0
    for name, operation in operations(spec):
        for code, response in operation["responses"].items():
            if code.startswith("4") and code != "422":
                assert response["content"] == ERROR_BODY, (name, code)
                client_errors += 1
            else:
                assert response.get("content") != ERROR_BODY, (name, code)
    assert client_errors > 100
    invalid = spec["paths"]["/v1/chats/{chat_id}/messages"]["post"]["responses"]["422"]["content"]
    assert invalid["application/json"]["schema"] == {"$ref": "#/components/schemas/HTTPValidationError"}


def test_every_operation_with_a_body_documents_an_unreadable_and_a_too_large_body() -> None:
    spec = documented()
    with_body = 0
    for name, operation in operations(spec):
        responses = operation["responses"]
        if "requestBody" not in operation:
            assert "413" not in responses, name
            continue
        with_body += 1
        assert responses["413"]["description"], name
        assert responses["400"]["description"], name
    assert with_body > 10
    body_errors = spec["paths"]["/v1/chats/"]["post"]["responses"]
    assert body_errors["400"]["description"] == "The body could not be parsed (not UTF-8, or not a form)"
    assert body_errors["413"]["description"] == "The body is larger than the limit"
    # A route's own description of the same answer is kept.
    assert spec["paths"]["/v1/auth/password"]["post"]["responses"]["400"]["description"] == "Incorrect current password"
    assert spec["paths"]["/v1/chats/import"]["post"]["responses"]["413"]["description"].startswith("The upload")


def test_every_operation_that_needs_a_token_documents_its_401_and_the_challenge() -> None:
    spec = documented()
    challenge = {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}
    for name, operation in operations(spec):
        if operation.get("security"):
            assert operation["responses"]["401"]["headers"] == challenge, name
            assert operation["responses"]["401"]["description"], name
    assert "401" not in spec["paths"]["/v1"]["get"]["responses"]
    assert "401" not in spec["paths"]["/v1/auth/register"]["post"]["responses"]
    assert spec["paths"]["/v1/chats/"]["get"]["responses"]["401"]["description"] == TOKEN_401
    # A route's own description of its 401 is kept.
    assert spec["paths"]["/v1/auth/me"]["get"]["responses"]["401"]["description"] == "Missing or invalid token"


def test_every_rate_limited_operation_documents_retry_after() -> None:
    spec = documented()
    retry_after = {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}}
    throttled = {name for name, operation in operations(spec) if "429" in operation["responses"]}
    assert throttled == {
        "POST /v1/auth/register",
        "POST /v1/auth/token",
        "POST /v1/auth/refresh",
        "DELETE /v1/auth/me",
        "POST /v1/auth/password",
    }
    for name, operation in operations(spec):
        if name in throttled:
            assert operation["responses"]["429"]["headers"] == retry_after, name


# --- the answers: each error's JSON body


def test_a_stale_if_match_is_told_the_current_version_in_the_body_and_the_etag(
    client: TestClient, alice: Account
) -> None:
    chat = client.post("/v1/chats/", json={"title": "Versions"}, headers=alice.headers).json()
    url = f"/v1/chats/{chat['id']}"
    assert client.patch(url, json={"title": "Second"}, headers={**alice.headers, "If-Match": '"1"'}).status_code == 200
    stale = client.patch(url, json={"title": "Third"}, headers={**alice.headers, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json() == {"detail": "Changed since: the current version is 2", "version": 2}
    assert stale.headers["etag"] == '"2"'


def test_a_query_parameter_the_route_refuses_is_a_422_naming_it_like_any_other(
    client: TestClient, alice: Account
) -> None:
    response = client.get("/v1/chats/changes", params={"since": str(2**63)}, headers=alice.headers)
    assert response.status_code == 422
    assert response.json() == {"detail": [{"type": "value_error", "loc": ["query", "since"], "msg": "is not a cursor"}]}


def test_a_domain_error_answers_with_the_status_and_detail_its_class_declares() -> None:
    class Teapot(DomainError, status_code=418, detail="I'm a teapot"): ...

    class EmptyTeapot(Teapot): ...

    class Gone(NotFound, detail="Gone for good"): ...

    app = create_app(SETTINGS.model_copy(update={"migrate_on_start": False}))

    @app.get("/v1/raise/{which}")
    async def raise_one(which: str) -> None:
        raise {"teapot": Teapot, "empty": EmptyTeapot, "gone": Gone}[which]()

    with TestClient(app) as client:
        answers = [client.get(f"/v1/raise/{which}") for which in ("teapot", "empty", "gone")]
    assert [(a.status_code, a.json()) for a in answers] == [
        (418, {"detail": "I'm a teapot"}),
        (418, {"detail": "I'm a teapot"}),
        (404, {"detail": "Gone for good"}),
    ]


def test_an_unexpected_error_is_logged_with_its_request_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(SETTINGS.model_copy(update={"migrate_on_start": False}))

    @app.post("/v1/fails")
    async def fails() -> None:
        raise ZeroDivisionError("the cause")

    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR, "service.errors"):
        assert client.post("/v1/fails").status_code == 500
    (record,) = [r for r in caplog.records if r.name == "service.errors"]
    assert record.getMessage() == "Unexpected error on POST /v1/fails"
    assert record.exc_info is not None and str(record.exc_info[1]) == "the cause"


def test_an_invalid_request_to_an_app_is_a_422_that_echoes_none_of_its_input() -> None:
    app = create_app(SETTINGS.model_copy(update={"migrate_on_start": False}))
    body = {"username": "x", "email": "not an email", "password": "a-secret-password"}
    with TestClient(app) as client:
        response = client.post("/v1/auth/register", json=body)
    assert response.status_code == 422
    assert {tuple(error["loc"]) for error in response.json()["detail"]} >= {("body", "email")}
    assert all("input" not in error for error in response.json()["detail"])
    assert "a-secret-password" not in response.text


def test_a_routes_example_is_documented_under_its_status_and_media_type() -> None:
    """`examples.example` (the chat routes' examples are made with it when `chat` is
    imported) puts the example where /docs shows it: under the status and media type given."""
    app = FastAPI()

    @app.post("/things", status_code=201, responses=example(201, {"id": 1}))
    async def create() -> dict[str, int]:
        return {"id": 1}

    @app.get("/things/export", responses=example(200, "# Things\n", "text/markdown"))
    async def export() -> str:
        return "# Things\n"

    paths = app.openapi()["paths"]
    assert paths["/things"]["post"]["responses"]["201"]["content"]["application/json"]["example"] == {"id": 1}
    assert paths["/things/export"]["get"]["responses"]["200"]["content"]["text/markdown"]["example"] == "# Things\n"
