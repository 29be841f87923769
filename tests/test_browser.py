"""The browser side in a real browser: Debian's Chromium, driven by Playwright, against the
app as a real server process. Offline /docs (Authorize, Try it out) and /redoc, CORS from
pages on other localhost ports, and the /app chat client end to end; none of them may
make a request to any host but this machine.

Skipped when /usr/bin/chromium is missing, unless REQUIRE_BROWSER is set (as .ci/run
does): then a missing browser is a failure."""

import functools
import json
import os
import re
import secrets
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
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
    """The app under uvicorn, listing only the first front end in CORS_ORIGINS. These tests
    register and log in dozens of users from one address: the rate limits are raised."""
    port = free_port()
    limits = {f"RATE_LIMIT_{name}": "100000/minute" for name in ("LOGIN", "REGISTER", "REFRESH", "PASSWORD")}
    env = server_env(
        DATABASE_URL=DATABASE_URL,
        SECRET_KEY=secrets.token_urlsafe(48),
        CORS_ORIGINS=front_ends[0],
        REDIS_URL="",
        **limits,
    )
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
    errors: list[str] = field(default_factory=list)

    def off_machine(self) -> list[str]:
        """Requests for anything but this machine (data: and blob: never leave the page)."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname not in LOCAL_HOSTS
        ]


@contextmanager
def opened_tab(browser: Browser, width: int) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": width, "height": 800}, accept_downloads=True)
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
        if message.type == "error":
            tab.errors.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.errors.append(f"uncaught: {error}"))
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    with opened_tab(browser, 1280) as tab:
        yield tab


def registered(api: str, username: str | None = None) -> tuple[str, str]:
    """A new user's (username, token), made through the API."""
    username = username or unique_name("browser")
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


# ---- The /app client, at a desktop's width and a phone's ----

WIDTHS = {"desktop": 1280, "phone": 390}
PHONE_MAX = 760  # app.css shows the list or the chat, not both, up to this width
ACCESS_KEY, REFRESH_KEY = "chat-history-token", "chat-history-refresh"


@pytest.fixture(params=list(WIDTHS.values()), ids=list(WIDTHS))
def app_tab(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Tab]:
    with opened_tab(browser, request.param) as tab:
        yield tab


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def failed_load(status: int, reason: str) -> str:
    """How Chromium logs a fetch answered with an error status (a console error it always writes)."""
    return f"Failed to load resource: the server responded with a status of {status} ({reason})"


def width_of(page: Page) -> int:
    return page.viewport_size["width"]


