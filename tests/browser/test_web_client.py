"""The web client in a real Chromium against a real chatd: a browser user and a
line user chat both ways, history after a reload and when scrolling up, a
restart of chatd survived with nothing missed or doubled, hostile text shown
as text, bidi controls kept inside their text, the security headers, cross-origin WebSockets refused, and the page
at desktop and phone size (screenshots in the test's tmp folder)."""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import (
    DESKTOP,
    HOW_TO_RUN,
    PHONE,
    PageWatch,
    event_ids,
    free_port,
    line_user,
    log_of,
    login,
    next_from,
    say,
    texts,
    url_of,
)
from tests.conftest import Daemon, wait_until
from tests.support.chatctl import TAGS, ScriptClient

pytest.importorskip("playwright", reason=f"playwright is not installed; to run the browser tests: {HOW_TO_RUN}")
from playwright.sync_api import Page, expect

OpenPage = Callable[..., tuple[Page, PageWatch]]


def sidebar_entry(page: Page, name: str) -> Any:
    return page.locator(f'#sidebar li[data-conv="{name.lower()}"] button')


class TerminalUser:
    """`chatctl connect` (script mode: stdin in, the server's lines out), the
    terminal client, as the browser user's partner."""

    def __init__(self, daemon: Daemon, nick: str, clients: list[ScriptClient]) -> None:
        self.script = ScriptClient(daemon.port, daemon.pki.ca, nick)
        clients.append(self.script)  # killed at teardown
        self.expect_eventually("CURRENT ")

    def send(self, line: str) -> None:
        self.script.send(line)

    def expect_eventually(self, prefix: str, timeout: float = 10.0) -> str:
        """The next line, tags taken off, that starts with `prefix`."""
        deadline = time.monotonic() + timeout
        while True:
            line = TAGS.sub("", self.script.expect("", max(0.01, deadline - time.monotonic())), count=1)
            if line.startswith(prefix):
                return line


def test_a_browser_user_and_a_chatctl_user_chat_both_ways_in_two_rooms(
    start_daemon: Callable[..., Daemon], open_page: OpenPage, script_clients: list[ScriptClient]
) -> None:
    daemon = start_daemon()
    page, watch = open_page()
    login(page, daemon, "alice")
    expect(page.locator("#conv-title")).to_have_text("#lobby")
    bob = TerminalUser(daemon, "bob", script_clients)

    # #lobby, both ways.
    bob.send("hello from the terminal")
    expect(log_of(page, "#lobby")).to_contain_text("hello from the terminal")
    say(page, "hello from the browser")
    assert next_from(bob, "MSG #lobby alice ") == "MSG #lobby alice hello from the browser"

    # A second room, joined from the sidebar's form; the line user joins it too.
    page.get_by_label("Join or create a room").fill("#rust")
    page.get_by_label("Join or create a room").press("Enter")
    expect(page.locator("#conv-title")).to_have_text("#rust")
    expect(page.locator("#composer-input")).to_be_focused()
    bob.send("/join #rust")
    expect(page.locator("#member-list")).to_contain_text("bob")
    bob.send("/msg #rust borrow checker question")
    expect(log_of(page, "#rust")).to_contain_text("borrow checker question")
    say(page, "ask away")
    assert next_from(bob, "MSG #rust alice ") == "MSG #rust alice ask away"
    say(page, "/me listens")
    assert next_from(bob, "ACTION #rust alice ") == "ACTION #rust alice listens"
    expect(log_of(page, "#rust").locator(".msg.action")).to_contain_text("* alice listens")
    say(page, "/topic lifetimes and borrows")
    expect(page.locator("#topic")).to_have_text("lifetimes and borrows")

    # A line in the room not on screen: an unread count; a mention: highlighted.
    bob.send("/msg #lobby meanwhile in the lobby, alice")
    expect(sidebar_entry(page, "#lobby").locator(".badge")).to_have_text("1")
    expect(sidebar_entry(page, "#lobby")).to_have_class(re.compile(r"\bmentioned\b"))
    sidebar_entry(page, "#lobby").click()
    expect(page.locator("#conv-title")).to_have_text("#lobby")
    expect(log_of(page, "#lobby").locator(".msg.mention")).to_contain_text("meanwhile in the lobby")
    expect(sidebar_entry(page, "#lobby").locator(".badge")).to_be_hidden()

    # A direct message is its own conversation; a reply from there is a DM again.
    bob.send("/msg alice just between us")
    expect(sidebar_entry(page, "bob").locator(".badge")).to_have_text("1")
    sidebar_entry(page, "bob").click()
    expect(log_of(page, "bob")).to_contain_text("just between us")
    say(page, "sure")
    assert next_from(bob, "DM alice bob ") == "DM alice bob sure"

    # While the tab is hidden, mentions and DMs notify (the page asked for permission).
    page.evaluate("window.__hidden = true")
    bob.send("/msg #rust alice: are you there?")
    bob.send("/msg alice ping")
    bob.send("/msg #rust not for you")
    page.wait_for_function("window.__notifications.length >= 2")
    bodies = [n["body"] for n in watch.notifications()]
    assert bodies == ["alice: are you there?", "ping"], bodies
    expect(page).to_have_title(re.compile(r"^\(\d+\) chatd$"))


