"""What create_app assembles, on an app built in the test's own process with the suite's
settings: its name in the schema and on its pages, the welcome, the policies of its pages
and the answer to a front end's preflight. (test_web.py checks the headers, policies and
pages in detail, on apps built the same way: conftest's `built`.)"""

import re

import pytest
from fastapi.testclient import TestClient

from conftest import BROWSER_HEADERS, FRONT_END_ORIGIN, logins_from_forged_addresses, preflight
from main import API_POLICY, CLIENT_POLICY, create_app
from service.api_docs import ASSETS_URL, docs_pages

DESCRIPTION = (
    "Keep your conversations with language models: register, log in with OAuth2 and JWT, "
    "and store chats with their system, user and assistant messages."
)


def test_the_schema_the_docs_and_the_welcome_name_the_service(built: TestClient) -> None:
    info = built.get("/openapi.json").json()["info"]
    assert (info["title"], info["version"], info["description"]) == ("Chat History API", "1.0.0", DESCRIPTION)
    assert built.get("/v1").json() == {"message": "Welcome to the Chat History API. Documentation: /docs"}
    for path, title in (("/docs", "Chat History API - Swagger UI"), ("/redoc", "Chat History API - ReDoc")):
        page = built.get(path).text
        # The service's own pages: its spec, and scripts from the app itself, never a CDN.
        assert f"<title>{title}</title>" in page and "/openapi.json" in page
        assert f'src="{ASSETS_URL}/' in page and "cdn.jsdelivr.net" not in page


def test_the_client_the_docs_and_the_api_answer_with_their_own_policies(built: TestClient) -> None:
    assert built.get("/app/").headers["content-security-policy"] == CLIENT_POLICY
    assert built.get("/v1").headers["content-security-policy"] == API_POLICY
    for path, page in docs_pages(built.app.title, built.app.openapi_url).items():
        assert page.policy != API_POLICY
        assert built.get(path).headers["content-security-policy"] == page.policy


def test_the_docs_load_every_script_and_style_they_name_from_the_app(built: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        assets = re.findall(rf'(?:src|href)="({ASSETS_URL}/[^"]+)"', built.get(path).text)
        assert assets, path
        for asset in assets:
            assert built.get(asset).status_code == 200, asset


@pytest.mark.parametrize(("trusted", "answers"), [([], [401, 401, 429]), (["testclient"], [401, 401, 401])])
def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(
    client: TestClient, trusted: list[str], answers: list[int]
) -> None:
    """A login limit of 2 per address, three logins each claiming another address: one
    address (the peer's) unless the peer is a proxy named in TRUSTED_PROXIES."""
    update = {"trusted_proxies": trusted, "rate_limit_login": "2/minute", "redis_url": ""}
    with TestClient(create_app(client.app.state.settings.model_copy(update=update))) as built:
        assert logins_from_forged_addresses(built) == answers


def test_the_listed_front_end_may_send_what_a_browser_client_sends(built: TestClient) -> None:
    allowed = preflight(built, "/v1/chats/{chat_id}/messages", "PATCH").headers
    sent = {header.strip().lower() for header in allowed["access-control-allow-headers"].split(",")}
    assert (allowed["access-control-allow-origin"], allowed["access-control-max-age"]) == (FRONT_END_ORIGIN, "600")
    assert "PATCH" in allowed["access-control-allow-methods"] and set(BROWSER_HEADERS.split(",")) <= sent


def test_the_docs_list_their_sections_in_reading_order_and_document_the_welcome(built: TestClient) -> None:
    schema = built.get("/openapi.json").json()
    # Routes are matched busiest first (api.py); the docs still read meta, auth, chats.
    assert [tag["name"] for tag in schema["tags"]] == ["meta", "auth", "chats"]
    welcome = schema["paths"]["/v1"]["get"]
    assert welcome["tags"] == ["meta"]
    assert welcome["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Welcome"
    }