def assert_no_horizontal_scroll(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width_of(page)


def assert_clean(tab: Tab, expected_errors: list[str] | None = None) -> None:
    assert tab.dialogs == []
    assert tab.policy_violations == []
    assert tab.off_machine() == []
    assert tab.errors == (expected_errors or [])


def log_in(page: Page, api: str, username: str) -> None:
    page.goto(f"{api}/app/")
    login = page.locator("#login-form")
    login.get_by_label("Username").fill(username)
    login.get_by_label("Password").fill(PASSWORD)
    login.get_by_role("button", name="Log in").click()
    expect(page.locator("#session")).to_be_visible()


def show_list(page: Page) -> None:
    """On a phone the list and the open chat take turns; the "Chats" button brings the list."""
    if not page.locator("#sidebar").is_visible():
        page.locator("#menu").click()
    expect(page.locator("#sidebar")).to_be_visible()


def open_chat(page: Page, title: str) -> None:
    show_list(page)
    page.locator("#chats a", has_text=title).click()
    expect(page.locator("#chat-title")).to_have_text(title)
    if width_of(page) <= PHONE_MAX:
        expect(page.locator("#sidebar")).to_be_hidden()


def chat_id_in_address(page: Page) -> int:
    fragment = urlsplit(page.url).fragment
    assert fragment.startswith("/chats/"), page.url
    return int(fragment.split("/")[2])


def test_the_client_keeps_chats_with_safe_markdown_addresses_pins_archive_and_edits(api: str, app_tab: Tab) -> None:
    page = app_tab.page
    width = width_of(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=api)
    page.goto(f"{api}/app")
    expect(page.locator("#register-form")).to_be_visible()

    # Register, then log in (a wrong password first). The suite's database is fresh, and a
    # fixed name keeps the screenshots stable.
    username = {1280: "ada", 390: "grace"}[width]
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
    expect(page.locator("#session")).to_be_visible()
    token = page.evaluate(f"sessionStorage.getItem('{ACCESS_KEY}')")
    assert token and page.evaluate(f"sessionStorage.getItem('{REFRESH_KEY}')")
    assert page.evaluate("localStorage.length") == 0

    # Two chats; each opens at its own address.
    for title in ("Groceries", "Trip to Kyoto"):
        show_list(page)
        page.get_by_label("New chat").fill(title)
        page.get_by_role("button", name="Create").click()
        expect(page.locator("#chat-title")).to_have_text(title)
    kyoto = chat_id_in_address(page)

    # Enter sends, Shift+Enter starts a new line; markup is shown as the text it is.
    composer = page.get_by_label("Message", exact=True)
    page.get_by_label("Role").select_option("system")
    composer.fill("You are a concise travel guide.")
    composer.press("Enter")
    expect(page.locator("#messages li")).to_have_count(1)
    page.get_by_label("Role").select_option("user")
    composer.fill("Two days in Kyoto:")
    composer.press("Shift+Enter")
    composer.type("what should I see?")
    composer.press("Enter")
    expect(page.locator("#messages li")).to_have_count(2)
    composer.fill(XSS)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#messages li")).to_have_count(3)
    # An answer with a model, as an importer or another client would store it.
    answer = (
        "**Day 1**: Fushimi Inari at dawn.\n\n```python\nprint('arigato')\n```\n\n"
        f"```\n{'wide ' * 80}\n```\n\n[a trap](javascript:alert(2)) and ![a picture](https://example.com/x.png)"
    )
    posted = httpx.post(
        f"{api}/v1/chats/{kyoto}/message",
        json={"role": "assistant", "content": answer, "model": "gpt-4o"},
        headers=bearer(token),
        timeout=60,
    )
    assert posted.status_code == 201

    # The address survives a reload; the session is this tab's, another tab starts logged out.
    page.reload()
    expect(page.locator("#chat-title")).to_have_text("Trip to Kyoto")
    other_tab = page.context.new_page()
    other_tab.goto(f"{api}/app/#/chats/{kyoto}")
    expect(other_tab.locator("#login-form")).to_be_visible()
    expect(other_tab.locator("#session")).to_be_hidden()
    other_tab.close()
    messages = page.locator("#messages li")
    expect(messages.locator(".role")).to_have_text(["system", "user", "user", "assistant"])
    expect(messages.nth(1).locator(".content br")).to_have_count(1)
    assert messages.nth(1).locator(".content").inner_text() == "Two days in Kyoto:\nwhat should I see?"
    expect(messages.nth(2).locator(".content")).to_have_text(XSS)
    reply = messages.nth(3)
    expect(reply.locator(".model")).to_have_text("gpt-4o")
    expect(reply.locator("time")).to_have_attribute("datetime", posted.json()["created_at"])
    expect(reply.locator("strong")).to_have_text("Day 1")
    code = reply.locator("pre code").first
    expect(code).to_have_text("print('arigato')\n")
    assert "monospace" in code.evaluate("element => getComputedStyle(element).fontFamily")
    assert reply.locator("a", has_text="a trap").get_attribute("href") is None
    assert reply.locator("a", has_text="a picture").get_attribute("href") == "https://example.com/x.png"
    assert page.locator("#messages img").count() == 0
    assert not any(urlsplit(url).path == "/app/x" for url in app_tab.requests)
    page.screenshot(path=SCREENSHOTS / f"app-{'desktop' if width > PHONE_MAX else 'phone'}.png")
    reply.get_by_role("button", name="Copy code").first.click()
    expect(reply.get_by_role("button", name="Copy code").first).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "print('arigato')\n"
    assert_no_horizontal_scroll(page)
    page.keyboard.press("Shift+Tab")
    page.get_by_label("Message", exact=True).focus()
    page.keyboard.press("Tab")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"

    # Edit a message, delete another.
    messages.nth(1).get_by_role("button", name="Edit").click()
    messages.nth(1).get_by_label("Edit message").fill("Two days in Kyoto: temples?")
    messages.nth(1).get_by_role("button", name="Correct in place").click()
    expect(messages.nth(1).locator(".content")).to_have_text("Two days in Kyoto: temples?")
    delete = messages.nth(0).get_by_role("button", name="Delete")
    delete.click()
    expect(delete).to_have_text("Click again to delete")
    delete.click()
    expect(messages.locator(".role")).to_have_text(["user", "user", "assistant"])

    # Rename; pin the other chat, which then leads the list.
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("Title", exact=True).fill("Kyoto in two days")
    page.get_by_role("button", name="Save title").click()
    expect(page.get_by_label("Title", exact=True)).to_be_hidden()
    expect(page.locator("#chat-title")).to_have_text("Kyoto in two days")
    expect(page.locator("#status")).to_have_text("Renamed to “Kyoto in two days”.")
    open_chat(page, "Groceries")
    groceries = chat_id_in_address(page)
    page.get_by_role("button", name="Pin", exact=True).click()
    expect(page.get_by_role("button", name="Unpin")).to_have_attribute("aria-pressed", "true")
    show_list(page)
    expect(page.locator("#chats a")).to_have_text(["Groceries pinned", "Kyoto in two days"])

    # Back and forward walk the chats opened.
    open_chat(page, "Kyoto in two days")
    page.go_back()
    expect(page.locator("#chat-title")).to_have_text("Groceries")
    page.go_forward()
    expect(page.locator("#chat-title")).to_have_text("Kyoto in two days")

    # Archive: out of the list, into the archived one, and back.
    open_chat(page, "Groceries")
    page.get_by_role("button", name="Archive", exact=True).click()
    expect(page.get_by_role("button", name="Unarchive")).to_be_visible()
    page.reload()  # an archived chat is not in the list, and still opens at its address
    expect(page.locator("#chat-title")).to_have_text("Groceries")
    expect(page.get_by_role("button", name="Unarchive")).to_be_visible()
    show_list(page)
    expect(page.locator("#chats a")).to_have_text(["Kyoto in two days"])
    page.get_by_role("button", name="Archived", exact=True).click()
    expect(page.locator("#chats a")).to_have_text(["Groceries pinned"])
    open_chat(page, "Groceries")
    page.get_by_role("button", name="Unarchive").click()
    expect(page.get_by_role("button", name="Archive", exact=True)).to_be_visible()
    show_list(page)
    page.locator("#show-active").click()
    expect(page.locator("#chats a")).to_have_text(["Groceries pinned", "Kyoto in two days"])

    # Delete it: the first click arms the button, the second deletes.
    open_chat(page, "Groceries")
    page.get_by_role("button", name="Delete chat").click()
    page.get_by_role("button", name="Click again to delete").click()
    expect(page.locator("#chats a")).to_have_text(["Kyoto in two days"])
    expect(page.locator("#chat")).to_be_hidden()

    # The server holds exactly what the client showed.
    [chat] = chats_of(api, token)
    assert (chat["id"], chat["title"]) == (kyoto, "Kyoto in two days")
    assert [(m["role"], m["content"]) for m in chat["messages"]] == [
        ("user", "Two days in Kyoto: temples?"),
        ("user", XSS),
        ("assistant", answer),
    ]
    assert httpx.get(f"{api}/v1/chats/{groceries}", headers=bearer(token), timeout=60).status_code == 404

    # Logging out ends the session on the server: its refresh token is refused from then on.
    refresh_token = page.evaluate(f"sessionStorage.getItem('{REFRESH_KEY}')")
    page.locator("#logout").click()
    expect(page.locator("#login-form")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert any(urlsplit(url).path == "/v1/auth/logout" for url in app_tab.requests)
    refused = httpx.post(f"{api}/v1/auth/refresh", json={"refresh_token": refresh_token}, timeout=60)
    assert refused.status_code == 401
    assert_clean(app_tab, [failed_load(401, "Unauthorized")])


@dataclass
class Library:
    """A user with a long chat and many short ones, shared by the tests that only read."""

    username: str
    token: str
    long_chat: int
    long_ids: list[int]
    okapi_id: int


LONG_CHAT = 2_000
OKAPI_AT = 700
QUOKKA_CHATS = 25


@pytest.fixture(scope="module")
def library(api: str) -> Library:
    username, token = registered(api, "lin")  # a fixed name keeps the screenshots stable
    chat = httpx.post(f"{api}/v1/chats/", json={"title": "A long conversation"}, headers=bearer(token), timeout=60)
    long_chat = chat.json()["id"]
    contents = [f"Message {n} of the long conversation." for n in range(1, LONG_CHAT + 1)]
    contents[OKAPI_AT - 1] = "An okapi sighting, deep in the history."
    long_ids = []
    for start in range(0, LONG_CHAT, 1000):
        batch = [
            {"role": ("user", "assistant")[n % 2], "content": content}
            for n, content in enumerate(contents[start : start + 1000], start)
        ]
        posted = httpx.post(
            f"{api}/v1/chats/{long_chat}/messages", json={"messages": batch}, headers=bearer(token), timeout=120
        )
        assert posted.status_code == 201, posted.text
        long_ids += [message["id"] for message in posted.json()]
    httpx.post(f"{api}/v1/chats/", json={"title": "Quokka notes"}, headers=bearer(token), timeout=60)
    for n in range(QUOKKA_CHATS):
        first = {"role": "user", "content": f"quokka number {n} <b>not bold</b>"}
        created = httpx.post(
            f"{api}/v1/chats/", json={"title": f"Island {n}", "messages": [first]}, headers=bearer(token), timeout=60
        )
        assert created.status_code == 201
    return Library(username, token, long_chat, long_ids, long_ids[OKAPI_AT - 1])


def test_a_long_chat_opens_with_its_newest_page_and_older_pages_load_on_scroll_up(
    api: str, library: Library, app_tab: Tab, capsys: pytest.CaptureFixture[str]
) -> None:
    page = app_tab.page
    log_in(page, api, library.username)
    show_list(page)
    started = time.monotonic()
    page.locator("#chats a", has_text="A long conversation").click()
    newest = page.locator(f"#message-{library.long_ids[-1]}")
    expect(newest).to_be_in_viewport()
    elapsed = time.monotonic() - started
    with capsys.disabled():
        shown_in = f"{elapsed * 1000:.0f} ms"
        print(f"\n[{width_of(page)} px] a {LONG_CHAT:,}-message chat showed its newest message in {shown_in}")
    items = page.locator("#messages li")
    expect(items).to_have_count(50)
    expect(items.last.locator(".content")).to_have_text(f"Message {LONG_CHAT} of the long conversation.")
    paths = [(urlsplit(url).path, urlsplit(url).query) for url in app_tab.requests]
    assert (f"/v1/chats/{library.long_chat}/path", "limit=50") in paths
    assert not any(path == f"/v1/chats/{library.long_chat}" for path, _ in paths)  # never the whole history

    # Scrolling up brings the page before, and what was at the top stays in view.
    top = page.locator(f"#message-{library.long_ids[-50]}")
    page.locator("#scroller").evaluate("scroller => { scroller.scrollTop = 0; }")
    expect(items).to_have_count(100)
    expect(top).to_be_in_viewport()
    page.locator("#scroller").evaluate("scroller => { scroller.scrollTop = 0; }")
    expect(items).to_have_count(150)
    shown = [int(item.split("-")[1]) for item in items.evaluate_all("items => items.map((item) => item.id)")]
    assert shown == library.long_ids[-150:]
    assert (f"/v1/chats/{library.long_chat}/path", f"limit=50&before={library.long_ids[-100]}") in [
        (urlsplit(url).path, urlsplit(url).query) for url in app_tab.requests
    ]
    assert_no_horizontal_scroll(page)
    assert_clean(app_tab)


def test_search_finds_across_chats_pages_and_opens_a_chat_at_the_message(
    api: str, library: Library, app_tab: Tab
) -> None:
    page = app_tab.page
    log_in(page, api, library.username)
    show_list(page)
    page.get_by_role("searchbox", name="Search all chats").fill("quokka")
    page.get_by_role("button", name="Search", exact=True).click()
    results = page.locator("#results li")
    expect(results).to_have_count(20)
    expect(results.first.locator(".result-title")).to_have_text("Quokka notes")
    expect(results.first.locator("mark")).to_have_text("Quokka")
    expect(results.nth(1).locator(".snippet")).to_have_text(f"quokka number {QUOKKA_CHATS - 1} <b>not bold</b>")
    expect(results.nth(1).locator("mark")).to_have_text("quokka")
    assert page.locator("#results b").count() == 0
    page.screenshot(path=SCREENSHOTS / f"search-{'desktop' if width_of(page) > PHONE_MAX else 'phone'}.png")
    page.get_by_role("button", name="More results").click()
    expect(results).to_have_count(1 + QUOKKA_CHATS)
    expect(page.get_by_role("button", name="More results")).to_be_hidden()
    assert_no_horizontal_scroll(page)

    # A message deep in the long chat: the chat opens there, with only the pages around it.
    page.get_by_role("searchbox", name="Search all chats").fill("okapi")
    page.get_by_role("searchbox", name="Search all chats").press("Enter")
    expect(results).to_have_count(1)
    expect(results.first.locator("mark")).to_have_text("okapi")
    results.first.locator("a").click()
    expect(page.locator("#chat-title")).to_have_text("A long conversation")
    found = page.locator(f"#message-{library.okapi_id}")
    expect(found).to_be_in_viewport()
    expect(found).to_have_class(re.compile(r"\bfound\b"))
    assert urlsplit(page.url).fragment == f"/chats/{library.long_chat}/messages/{library.okapi_id}"
    assert page.locator("#messages li").count() <= 100
    # Scrolling down from there reads the next page.
    page.locator("#scroller").evaluate("scroller => { scroller.scrollTop = scroller.scrollHeight; }")
    expect(page.locator(f"#message-{library.long_ids[OKAPI_AT + 49]}")).to_be_attached()
    assert_clean(app_tab)


def chatgpt_export_zip(path: Path) -> Path:
    """The test export as ChatGPT ships it: a ZIP with conversations.json and some megabytes of other files."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(ROOT / "tests" / "data" / "conversations.json", "conversations.json")
        archive.writestr("file-attachment.bin", os.urandom(4 * 1024 * 1024), compress_type=zipfile.ZIP_STORED)
    return path


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


RECORD_PROGRESS = """() => {
  window.progressSeen = [];
  const bar = document.getElementById("import-progress");
  new MutationObserver(() => window.progressSeen.push(bar.value)).observe(bar, {attributes: true});
}"""


def test_import_shows_its_progress_and_summary_and_exports_download(api: str, app_tab: Tab, tmp_path: Path) -> None:
    page = app_tab.page
    export = chatgpt_export_zip(tmp_path / "chatgpt-export.zip")
    # What the API makes of the same file, for a user of its own.
    _, other_token = registered(api)
    with export.open("rb") as upload:
        expected = httpx.post(
            f"{api}/v1/chats/import", files={"file": upload}, headers=bearer(other_token), timeout=120
        ).json()
    username, token = registered(api)
    log_in(page, api, username)
    show_list(page)
    page.locator("#transfer summary").click()

    # A file that is not an export: its error, nothing imported.
    page.get_by_label("Chat export: ChatGPT, Claude, Open WebUI or LibreChat (ZIP or JSON)").set_input_files(
        files=[{"name": "notes.json", "mimeType": "application/json", "buffer": b'{"not": "an export"}'}]
    )
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-summary")).to_contain_text("Import failed: Not a chat export")
    assert chats_of(api, token) == []

    page.evaluate(RECORD_PROGRESS)
    page.get_by_label("Chat export: ChatGPT, Claude, Open WebUI or LibreChat (ZIP or JSON)").set_input_files(export)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-summary")).to_have_text(
        f"Imported {counted(len(expected['chats']), 'chat')} with {counted(expected['messages'], 'message')}; "
        f"skipped {counted(expected['skipped_messages'], 'message')} and "
        f"{counted(expected['skipped_conversations'], 'conversation')}."
    )
    assert page.evaluate("window.progressSeen.at(-1)") == 100
    imported = chats_of(api, token)
    assert [chat["title"] for chat in imported] == [chat["title"] for chat in reversed(expected["chats"])]
    expect(page.locator("#chats a")).to_have_text([chat["title"] for chat in imported])

    # Export one chat as JSON and Markdown, and all of them: the files are the API's.
    chat = imported[0]
    open_chat(page, chat["title"])
    for button, query in (("Export JSON", "format=json"), ("Export Markdown", "format=markdown")):
        with page.expect_download() as download:
            page.get_by_role("button", name=button).click()
        served = httpx.get(f"{api}/v1/chats/{chat['id']}/export?{query}", headers=bearer(token), timeout=60)
        assert download.value.suggested_filename == f"chat-{chat['id']}.{'json' if 'json' in query else 'md'}"
        assert Path(download.value.path()).read_bytes() == served.content
    show_list(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export all chats (JSON)").click()
    assert download.value.suggested_filename == "chats.json"
    everything = json.loads(Path(download.value.path()).read_text())
    assert everything == httpx.get(f"{api}/v1/chats/export", headers=bearer(token), timeout=60).json()
    assert_no_horizontal_scroll(page)
    assert_clean(app_tab, [failed_load(422, "Unprocessable Entity")])


def stored_refresh_token(page: Page) -> str:
    return page.evaluate(f"sessionStorage.getItem('{REFRESH_KEY}')")


def wait_for_new_refresh_token(page: Page, old: str) -> str:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while (new := stored_refresh_token(page)) == old:
        assert time.monotonic() < deadline, "the client never refreshed its token"
        time.sleep(0.1)
    return new


def test_the_session_refreshes_before_the_access_token_expires_and_ends_when_its_token_is_reused(
    api: str, app_tab: Tab
) -> None:
    page = app_tab.page
    page.clock.install()  # the page's clock, moved on below, instead of waiting half an hour
    username, _ = registered(api)
    log_in(page, api, username)
    first = stored_refresh_token(page)

    # 29 minutes on, a minute before the 30-minute token expires, the client trades its
    # refresh token for a new pair and keeps the new one.
    page.clock.fast_forward("29:00")
    second = wait_for_new_refresh_token(page, first)
    assert second != first
    show_list(page)
    page.get_by_label("New chat").fill("After a refresh")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#chat-title")).to_have_text("After a refresh")

    # Someone else uses the client's current refresh token first: the server ends the
    # session, and at its next refresh the client says so and asks for a login.
    stolen = httpx.post(f"{api}/v1/auth/refresh", json={"refresh_token": second}, timeout=60)
    assert stolen.status_code == 200
    page.clock.fast_forward("29:00")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#status")).to_have_text("Your session has ended: please log in again.")
    assert page.evaluate("sessionStorage.length") == 0
    refused = httpx.post(f"{api}/v1/auth/refresh", json={"refresh_token": stolen.json()["refresh_token"]}, timeout=60)
    assert refused.status_code == 401
    assert_clean(app_tab, [failed_load(401, "Unauthorized")])


def test_branches_switch_and_grow_by_edit_and_new_answer(api: str, app_tab: Tab) -> None:
    page = app_tab.page
    username, token = registered(api)
    chat = httpx.post(
        f"{api}/v1/chats/",
        json={
            "title": "Branches",
            "messages": [
                {"role": "user", "content": "First question"},
                {"role": "assistant", "content": "First answer"},
            ],
        },
        headers=bearer(token),
        timeout=60,
    ).json()
    reads: list[str] = []
    page.on("request", lambda request: request.method == "GET" and reads.append(urlsplit(request.url).path))
    log_in(page, api, username)
    open_chat(page, "Branches")
    messages = page.locator("#messages li")
    expect(messages.locator(".content")).to_have_text(["First question", "First answer"])
    expect(messages.locator(".branches")).to_have_count(2)
    expect(messages.locator(".branches").first).to_be_hidden()

    # Edit the question as a new version: a second branch, shown, with no answer yet.
    messages.first.get_by_role("button", name="Edit").click()
    messages.first.get_by_label("Edit message").fill("Second question")
    messages.first.get_by_role("button", name="Save as new version").click()
    expect(messages.locator(".content")).to_have_text(["Second question"])
    expect(messages.first.locator(".position")).to_have_text("2/2")
    expect(messages.first.locator(".branches")).to_have_attribute("aria-label", "Version 2 of 2")

    # Back to the first branch, then a new answer there.
    messages.first.get_by_role("button", name="Previous version").click()
    expect(messages.locator(".content")).to_have_text(["First question", "First answer"])
    expect(messages.first.locator(".position")).to_have_text("1/2")
    expect(messages.first.get_by_role("button", name="Previous version")).to_be_disabled()
    messages.last.get_by_role("button", name="New answer").click()
    messages.last.get_by_label("New answer").fill("Second answer, with kumquats")
    messages.last.get_by_role("button", name="Save as new answer").click()
    expect(messages.locator(".content")).to_have_text(["First question", "Second answer, with kumquats"])
    expect(messages.last.locator(".position")).to_have_text("2/2")
    messages.last.get_by_role("button", name="Previous version").click()
    expect(messages.locator(".content")).to_have_text(["First question", "First answer"])
    expect(messages.last.locator(".position")).to_have_text("1/2")

    # A reload shows the branch last shown: the server keeps it as the chat's current leaf.
    page.reload()
    expect(page.locator("#chat-title")).to_have_text("Branches")
    expect(messages.locator(".content")).to_have_text(["First question", "First answer"])
    expect(messages.locator(".position")).to_have_text(["1/2", "1/2"])
    messages.first.get_by_role("button", name="Next version").click()
    expect(messages.locator(".content")).to_have_text(["Second question"])
    page.reload()
    expect(messages.locator(".content")).to_have_text(["Second question"])
    expect(messages.first.locator(".position")).to_have_text("2/2")

    # Search finds the answer on a branch not shown: the chat opens on the path through it,
    # and a message written there follows it.
    show_list(page)
    page.get_by_role("searchbox", name="Search all chats").fill("kumquats")
    page.get_by_role("searchbox", name="Search all chats").press("Enter")
    results = page.locator("#results li")
    expect(results).to_have_count(1)
    results.first.locator("a").click()
    expect(messages.locator(".content")).to_have_text(["First question", "Second answer, with kumquats"])
    expect(messages.last).to_have_class(re.compile(r"\bfound\b"))
    page.get_by_label("Message", exact=True).fill("A follow-up on that branch")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(messages.locator(".content")).to_have_text(
        ["First question", "Second answer, with kumquats", "A follow-up on that branch"]
    )
    assert urlsplit(page.url).fragment == f"/chats/{chat['id']}"
    page.reload()
    expect(messages.locator(".content")).to_have_text(
        ["First question", "Second answer, with kumquats", "A follow-up on that branch"]
    )

    stored = httpx.get(f"{api}/v1/chats/{chat['id']}", headers=bearer(token), timeout=60).json()
    assert [m["content"] for m in stored["messages"]] == [
        "First question",
        "Second answer, with kumquats",
        "A follow-up on that branch",
    ]
    assert stored["current_message_id"] == stored["messages"][-1]["id"]
    # The client reads a chat only along its path, a page at a time.
    assert f"/v1/chats/{chat['id']}/path" in reads
    assert not set(reads) & {f"/v1/chats/{chat['id']}", f"/v1/chats/{chat['id']}/messages"}
    assert_no_horizontal_scroll(page)
    assert_clean(app_tab)


def test_a_message_written_in_a_chat_opened_mid_branch_follows_that_branch(api: str, app_tab: Tab) -> None:
    page = app_tab.page
    username, token = registered(api)
    chat = httpx.post(
        f"{api}/v1/chats/",
        json={"title": "Two roads", "messages": [{"role": "user", "content": "Which road?"}]},
        headers=bearer(token),
        timeout=60,
    ).json()
    question = httpx.get(f"{api}/v1/chats/{chat['id']}", headers=bearer(token), timeout=60).json()["messages"][0]
    steps = [{"role": "assistant", "content": "The left road: a pangolin crossed it."}]
    steps += [{"role": ("user", "assistant")[n % 2], "content": f"Step {n}"} for n in range(1, 61)]
    left = httpx.post(
        f"{api}/v1/chats/{chat['id']}/messages",
        json={"parent_id": question["id"], "messages": steps},
        headers=bearer(token),
        timeout=60,
    ).json()
    right = httpx.post(
        f"{api}/v1/chats/{chat['id']}/message",
        json={"role": "assistant", "content": "The right road.", "parent_id": question["id"]},
        headers=bearer(token),
        timeout=60,
    ).json()
    assert (
        httpx.get(f"{api}/v1/chats/{chat['id']}", headers=bearer(token), timeout=60).json()["current_message_id"]
        == right["id"]
    )

    # Opened from search deep in the branch not shown: the page ending at the hit and the page after it.
    log_in(page, api, username)
    show_list(page)
    page.get_by_role("searchbox", name="Search all chats").fill("pangolin")
    page.get_by_role("searchbox", name="Search all chats").press("Enter")
    page.locator("#results li a").first.click()
    found = page.locator(f"#message-{left[0]['id']}")
    expect(found).to_be_in_viewport()
    expect(found.locator(".position")).to_have_text("1/2")
    messages = page.locator("#messages li")
    expect(messages).to_have_count(2 + 50)
    expect(messages.last.locator(".content")).to_have_text("Step 50")

    # Its leaf is not read yet: the chat is switched to this branch, whose leaf the message follows.
    page.get_by_label("Message", exact=True).fill("Written on the left road")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(messages.last.locator(".content")).to_have_text("Written on the left road")
    expect(messages.nth(-2).locator(".content")).to_have_text("Step 60")
    stored = httpx.get(f"{api}/v1/chats/{chat['id']}", headers=bearer(token), timeout=60).json()
    assert [m["content"] for m in stored["messages"]] == [
        "Which road?",
        *(step["content"] for step in steps),
        "Written on the left road",
    ]
    assert stored["current_message_id"] == stored["messages"][-1]["id"]
    assert_no_horizontal_scroll(page)
    assert_clean(app_tab)