def test_a_reload_shows_the_history_and_scrolling_up_pages_older_history(
    start_daemon: Callable[..., Daemon], open_page: OpenPage
) -> None:
    daemon = start_daemon(history={"backlog": 5})
    bob = line_user(daemon, "bob")
    said = [f"line {n:03d}" for n in range(1, 131)]  # the backlog, a page of 100, a page of 25
    for text in said:
        bob.send(text)
    bob.sync()
    page, _ = open_page(viewport={"width": 1280, "height": 500})
    login(page, daemon, "carol")
    lobby = log_of(page, "#lobby")
    expect(lobby.locator(".msg[data-id]").last).to_contain_text("line 130")
    page.get_by_label("Join or create a room").fill("#quiet")
    page.get_by_label("Join or create a room").press("Enter")
    expect(page.locator("#conv-title")).to_have_text("#quiet")
    say(page, "said before the reload")

    page.reload()
    # Signed in again by itself (the nickname is remembered), back in both rooms.
    expect(page.locator("#me")).to_contain_text("carol")
    expect(page.locator("#conv-title")).to_have_text("#quiet")
    expect(log_of(page, "#quiet")).to_contain_text("said before the reload")
    sidebar_entry(page, "#lobby").click()
    expect(lobby.locator(".msg[data-id]").last).to_contain_text("line 130")

    # The backlog is 5 events: scrolling up asks for older pages until the start.
    for _ in range(20):
        if lobby.locator(".older").inner_text().startswith("The start"):
            break
        lobby.evaluate("log => { log.scrollTop = 0; log.dispatchEvent(new Event('scroll')); }")
        page.wait_for_function(
            "log => !log.querySelector('.older').textContent.startsWith('Loading')", arg=lobby.element_handle()
        )
    expect(lobby.locator(".older")).to_have_text("The start of #lobby")
    assert texts(page, "#lobby") == said
    ids = event_ids(page, "#lobby")
    assert ids == sorted(set(ids)), ids


