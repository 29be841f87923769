"""The browser side in a real browser: Debian's Chromium, driven by Playwright, against the
app as a real server process. Offline /docs (Authorize, Try it out) and /redoc, CORS from
pages on other localhost ports, and the /app chat client end to end; none of them may
make a request to any host but this machine.

Skipped when /usr/bin/chromium is missing, unless REQUIRE_BROWSER is set (as .ci/run
does): then a missing browser is a failure."""

import functools
import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Locator, Page, expect, sync_playwright

from conftest import DATABASE_URL, PASSWORD, WORK_DIR, unique_name
from server import PYTHON, ROOT, free_port, running, server_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# The README's screenshots are refreshed on request, so that a test run leaves the checkout clean.
SCREENSHOTS = ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else WORK_DIR / "screenshots"
# The machine is shared and slow at times: wait long for what must happen.
TIMEOUT_MS = 60_000
XSS = "<img src=x onerror=alert(1)>"
expect.set_options(timeout=TIMEOUT_MS)


def require_browser() -> bool:
    return os.environ.get("REQUIRE_BROWSER", "") not in ("", "0", "false")


@pytest.fixture(scope="module", autouse=True)
def chromium_installed() -> None:
    """Decided before any server starts: skip, or with REQUIRE_BROWSER fail, without Chromium."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if require_browser():
            pytest.fail(f"{reason}, and REQUIRE_BROWSER is set")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=120_000)
        yield browser
        browser.close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def front_ends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two plain static sites on other localhost ports: (the listed origin, an unlisted one)."""
    site = tmp_path_factory.mktemp("front-end")
    (site / "index.html").write_text("<!DOCTYPE html><meta charset='utf-8'><title>Front end</title><p>Front end</p>")
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=site)) for _ in "ab"]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tuple(f"http://127.0.0.1:{server.server_address[1]}" for server in servers)
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def api(front_ends: tuple[str, str]) -> Iterator[str]:
    """The app under uvicorn, listing only the first front end in CORS_ORIGINS."""
    port = free_port()
    env = server_env(DATABASE_URL=DATABASE_URL, SECRET_KEY=secrets.token_urlsafe(48), CORS_ORIGINS=front_ends[0])
    command = [PYTHON, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with running(command, env, WORK_DIR, port) as base_url:
        yield base_url


@dataclass
class Tab:
    """A page in a fresh browser context, with everything it asked for and complained about."""

    page: Page
    requests: list[str] = field(default_factory=list)
    blocked: list[tuple[str, str]] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    policy_violations: list[str] = field(default_factory=list)

    def off_machine(self) -> list[str]:
        """Requests for anything but this machine (data: and blob: never leave the page)."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname not in LOCAL_HOSTS
        ]


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    tab = Tab(page)
    context.on("request", lambda request: tab.requests.append(request.url))
    context.on("requestfailed", lambda request: tab.blocked.append((request.url, request.failure or "")))

    def on_dialog(dialog: Dialog) -> None:
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            tab.policy_violations.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    yield tab
    context.close()


def registered(api: str) -> tuple[str, str]:
    """A new user's (username, token), made through the API."""
    username = unique_name("browser")
    response = httpx.post(
        f"{api}/v1/auth/register",
        json={"email": f"{username}@example.com", "username": username, "password": PASSWORD},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    token = httpx.post(f"{api}/v1/auth/token", data={"username": username, "password": PASSWORD}, timeout=60)
    assert token.status_code == 200, token.text
    return username, token.json()["access_token"]


def chats_of(api: str, token: str) -> list[dict]:
    response = httpx.get(f"{api}/v1/chats/?limit=100", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert response.status_code == 200
    return [
        httpx.get(f"{api}/v1/chats/{chat['id']}", headers={"Authorization": f"Bearer {token}"}, timeout=60).json()
        for chat in response.json()
    ]


CREATE_CHAT = "#operations-chats-create_chat_v1_chats__post"
READ_CHAT = "#operations-chats-read_chat_v1_chats__chat_id__get"


def try_it_out(operation: Locator, fill: dict[str, str]) -> str:
    """Runs an operation from Swagger UI; the status code it shows."""
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    for selector, value in fill.items():
        operation.locator(selector).fill(value)
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    expect(status).not_to_be_empty()
    return status.inner_text().strip()


def test_docs_render_offline_authorize_logs_in_and_try_it_out_uses_the_token(api: str, tab: Tab) -> None:
    username, token = registered(api)
    page = tab.page
    page.goto(f"{api}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Chat History API")
    expect(page.locator(CREATE_CHAT)).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "docs.png")

    page.locator(".auth-wrapper button.authorize").click()
    page.locator("#oauth_username").fill(username)
    page.locator("#oauth_password").fill(PASSWORD)
    page.locator(".auth-container button.modal-btn.authorize").click()
    auth = page.locator(".auth-container")
    expect(auth.get_by_role("heading", name="Authorized")).to_be_visible()
    expect(auth.get_by_role("button", name="Remove authorization")).to_be_visible()
    auth.get_by_role("button", name="Close").click()

    title = f"Made in Swagger UI {uuid.uuid4().hex[:6]}"
    create = page.locator(CREATE_CHAT)
    assert try_it_out(create, {"textarea.body-param__text": json.dumps({"title": title})}) == "201"
    curl = create.locator(".curl-command").inner_text()
    assert "Authorization: Bearer " in curl
    [chat] = [chat for chat in chats_of(api, token) if chat["title"] == title]

    read = page.locator(READ_CHAT)
    assert try_it_out(read, {"input[placeholder='chat_id']": str(chat["id"])}) == "200"
    body = read.locator(".live-responses-table .response-col_description pre").first
    assert json.loads(body.inner_text())["title"] == title

    assert tab.off_machine() == []
    assert tab.policy_violations == []


def test_redoc_renders_offline(api: str, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{api}/redoc")
    expect(page.locator("h1")).to_contain_text("Chat History API")
    expect(page.get_by_text("/v1/chats/{chat_id}/message").first).to_be_attached()
    assert tab.off_machine() == []
    assert tab.policy_violations == []


CROSS_ORIGIN_SESSION = """async ({api, username, password, title}) => {
  const result = {};
  try {
    const login = await fetch(`${api}/v1/auth/token`, {
      method: "POST", body: new URLSearchParams({username, password}),
    });
    result.login = login.status;
    const {access_token} = await login.json();
    const headers = {"Authorization": `Bearer ${access_token}`, "Content-Type": "application/json"};
    const call = async (method, path, body, extra = {}) => {
      const init = {method, headers: {...headers, ...extra}, body: body && JSON.stringify(body)};
      const response = await fetch(`${api}${path}`, init);
      return [response.status, await response.json()];
    };
    const [created, chat] = await call("POST", "/v1/chats/", {title}, {"Idempotency-Key": title});
    result.created = created;
    result.message = (await call("POST", `/v1/chats/${chat.id}/message`, {role: "user", content: "across"}))[0];
    result.renamed = (await call("PATCH", `/v1/chats/${chat.id}`, {title: `${title} (renamed)`}))[0];
    const [listed, chats] = await call("GET", "/v1/chats/");
    result.listed = [listed, chats.map((c) => c.title)];
    result.read = (await call("GET", `/v1/chats/${chat.id}`))[0];
    const spare = (await call("POST", "/v1/chats/", {title: `${title} spare`}))[1];
    result.deleted = (await call("DELETE", `/v1/chats/${spare.id}`))[0];
  } catch (error) {
    result.refused = `${error.name}: ${error.message}`;
  }
  return result;
}"""


def test_a_listed_origin_uses_the_api_and_an_unlisted_one_is_refused(
    api: str, front_ends: tuple[str, str], tab: Tab
) -> None:
    listed, unlisted = front_ends
    username, token = registered(api)
    page = tab.page

    page.goto(f"{listed}/index.html")
    title = f"cross-origin {uuid.uuid4().hex[:6]}"
    session = {"api": api, "username": username, "password": PASSWORD}
    result = page.evaluate(CROSS_ORIGIN_SESSION, {**session, "title": title})
    assert result == {
        "login": 200,
        "created": 201,
        "message": 201,
        "renamed": 200,
        "listed": [200, [f"{title} (renamed)"]],
        "read": 200,
        "deleted": 200,
    }

    page.goto(f"{unlisted}/index.html")
    refused = page.evaluate(CROSS_ORIGIN_SESSION, {**session, "title": "unlisted"})
    assert refused == {"refused": "TypeError: Failed to fetch"}
    assert [chat["title"] for chat in chats_of(api, token)] == [f"{title} (renamed)"]
    assert tab.off_machine() == []


def test_the_chat_client_walks_the_whole_flow_and_shows_markup_as_text(api: str, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{api}/app")
    expect(page.locator("#register-form")).to_be_visible()

    # Register, then log in.
    username = "ada"  # the suite's database is fresh, and a fixed name keeps the screenshot stable
    register = page.locator("#register-form")
    register.get_by_label("Email").fill(f"{username}@example.com")
    register.get_by_label("Username").fill(username)
    register.get_by_label("Password").fill(PASSWORD)
    register.get_by_role("button", name="Register").click()
    expect(page.locator("#status")).to_have_text(f"Account {username} created: log in to continue.")
    login = page.locator("#login-form")
    expect(login.get_by_label("Username")).to_have_value(username)
    login.get_by_label("Password").fill("not the password")
    login.get_by_role("button", name="Log in").click()
    expect(page.locator("#status")).to_have_text("Incorrect username or password")
    login.get_by_label("Password").fill(PASSWORD)
    login.get_by_role("button", name="Log in").click()
    expect(page.locator("#whoami")).to_have_text(username)
    token = page.evaluate("sessionStorage.getItem('chat-history-token')")
    assert token
    assert page.evaluate("localStorage.length") == 0

    # Two chats; the first gets a history with every role, markup included.
    new_chat = page.locator("#new-chat-form")
    for title in ("Groceries", "Trip to Kyoto"):
        new_chat.get_by_label("New chat").fill(title)
        new_chat.get_by_role("button", name="Create").click()
        expect(page.locator("#chat-title")).to_have_text(title)
    history = [
        ("system", "You are a concise travel guide."),
        ("user", "Two days in Kyoto: what should I see?"),
        ("assistant", "Day 1: Fushimi Inari at dawn, then Kiyomizu-dera.\nDay 2: Arashiyama and Kinkaku-ji."),
        ("user", XSS),
    ]
    message_form = page.locator("#message-form")
    for count, (role, content) in enumerate(history, start=1):
        message_form.get_by_label("Role").select_option(role)
        message_form.get_by_label("Message").fill(content)
        message_form.get_by_role("button", name="Add message").click()
        expect(page.locator("#messages li")).to_have_count(count)

    # The list, most recently active first; opening a chat shows its history in order.
    expect(page.locator("#chats button")).to_have_text(["Trip to Kyoto", "Groceries"])
    page.locator("#chats button", has_text="Groceries").click()
    expect(page.locator("#no-messages")).to_be_visible()
    page.locator("#chats button", has_text="Trip to Kyoto").click()
    expect(page.locator("#messages .role")).to_have_text([role for role, _ in history])
    expect(page.locator("#messages .content")).to_have_text([content for _, content in history])
    assert page.locator("#messages .content").last.inner_text() == XSS
    assert page.locator("#messages img").count() == 0

    # Rename it.
    rename = page.locator("#rename-form")
    rename.get_by_label("Title").fill("Kyoto in two days")
    rename.get_by_role("button", name="Rename").click()
    expect(page.locator("#chat-title")).to_have_text("Kyoto in two days")
    expect(page.locator("#chats button")).to_have_text(["Kyoto in two days", "Groceries"])
    expect(page.locator("#status")).to_have_text("Renamed to “Kyoto in two days”.")
    page.screenshot(path=SCREENSHOTS / "app.png", full_page=True)

    # Delete the other one: the first click arms the button, the second deletes.
    page.locator("#chats button", has_text="Groceries").click()
    expect(page.locator("#chat-title")).to_have_text("Groceries")
    delete = page.locator("#delete-chat")
    delete.click()
    expect(delete).to_have_text("Click again to delete")
    delete.click()
    expect(page.locator("#chats button")).to_have_text(["Kyoto in two days"])
    expect(page.locator("#chat")).to_be_hidden()

    # The server holds exactly what the client showed.
    [chat] = chats_of(api, token)
    assert chat["title"] == "Kyoto in two days"
    assert [(m["role"], m["content"]) for m in chat["messages"]] == history

    # The token lasts as long as the tab: a reload keeps it, another tab never sees it.
    page.reload()
    expect(page.locator("#whoami")).to_have_text(username)
    other_tab = page.context.new_page()
    other_tab.goto(f"{api}/app/")
    expect(other_tab.locator("#login-form")).to_be_visible()
    expect(other_tab.locator("#session")).to_be_hidden()
    other_tab.close()

    page.locator("#logout").click()
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#signed-in")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('chat-history-token')") is None

    assert tab.dialogs == []
    assert tab.policy_violations == []
    assert tab.off_machine() == []
