"""Fixtures for the browser tests: Debian's Chromium driven by Playwright for
Python, against a real chatd (tests/conftest.py's `start_daemon`).

Playwright never downloads a browser here (`playwright install` is not run):
it launches /usr/bin/chromium. The browser trusts the test CA through
`ignore_https_errors=True` in each browser context (the certificate is still
chatctl's, for `localhost` and 127.0.0.1; only its issuer is not checked).

When Chromium or playwright is missing, every test here is skipped with a
reason that says how to run them.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon
from tests.support.chatclient import ChatClient

CHROMIUM = "/usr/bin/chromium"
HOW_TO_RUN = (
    "apt-get install chromium (Debian's package; .ci/run installs it) and "
    "pip install -e '.[test]' (playwright for Python; never `playwright install`)"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000  # for any one thing to appear on the page

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
except ImportError:  # reported as the skip reason below
    sync_playwright = None  # type: ignore[assignment]


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return f"playwright is not installed; to run the browser tests: {HOW_TO_RUN}"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing; to run the browser tests: {HOW_TO_RUN}"
    return None


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    with sync_playwright() as pw:
        pw.selectors.set_test_id_attribute("id")
        expect.set_options(timeout=TIMEOUT_MS)
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


class PageWatch:
    """What a page did that a test must not miss: uncaught errors, CSP
    violations, dialogs (an alert() that ran), notifications shown, and every
    request it made and WebSocket it opened."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.sent: list[str] = []  # the lines the page sent, over every WebSocket it opened
        self.received: list[str] = []  # and the lines it received
        self.websockets = 0
        self.requests: list[str] = []  # each request's method, URL, headers and body, as text
        page.on("websocket", self._websocket)
        page.on("request", self._request)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        text = message.text
        if message.type == "error" and "WebSocket" not in text and "net::ERR_" not in text:
            self.errors.append(f"console error: {text}")
        elif "Content Security Policy" in text:
            self.errors.append(f"CSP: {text}")

    def _request(self, request: Any) -> None:
        body = request.post_data_buffer
        self.requests.append(
            f"{request.method} {request.url}\n{request.headers}\n{body.decode(errors='replace') if body else ''}"
        )

    def _websocket(self, ws: Any) -> None:
        self.websockets += 1
        self.requests.append(f"WEBSOCKET {ws.url}")
        ws.on("framesent", lambda payload: self.sent.append(_text(payload)))
        ws.on("framereceived", lambda payload: self.received.append(_text(payload)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def notifications(self) -> list[dict[str, str]]:
        return self.page.evaluate("window.__notifications || []")  # type: ignore[no-any-return]


def _text(payload: str | bytes) -> str:
    return payload if isinstance(payload, str) else payload.decode(errors="replace")


# Recorded instead of shown: headless Chromium has no notification centre.
# Playwright adds this script through DevTools, so the page's CSP does not apply to it.
_INIT_SCRIPT = """
(() => {
  window.__notifications = [];
  window.__hidden = false;
  class RecordedNotification extends EventTarget {
    static get permission() { return "granted"; }
    static requestPermission() { return Promise.resolve("granted"); }
    constructor(title, options) { super(); window.__notifications.push({title, body: options && options.body}); }
    close() {}
  }
  window.Notification = RecordedNotification;
  Object.defineProperty(document, "hidden", {get: () => window.__hidden});
  // Counted as the page makes them, so that a test can tell that it opened none by itself.
  window.__websockets = 0;
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) { super(...args); window.__websockets += 1; }
  };
  document.addEventListener("securitypolicyviolation", (e) => {
    console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`);
  });
})();
"""


@pytest.fixture
def open_page(browser: Browser, tmp_path: Path) -> Iterator[Callable[..., tuple[Page, PageWatch]]]:
    """Factory: `open_page(viewport=DESKTOP, color_scheme="light")` gives a page in a
    fresh context (its own localStorage) and its PageWatch; `open_page(beside=page)`
    another page in `page`'s context (the same browser profile: its localStorage,
    not its sessionStorage, which is per tab). Closed at teardown, and the test
    fails if a page logged an error or ran a dialog."""
    contexts: list[BrowserContext] = []
    watches: list[PageWatch] = []

    def open_one(
        viewport: dict[str, int] = DESKTOP,
        color_scheme: str = "light",
        bypass_csp: bool = False,
        beside: Page | None = None,
    ) -> tuple[Page, PageWatch]:
        if beside is not None:
            page = beside.context.new_page()
            watches.append(PageWatch(page))
            return page, watches[-1]
        context = browser.new_context(
            ignore_https_errors=True,
            viewport=viewport,
            color_scheme=color_scheme,  # type: ignore[arg-type]
            locale="en-GB",
            timezone_id="UTC",
            bypass_csp=bypass_csp,
        )
        context.add_init_script(_INIT_SCRIPT)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch = PageWatch(page)
        contexts.append(context)
        watches.append(watch)
        return page, watch

    yield open_one
    problems = []
    for watch in watches:
        problems += watch.errors + [f"dialog: {d}" for d in watch.dialogs]
    for context in contexts:
        context.close()
    assert not problems, problems


def url_of(daemon: Daemon) -> str:
    return f"https://127.0.0.1:{daemon.port}/"


def login(page: Page, daemon: Daemon, nick: str) -> None:
    """Open the client and sign in as `nick`; returns once the composer is there."""
    page.goto(url_of(daemon))
    page.get_by_label("Nickname").fill(nick)
    page.get_by_role("button", name="Join", exact=True).click()
    expect(page.locator("#me")).to_contain_text(nick)
    expect(page.locator("#composer-input")).to_be_visible()


def say(page: Page, text: str) -> None:
    """Type `text` in the message box and press Enter."""
    box = page.locator("#composer-input")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def log_of(page: Page, conversation: str) -> Any:
    """The message log of one conversation (a room or a nickname), on screen or not."""
    return page.locator(f'.log[aria-label="Messages in {conversation}"]')


def event_ids(page: Page, conversation: str) -> list[int]:
    return [
        int(i)
        for i in log_of(page, conversation).locator(".msg[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")
    ]


def texts(page: Page, conversation: str) -> list[str]:
    """The message bodies of a conversation's events, top to bottom."""
    return log_of(page, conversation).locator(".msg[data-id] .body").all_text_contents()  # type: ignore[no-any-return]


def line_user(daemon: Daemon, nick: str) -> ChatClient:
    """A line-protocol user (what `chatctl connect` speaks), registered and past
    its autojoin (`CURRENT`), closed at teardown."""
    client = daemon.client()
    client.expect_greeting()  # HELLO, ACCOUNTS, NICK
    client.send(nick)
    client.expect(f"WELCOME {nick} ")
    client.nick = nick
    client.expect_eventually("CURRENT ")
    return client


def next_from(client: ChatClient, prefix: str, timeout: float = 10.0) -> str:
    """The next line (without its tags) that starts with `prefix`, others skipped."""
    return client.expect_eventually(prefix, timeout)


def free_port() -> int:
    """A port that was free a moment ago, for a daemon that restarts on the same port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