def test_a_restart_of_chatd_is_survived_with_nothing_missed_and_nothing_doubled(
    start_daemon: Callable[..., Daemon], open_page: OpenPage
) -> None:
    port = free_port()
    # A backlog of 2: what is missed beyond it comes from /history after <id>.
    daemon = start_daemon(server={"port": port}, history={"backlog": 2, "flush_ms": 10})
    page, watch = open_page()
    login(page, daemon, "dave")
    page.get_by_label("Join or create a room").fill("#ops")
    page.get_by_label("Join or create a room").press("Enter")
    expect(page.locator("#conv-title")).to_have_text("#ops")
    bob = line_user(daemon, "bob")
    bob.join("#ops")
    for n in range(3):
        bob.send(f"/msg #lobby lobby before {n}")
        bob.send(f"/msg #ops ops before {n}")
    expect(log_of(page, "#ops")).to_contain_text("ops before 2")
    expect(log_of(page, "#lobby")).to_contain_text("lobby before 2")

    assert daemon.stop() == 0
    expect(page.locator("#status")).to_contain_text("Reconnecting")
    # Kept offline until bob has said more than a backlog holds, so that the
    # client has to page the gap in with /history after <id>.
    page.context.set_offline(True)
    daemon.start(wait=False)  # its log already has the first run's `listening`
    wait_until(lambda: len(daemon.find_events("listening")) == 2, 20, "chatd listening again")
    bob = line_user(daemon, "bob")
    bob.join("#ops")
    for n in range(6):
        bob.send(f"/msg #lobby lobby after {n}")
        bob.send(f"/msg #ops ops after {n}")
    bob.sync()
    page.context.set_offline(False)

    # The client's backoff is at most a few seconds this early.
    expect(page.locator("#status")).not_to_contain_text("Reconnecting", timeout=20_000)
    expect(log_of(page, "#ops").locator(".msg[data-id]").last).to_contain_text("ops after 5")
    expect(log_of(page, "#lobby").locator(".msg[data-id]").last).to_contain_text("lobby after 5")
    for room in ("ops", "lobby"):
        expected = [f"{room} before {n}" for n in range(3)] + [f"{room} after {n}" for n in range(6)]
        # The backlog shows first; the /history reply that fills the gap may come after it.
        wait_until(lambda: texts(page, f"#{room}") == expected, 20, f"#{room} caught up")
        assert texts(page, f"#{room}") == expected
        ids = event_ids(page, f"#{room}")
        assert ids == sorted(set(ids)), ids
    catch_up = [line for line in watch.sent if " after " in line and line.startswith("/history ")]
    assert {line.split()[1] for line in catch_up} == {"#ops", "#lobby"}, watch.sent
    # "after 0" is older than the backlog of 2: it came in a /history reply.
    assert any(line.endswith(";history MSG #ops bob ops after 0") for line in watch.received), watch.received
    # Still in both rooms, and still talking.
    say(page, "back again")
    assert next_from(bob, "MSG #ops dave ") == "MSG #ops dave back again"


HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    'javascript:alert(3) and <a href="javascript:alert(4)">click</a>',
    "https://example.org/?q=<img src=x onerror=alert(5)>",
]


def test_hostile_text_appears_as_text_and_runs_nothing(
    start_daemon: Callable[..., Daemon], open_page: OpenPage
) -> None:
    daemon = start_daemon()
    page, watch = open_page()
    login(page, daemon, "erin")
    mallory = line_user(daemon, "mallory")
    for text in HOSTILE:
        mallory.send(text)
    mallory.send("/topic <img src=x onerror=alert(6)>")
    mallory.send("/msg erin <script>alert(7)</script>")
    lobby = log_of(page, "#lobby")
    expect(lobby.locator(".msg[data-id]")).to_have_count(len(HOSTILE) + 1)
    expect(page.locator("#topic")).to_have_text("<img src=x onerror=alert(6)>")
    expect(sidebar_entry(page, "mallory")).to_be_visible()
    assert texts(page, "#lobby")[: len(HOSTILE)] == HOSTILE

    page_html = page.locator("#app").inner_html()
    assert page.locator("#app script, #app img, #app iframe").count() == 0, page_html
    assert page.locator('a[href^="javascript"]').count() == 0
    links = lobby.locator("a")
    expect(links).to_have_count(1)
    assert links.get_attribute("href") == "https://example.org/?q="  # a URL ends at "<"
    assert links.get_attribute("rel") == "noopener noreferrer"
    assert links.get_attribute("target") == "_blank"
    sidebar_entry(page, "mallory").click()
    expect(log_of(page, "mallory")).to_contain_text("<script>alert(7)</script>")
    assert watch.dialogs == []


