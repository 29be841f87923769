"""What a browser is told, checked through the app without one: security headers on every
response, Content-Security-Policies, offline documentation pages, and CORS for the listed
front end (conftest's FRONT_END_ORIGIN) but no other origin."""

import base64
import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from conftest import BROWSER_HEADERS, FRONT_END_ORIGIN, Account, preflight
from service.api_docs import inline_script_hashes

COMMON_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY"}
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
UNLISTED_ORIGIN = "http://evil.example:3000"


@pytest.fixture
def client(built: TestClient) -> TestClient:
    """What a browser is told is assembled when an app is built: each test here asks an app
    it has built itself (conftest's `built`), not the suite's."""
    return built


def directives(policy: str) -> dict[str, list[str]]:
    parts = (directive.split() for directive in policy.split(";") if directive.strip())
    return {name: sources for name, *sources in parts}


def assert_common_headers(response) -> None:
    for name, value in COMMON_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert "content-security-policy" in response.headers


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1", 200),
        ("GET", "/v1/chats/", 401),
        ("GET", "/v1/chats/abc", 401),
        ("POST", "/v1/auth/token", 422),
        ("GET", "/no/such/page", 404),
        ("GET", "/openapi.json", 200),
        ("GET", "/docs-assets/swagger-ui-bundle.js", 200),
    ],
)
def test_api_responses_carry_the_security_headers_and_a_policy_that_allows_nothing(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert_common_headers(response)
    assert response.headers["content-security-policy"] == API_POLICY
    assert response.headers["cache-control"] == "no-store"  # answers may carry tokens and users' data


def test_an_authorised_request_and_a_refused_large_body_carry_them_too(client: TestClient, alice: Account) -> None:
    created = client.post("/v1/chats/", json={"title": "headers"}, headers=alice.headers)
    assert created.status_code == 201
    assert_common_headers(created)
    too_large = client.post(
        "/v1/chats/", content=b"x" * (3 * 1024 * 1024), headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert too_large.status_code == 413
    assert_common_headers(too_large)


@pytest.mark.parametrize(
    "path",
    [
        "/app/",
        "/app/app.js",
        "/app/app.css",
        "/app/favicon.svg",
        "/app/vendor/marked.umd.js",
        "/app/vendor/purify.min.js",
    ],
)
def test_the_client_is_served_with_a_policy_allowing_only_its_own_assets(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert_common_headers(response)
    policy = directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    for directive in ("script-src", "style-src", "img-src", "connect-src"):
        assert policy[directive] == ["'self'"], directive
    assert policy["frame-ancestors"] == ["'none'"]


def test_app_without_a_slash_leads_to_the_client(client: TestClient) -> None:
    response = client.get("/app", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"].endswith("/app/")
    assert "Chat History" in client.get("/app").text


def local_references(html: str) -> list[str]:
    references = re.findall(r"""(?:src|href)=["']([^"']*)["']""", html)
    assert references
    return references


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/app/"])
def test_pages_load_their_scripts_styles_and_icons_from_the_app_itself(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    for reference in local_references(page.text):
        assert reference.startswith("/"), reference
        assert not reference.startswith("//"), reference
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.content


def test_swagger_ui_runs_its_init_script_by_hash_without_unsafe_inline(client: TestClient) -> None:
    page = client.get("/docs")
    policy = directives(page.headers["content-security-policy"])
    inline = re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    assert len(inline) == 1
    assert "SwaggerUIBundle" in inline[0]
    assert '"validatorUrl": null' in inline[0]  # no badge fetched from validator.swagger.io
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert policy["script-src"] == ["'self'", f"'sha256-{digest}'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["worker-src"] == ["'none'"]


def test_redoc_allows_inline_styles_but_never_inline_scripts(client: TestClient) -> None:
    page = client.get("/redoc")
    policy = directives(page.headers["content-security-policy"])
    assert "<script>" not in page.text
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["worker-src"] == ["blob:"]  # its search index runs in a worker made from a blob
    assert "fonts.googleapis.com" not in page.text


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_pages_are_html_that_may_reach_only_the_app(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["base-uri"] == policy["frame-ancestors"] == ["'none'"]
    assert set(policy) == {
        "default-src", "script-src", "style-src", "img-src", "connect-src", "worker-src", "base-uri", "form-action",
        "frame-ancestors",
    }  # fmt: skip


def test_every_chat_operation_asks_swagger_for_the_bearer_token(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme["flows"]["password"]["tokenUrl"] == "v1/auth/token"
    chat_operations = [
        (path, method, operation)
        for path, methods in spec["paths"].items()
        if path.startswith("/v1/chats")
        for method, operation in methods.items()
    ]
    assert len(chat_operations) >= 10
    for path, method, operation in chat_operations:
        assert operation.get("security") == [{"OAuth2PasswordBearer": []}], (method, path)


def test_the_docs_pages_are_not_in_the_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/docs", "/redoc", "/app"} & set(paths)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/chats/"),
        ("GET", "/v1/chats/"),
        ("PATCH", "/v1/chats/1"),
        ("DELETE", "/v1/chats/1"),
        ("POST", "/v1/chats/1/message"),
        ("GET", "/v1/auth/test_token"),
        ("POST", "/v1/auth/token"),
    ],
)
def test_a_preflight_from_the_listed_origin_is_allowed_with_the_headers_a_client_sends(
    client: TestClient, method: str, path: str
) -> None:
    response = preflight(client, path, method)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONT_END_ORIGIN
    assert method in response.headers["access-control-allow-methods"]
    allowed = {header.strip().lower() for header in response.headers["access-control-allow-headers"].split(",")}
    assert set(BROWSER_HEADERS.split(",")) <= allowed
    # Bearer tokens, not cookies: credentials are never allowed, so neither is `*` with them.
    assert "access-control-allow-credentials" not in response.headers
    assert_common_headers(response)


def test_a_preflight_from_an_unlisted_origin_is_refused(client: TestClient) -> None:
    response = preflight(client, "/v1/chats/", origin=UNLISTED_ORIGIN)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    assert_common_headers(response)


def test_answers_name_only_the_listed_origin(client: TestClient, alice: Account) -> None:
    allowed = client.post("/v1/chats/", json={"title": "cors"}, headers={**alice.headers, "Origin": FRONT_END_ORIGIN})
    assert allowed.status_code == 201
    assert allowed.headers["access-control-allow-origin"] == FRONT_END_ORIGIN
    assert "access-control-allow-credentials" not in allowed.headers
    # The server answers a simple request from anywhere; without the header the browser
    # keeps the answer from the page that asked.
    unlisted = client.get("/v1/chats/", headers={**alice.headers, "Origin": UNLISTED_ORIGIN})
    assert unlisted.status_code == 200
    assert "access-control-allow-origin" not in unlisted.headers


@pytest.mark.parametrize(
    "path",
    ["/app/../main.py", "/app/..%2f..%2fmain.py", "/app/%00", "/app/missing.js", "/docs-assets/", "/docs-assets/x"],
)
def test_nothing_but_the_static_files_is_served_and_a_miss_is_a_json_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
    assert_common_headers(response)


def test_redocs_bundle_is_served_without_its_vendors_cdn(client: TestClient) -> None:
    bundle = client.get("/docs-assets/redoc.standalone.js")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "cdn.redoc.ly" not in bundle.text
    assert "redocly logo" in bundle.text  # the whole bundle, with only the logo's source replaced


def test_a_page_with_two_inline_scripts_has_both_allowed_and_no_more() -> None:
    def source(script: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"

    html = "<p><script>one()</script></p><script src='x.js'></script><script>\ntwo()\n</script>"
    assert inline_script_hashes(html) == f"{source('one()')} {source(chr(10) + 'two()' + chr(10))}"
