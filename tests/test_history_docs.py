"""The OpenAPI document of the chat routes: each has a response model and examples, and the
examples are true: the request examples work, the response examples are valid responses."""

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from chat import router
from conftest import Account
from service import examples

CHAT_ROUTES = [route for route in router.routes if isinstance(route, APIRoute)]
assert len(CHAT_ROUTES) >= 15


def operation(client: TestClient, route: APIRoute) -> tuple[str, dict]:
    spec = client.get("/openapi.json").json()
    (method,) = route.methods
    return method, spec["paths"]["/v1/chats" + route.path][method.lower()]


def shown_examples(media: dict) -> list:
    return [media["example"]] if "example" in media else [e["value"] for e in media.get("examples", {}).values()]


@pytest.mark.parametrize("route", CHAT_ROUTES, ids=lambda r: f"{sorted(r.methods)[0]} {r.path}")
def test_every_chat_route_documents_its_response_with_a_model_and_a_valid_example(
    client: TestClient, route: APIRoute
) -> None:
    _method, documented = operation(client, route)
    success = documented["responses"][str(route.status_code or 200)]
    media = success["content"]["application/json"]
    assert "$ref" in media["schema"] or "items" in media["schema"] or "anyOf" in media["schema"]
    assert route.response_model is not None
    shown = shown_examples(media)
    assert shown
    for example in shown:
        TypeAdapter(route.response_model).validate_python(example)
    assert "404" in documented["responses"] or "{chat_id}" not in route.path


@pytest.mark.parametrize("route", CHAT_ROUTES, ids=lambda r: f"{sorted(r.methods)[0]} {r.path}")
def test_every_json_request_body_has_an_example(client: TestClient, route: APIRoute) -> None:
    _method, documented = operation(client, route)
    body = documented.get("requestBody", {}).get("content", {}).get("application/json")
    if body is None:
        return
    spec = client.get("/openapi.json").json()
    schema = spec["components"]["schemas"].get(body["schema"].get("$ref", "/").rsplit("/", 1)[-1], {})
    assert shown_examples(body) or schema.get("examples")


def test_the_documented_request_examples_work(client: TestClient, alice: Account, chat_id: int) -> None:
    for example in examples.SENT_MESSAGES.values():
        response = client.post(f"/v1/chats/{chat_id}/messages", json=example["value"], headers=alice.headers)
        assert response.status_code == 201, response.text
    for example in examples.CHAT_CHANGES.values():
        assert client.patch(f"/v1/chats/{chat_id}", json=example["value"], headers=alice.headers).status_code == 200
    first = client.get(f"/v1/chats/{chat_id}/messages", headers=alice.headers).json()["first_id"]
    for example in examples.MESSAGE_CHANGES.values():
        url = f"/v1/chats/{chat_id}/messages/{first}"
        assert client.patch(url, json=example["value"], headers=alice.headers).status_code == 200
    imported = client.post("/v1/chats/import", json=examples.CHATGPT_CONVERSATIONS, headers=alice.headers)
    assert imported.status_code == 201
    assert imported.json()["messages"] == 2


def test_the_markdown_example_is_what_the_export_writes(client: TestClient, alice: Account) -> None:
    chat = client.post(
        "/v1/chats/",
        json={
            "title": examples.CHAT["title"],
            "messages": [{"role": m["role"], "content": m["content"], "name": m["name"]} for m in examples.MESSAGES],
        },
        headers=alice.headers,
    ).json()
    markdown = client.get(f"/v1/chats/{chat['id']}/export?format=markdown", headers=alice.headers).text
    created = chat["created_at"][:16].replace("T", " ")
    assert markdown == examples.MARKDOWN.replace("2026-05-01 09:30", created)