# Where the text holding U+202E is, how it is isolated, and where a probe put
# right after it (in the same line) lands: left of the text if the override
# leaked out of it and reordered what follows.
_BIDI_PROBE = """holder => {
  const walker = document.createTreeWalker(holder, NodeFilter.SHOW_TEXT);
  let node = walker.nextNode();
  while (node && !node.data.includes("\\u202e")) node = walker.nextNode();
  if (!node) return null;
  const isolate = node.parentElement.closest("bdi, [dir=auto]");
  const probe = document.createElement("span");
  probe.textContent = "END";
  (isolate || node).after(probe);
  const range = document.createRange();
  range.selectNodeContents(node);
  const text = range.getBoundingClientRect(), after = probe.getBoundingClientRect();
  probe.remove();
  return {
    isolated: isolate !== null && holder.contains(isolate),
    style: isolate ? getComputedStyle(isolate).unicodeBidi : null,
    textRight: text.right, probeLeft: after.left,
  };
}"""


def test_bidi_controls_in_a_text_or_a_topic_stay_inside_it(
    start_daemon: Callable[..., Daemon], open_page: OpenPage
) -> None:
    """The server keeps bidi controls (right-to-left text needs them); the page
    isolates each message text, topic and nickname, so that an override left
    open (U+202E) cannot reorder the rest of the line or of the page."""
    daemon = start_daemon()
    page, watch = open_page()
    login(page, daemon, "hana")
    mallory = line_user(daemon, "mallory")
    spoof = "look \u202egnp.exe"  # shows as "look exe.png"; the override is never closed
    mallory.send(spoof)
    mallory.send("/me \u2067waves \u202eolleh")  # an isolate opened, and an override, both left open
    mallory.send(f"/topic {spoof}")
    lobby = log_of(page, "#lobby")
    expect(lobby.locator(".msg[data-id]")).to_have_count(3)
    assert texts(page, "#lobby")[:2] == [spoof, "* mallory \u2067waves \u202eolleh"]  # kept, as sent
    expect(page.locator("#topic")).to_have_text(spoof)
    holders = {
        "message": lobby.locator(".msg[data-id]").nth(0).locator(".line"),
        "action": lobby.locator(".msg[data-id]").nth(1).locator(".line"),
        "topic change": lobby.locator(".msg[data-id]").nth(2).locator(".line"),
        "topic": page.locator("#topic"),
    }
    for what, holder in holders.items():
        found = holder.evaluate(_BIDI_PROBE)
        assert found is not None, what
        assert found["isolated"] and found["style"] in ("isolate", "isolate-override", "plaintext"), (what, found)
        assert found["probeLeft"] >= found["textRight"] - 1, (what, found)  # what follows stays after it
    for nick in lobby.locator(".msg[data-id] .nick").all():
        assert nick.evaluate("n => n.tagName === 'BDI' && getComputedStyle(n).unicodeBidi === 'isolate'")
    assert watch.dialogs == []


def test_the_page_carries_its_security_headers(start_daemon: Callable[..., Daemon], open_page: OpenPage) -> None:
    daemon = start_daemon()
    page, _ = open_page()
    response = page.goto(url_of(daemon))
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    # The client works under that policy: the fixture fails the test on any violation.
    login(page, daemon, "frank")
    say(page, "under the policy")
    expect(log_of(page, "#lobby")).to_contain_text("under the policy")


def test_a_cross_origin_websocket_is_refused(start_daemon: Callable[..., Daemon], open_page: OpenPage) -> None:
    daemon = start_daemon()
    # From a browser: a page of another origin, https://localhost:<port>, opens
    # wss://127.0.0.1:<port>/ws. Both are loopback, so Chromium's local network
    # checks let it through; the page's own CSP (connect-src 'self') would stop
    # it first, so this context ignores CSP: the server must refuse by itself.
    page, _ = open_page(bypass_csp=True)
    page.goto(f"https://localhost:{daemon.port}/")
    outcome = page.evaluate(
        """url => new Promise(resolve => {
             const ws = new WebSocket(url);
             ws.onopen = () => { resolve("open"); ws.close(); };
             ws.onerror = () => resolve("refused");
           })""",
        f"wss://127.0.0.1:{daemon.port}/ws",
    )
    assert outcome == "refused"
    refused = daemon.wait_for_event("websocket_refused")
    assert refused["origin"] == f"https://localhost:{daemon.port}", refused

    # From Python, the handshake itself: a foreign Origin gets 403, our own gets 101.
    def upgrade(origin: str) -> bytes:
        context = ssl.create_default_context(cafile=str(daemon.pki.ca))
        context.set_alpn_protocols(["http/1.1"])
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(
                    f"GET /ws HTTP/1.1\r\nHost: localhost:{daemon.port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n".encode()
                )
                return tls.recv(4096)

    assert upgrade("https://evil.example").startswith(b"HTTP/1.1 403 ")
    assert upgrade(f"https://localhost:{daemon.port}").startswith(b"HTTP/1.1 101 ")


def test_nickname_errors_are_shown_next_to_the_field(start_daemon: Callable[..., Daemon], open_page: OpenPage) -> None:
    daemon = start_daemon(limits={"max_nick_length": 8})
    line_user(daemon, "taken")
    page, _ = open_page()
    page.goto(url_of(daemon))
    field = page.get_by_label("Nickname")
    field.fill("taken")
    field.press("Enter")
    expect(page.locator("#nick-error")).to_contain_text("taken")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    field.fill("muchtoolong")  # valid characters, but longer than this server allows
    field.press("Enter")
    expect(page.locator("#nick-error")).to_contain_text("Not a valid nickname")
    field.fill("grace")
    field.press("Enter")
    expect(page.locator("#me")).to_contain_text("grace")
    assert page.evaluate("localStorage.getItem('chatd.nick')") == '"grace"'


def _demo_content(daemon: Daemon) -> None:
    bob = line_user(daemon, "bob")
    bob.send("/topic Welcome! Be kind. Notes: https://example.org/notes")
    bob.send("morning all")
    bob.send("/me pours coffee")
    bob.send("has anyone tried the web client yet? heidi?")


def test_the_page_at_desktop_and_phone_size_keyboard_only(
    start_daemon: Callable[..., Daemon], open_page: OpenPage, tmp_path: Path
) -> None:
    daemon = start_daemon()
    _demo_content(daemon)
    page, _ = open_page(viewport=DESKTOP)
    login(page, daemon, "heidi")
    expect(log_of(page, "#lobby")).to_contain_text("has anyone tried")
    say(page, "yes, right now")
    page.screenshot(path=tmp_path / "desktop.png", animations="disabled")
    # Keyboard only: from the message box, Alt+Down moves on; Tab reaches the controls.
    page.get_by_label("Join or create a room").fill("#help")
    page.get_by_label("Join or create a room").press("Enter")
    expect(page.locator("#conv-title")).to_have_text("#help")
    page.keyboard.press("Alt+ArrowDown")
    expect(page.locator("#conv-title")).to_have_text("#lobby")
    expect(page.locator("#composer-input")).to_be_focused()

    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    expect(page.locator("#composer-input")).to_be_in_viewport()
    page.screenshot(path=tmp_path / "phone.png", animations="disabled")
    menu = page.get_by_role("button", name=re.compile("^Conversations"))
    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#sidebar")).to_be_in_viewport()
    page.screenshot(path=tmp_path / "phone-menu.png", animations="disabled")
    page.keyboard.press("Escape")
    expect(menu).to_be_focused()
    expect(menu).to_have_attribute("aria-expanded", "false")
    for name in ("desktop.png", "phone.png", "phone-menu.png"):
        assert (tmp_path / name).stat().st_size > 10_000
