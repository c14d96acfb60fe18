"""The web client's accounts in a real Chromium against a real chatd (issue 21,
docs/web-client.md "Accounts"): an invite link that registers, signing in with
and without "Remember me" (which storage keeps the token, and whether a new
page signs in by itself), sign-out, `BYE replaced` and taking over, a token
the server no longer knows, refusals shown in the form.

In every test the password is looked for in everything the browser kept or
sent: localStorage, sessionStorage and cookies of every page, every request's
URL, headers and body; in WebSocket frames, only the one that signs in
(`/login`, `/register`) may carry it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import HOW_TO_RUN, PHONE, PageWatch, free_port, line_user, url_of
from tests.conftest import Daemon, wait_until
from tests.support.accounts import FAST_ARGON2, argon2id, greeted, ok, refused, signed_in

pytest.importorskip("playwright", reason=f"playwright is not installed; to run the browser tests: {HOW_TO_RUN}")
from playwright.sync_api import Page, expect

OpenPage = Callable[..., tuple[Page, PageWatch]]
PASSWORD = "correct horse battery staple"

_STORAGE = """() => JSON.stringify({
  local: Object.fromEntries(Object.entries(localStorage)),
  session: Object.fromEntries(Object.entries(sessionStorage)),
  cookie: document.cookie,
})"""


@pytest.fixture
def accounts(start_daemon: Callable[..., Daemon], short_dir: Path) -> Callable[..., Daemon]:
    """Factory: a chatd with accounts (cheap argon2id) and a control socket."""

    def start(server: dict[str, Any] | None = None, **accounts: Any) -> Daemon:
        return start_daemon(
            server=server or {},
            accounts={"argon2": FAST_ARGON2, **accounts},
            control={"socket": str(short_dir / "control.sock")},
            limits={"max_nick_attempts": 20},
        )

    return start


def storage(page: Page) -> dict[str, Any]:
    """The page's localStorage, sessionStorage and cookies (`document.cookie`)."""
    return json.loads(page.evaluate(_STORAGE))  # type: ignore[no-any-return]


def token_in(page: Page, area: str) -> dict[str, str] | None:
    """The sign-in token the page keeps in `area` ("local" or "session"), if any."""
    kept = storage(page)[area].get("chatd.token")
    return json.loads(kept) if kept else None


def assert_password_kept_nowhere(daemon: Daemon, password: str, *visits: tuple[Page, PageWatch]) -> None:
    """Neither storage, nor cookies, nor any request of these pages holds
    `password`; only a WebSocket frame that signs in carries it; not the log."""
    for page, watch in visits:
        if not page.is_closed():
            assert password not in page.url
            assert password not in str(storage(page)), storage(page)
            assert password not in str(page.context.cookies())
        for request in watch.requests:
            assert password not in request, request
        for frame in watch.sent:
            if password in frame:
                assert frame.startswith(("/login ", "/register ")), frame
    assert password not in daemon.log()


def close_checked(daemon: Daemon, page: Page, watch: PageWatch, password: str) -> None:
    """Close a page after looking for the password in what it kept (its sessionStorage goes with it)."""
    assert_password_kept_nowhere(daemon, password, (page, watch))
    page.close()


def sign_in(page: Page, nick: str, password: str, remember: bool) -> None:
    """Fill the sign-in form (the page shows it) and sign in; returns once signed in."""
    page.get_by_label("Nickname").fill(nick)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Remember me").set_checked(remember)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#me")).to_contain_text(nick)
    expect(page.locator("#composer-input")).to_be_visible()


def wait_for_token(page: Page, area: str) -> dict[str, str]:
    page.wait_for_function(f"() => {area}Storage.getItem('chatd.token') !== null")
    kept = token_in(page, area)
    assert kept is not None
    return kept


def screen_is_asking(page: Page) -> None:
    """The sign-in screen is up, and the page's socket has heard the server's
    modes (the "Create an account" button needs them)."""
    expect(page.locator("#login")).to_be_visible()
    expect(page.get_by_role("button", name="Create an account")).to_be_visible()


def test_an_invite_link_registers_an_account(accounts: Callable[..., Daemon], open_page: OpenPage) -> None:
    daemon = accounts(registration="invite", guests=False)
    invite = ok(daemon, "invite_create", note="for dana")
    page, watch = open_page(color_scheme="dark")
    page.goto(f"{url_of(daemon)}#invite={invite['code']}")

    # The code is in the form, and gone from the address bar (and from history).
    expect(page.get_by_label("Invite code")).to_have_value(invite["code"])
    assert page.url == url_of(daemon)
    assert page.evaluate("location.hash") == ""
    expect(page.locator("#login-intro")).to_contain_text("Create an account")
    assert page.get_by_label("Password", exact=True).get_attribute("autocomplete") == "new-password"
    page.get_by_label("Nickname").fill("dana")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD + " typo")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#again-error")).to_have_text("The two passwords differ.")
    assert not [frame for frame in watch.sent if frame.startswith("/register")]
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.screenshot(path=daemon.workdir / "register-dark.png", animations="disabled")
    page.get_by_role("button", name="Create account").click()

    expect(page.locator("#me")).to_contain_text("dana")
    registered = [frame for frame in watch.sent if frame.startswith("/register ")]
    assert registered == [f"/register dana {invite['code']} {PASSWORD}"]
    assert "/remember 1" in watch.sent  # no "Remember me": a token for a day, for this tab
    kept = wait_for_token(page, "session")
    assert kept["nick"] == "dana" and token_in(page, "local") is None
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # Used up, on the server; the code never reached a request or the log.
    assert [(i["id"], i["used"]) for i in ok(daemon, "invite_list")] == [(invite["id"], 1)]
    assert not any(invite["code"] in request for request in watch.requests), watch.requests
    assert invite["code"] not in daemon.log()
    assert page.get_by_label("Password", exact=True).input_value() == ""  # nothing left in the form either
    assert_password_kept_nowhere(daemon, PASSWORD, (page, watch))


def test_remember_me_decides_which_storage_keeps_the_token(
    accounts: Callable[..., Daemon], open_page: OpenPage
) -> None:
    daemon = accounts()
    for name in ("alice", "bob"):
        ok(daemon, "user_add", name=name, password_hash=argon2id(PASSWORD))

    # Without "Remember me": sessionStorage, for this tab only.
    page, watch = open_page()
    page.goto(url_of(daemon))
    screen_is_asking(page)
    assert page.get_by_label("Password", exact=True).get_attribute("autocomplete") == "current-password"
    sign_in(page, "alice", PASSWORD, remember=False)
    alice_token = wait_for_token(page, "session")
    assert token_in(page, "local") is None
    assert "chatd.nick" not in storage(page)["local"]  # nothing of the account outlives the tab
    # A reload keeps the tab's sessionStorage: back in by itself, with the token.
    page.reload()
    expect(page.locator("#me")).to_contain_text("alice")
    assert watch.sent.count(f"/resume {alice_token['token']}") == 1
    assert len([frame for frame in watch.sent if frame.startswith("/login ")]) == 1
    close_checked(daemon, page, watch, PASSWORD)
    # A new page in the same browser: not signed in.
    again, again_watch = open_page(beside=page)
    again.goto(url_of(daemon))
    screen_is_asking(again)
    expect(again.get_by_label("Nickname")).to_have_value("")
    assert again_watch.sent == [], again_watch.sent  # it never tried: the screen waits for the person
    assert token_in(again, "session") is None and token_in(again, "local") is None

    # With "Remember me": localStorage, and a new page signs in by itself.
    page, watch = open_page()
    page.goto(url_of(daemon))
    screen_is_asking(page)
    sign_in(page, "bob", PASSWORD, remember=True)
    bob_token = wait_for_token(page, "local")
    assert token_in(page, "session") is None
    assert "/remember" in watch.sent  # the server's default days
    close_checked(daemon, page, watch, PASSWORD)
    again, again_watch = open_page(beside=page)
    again.goto(url_of(daemon))
    expect(again.locator("#me")).to_contain_text("bob")
    assert again_watch.sent[0] == f"/resume {bob_token['token']}", again_watch.sent
    assert not [frame for frame in again_watch.sent if frame.startswith("/login")]
    assert_password_kept_nowhere(daemon, PASSWORD, (page, watch), (again, again_watch))


def test_sign_out_forgets_the_token_and_the_server_revokes_it(
    accounts: Callable[..., Daemon], open_page: OpenPage
) -> None:
    daemon = accounts()
    ok(daemon, "user_add", name="carol", password_hash=argon2id(PASSWORD))
    page, watch = open_page()
    page.goto(url_of(daemon))
    screen_is_asking(page)
    sign_in(page, "carol", PASSWORD, remember=True)
    kept = wait_for_token(page, "local")
    page.reload()  # now on a connection that signed in with the token
    expect(page.locator("#me")).to_contain_text("carol")

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#login")).to_be_visible()
    assert "/logout" in watch.sent
    found = storage(page)
    assert "chatd.token" not in found["local"] and "chatd.token" not in found["session"], found
    assert "chatd.nick" not in found["local"], found
    daemon.wait_for_event("token_revoked", account="carol")
    refused(greeted(daemon), f"/resume {kept['token']}", "token_invalid")
    # A new page in this browser is not signed in.
    again, again_watch = open_page(beside=page)
    again.goto(url_of(daemon))
    screen_is_asking(again)
    assert again_watch.sent == []
    assert_password_kept_nowhere(daemon, PASSWORD, (page, watch), (again, again_watch))


def test_a_lost_connection_signs_in_again_with_the_token(accounts: Callable[..., Daemon], open_page: OpenPage) -> None:
    daemon = accounts(server={"port": free_port()})  # the same port after a restart
    ok(daemon, "user_add", name="ivan", password_hash=argon2id(PASSWORD))
    page, watch = open_page()
    page.goto(url_of(daemon))
    screen_is_asking(page)
    sign_in(page, "ivan", PASSWORD, remember=False)
    kept = wait_for_token(page, "session")

    assert daemon.stop() == 0
    expect(page.locator("#status")).to_contain_text("Reconnecting")
    daemon.start(wait=False)  # its log already has the first run's `listening`
    wait_until(lambda: len(daemon.find_events("listening")) == 2, 20, "chatd listening again")
    expect(page.locator("#status")).to_contain_text("Reconnected", timeout=20_000)
    expect(page.locator("#me")).to_contain_text("ivan")
    assert f"/resume {kept['token']}" in watch.sent
    assert len([frame for frame in watch.sent if frame.startswith("/login ")]) == 1  # the password, once
    assert_password_kept_nowhere(daemon, PASSWORD, (page, watch))


def test_replaced_offers_to_take_over_and_does_not_reconnect_by_itself(
    accounts: Callable[..., Daemon], open_page: OpenPage
) -> None:
    daemon = accounts()
    ok(daemon, "user_add", name="erin", password_hash=argon2id(PASSWORD))
    page, watch = open_page()
    page.clock.install()  # the page's timers run when the test says so (its reconnect backoff too)
    page.goto(url_of(daemon))
    screen_is_asking(page)
    sign_in(page, "erin", PASSWORD, remember=False)
    wait_for_token(page, "session")

    elsewhere = signed_in(daemon, f"/login erin {PASSWORD}", "erin")  # erin, on another device
    status = page.locator("#status")
    expect(status).to_contain_text("on another page or device")
    take_over = status.get_by_role("button", name="Use here")
    expect(take_over).to_be_visible()
    # Five minutes of the page's time: far past any backoff. It stays away.
    page.clock.run_for(5 * 60 * 1000)
    assert page.evaluate("window.__websockets") == 1
    expect(take_over).to_be_visible()
    page.screenshot(path=daemon.workdir / "replaced.png", animations="disabled")
    elsewhere.send("/ping still-here")
    assert elsewhere.expect_eventually("PONG ") == "PONG still-here"

    take_over.click()
    assert elsewhere.expect_closed()[-1] == "BYE replaced"
    expect(status).not_to_contain_text("another page or device")
    expect(page.locator("#me")).to_contain_text("erin")
    assert page.evaluate("window.__websockets") == 2  # the one the person asked for, and no other
    assert [frame for frame in watch.sent if frame.startswith("/resume ")] == [
        f"/resume {token_in(page, 'session')['token']}"  # type: ignore[index]
    ]
    assert_password_kept_nowhere(daemon, PASSWORD, (page, watch))


def test_refusals_are_shown_in_the_form(accounts: Callable[..., Daemon], open_page: OpenPage) -> None:
    daemon = accounts()
    ok(daemon, "user_add", name="frank", password_hash=argon2id(PASSWORD))
    page, watch = open_page()
    page.goto(url_of(daemon))
    screen_is_asking(page)
    nick, password = page.get_by_label("Nickname"), page.get_by_label("Password", exact=True)

    # A guest may not take an account's nickname.
    nick.fill("frank")
    page.get_by_role("button", name="Join", exact=True).click()
    expect(page.locator("#nick-error")).to_contain_text("registered account")
    expect(password).to_be_focused()
    # A wrong password: the server's words, the field emptied.
    password.fill(PASSWORD + "!")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#password-error")).to_have_text("Wrong account name or password.")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_value("")
    page.set_viewport_size(PHONE)
    page.screenshot(path=daemon.workdir / "wrong-password-phone.png", animations="disabled")
    # A disabled account: the operator's reason.
    ok(daemon, "user_disable", name="frank", reason="on holiday until Monday")
    password.fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#login-message")).to_contain_text("on holiday until Monday")
    # Enabled again: in. Then disabled while connected: BYE banned, with the reason.
    ok(daemon, "user_enable", name="frank")
    password.fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#me")).to_contain_text("frank")
    wait_for_token(page, "session")
    ok(daemon, "user_disable", name="frank", reason="spamming links")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#login-message")).to_contain_text("spamming links")
    assert token_in(page, "session") is None  # that sign-in is over
    assert_password_kept_nowhere(daemon, PASSWORD, (page, watch))


def test_a_token_the_server_no_longer_knows_brings_the_sign_in_screen(
    accounts: Callable[..., Daemon], open_page: OpenPage
) -> None:
    daemon = accounts(guests=False)
    ok(daemon, "user_add", name="gina", password_hash=argon2id(PASSWORD))
    page, watch = open_page()
    page.goto(url_of(daemon))
    expect(page.locator("#login-intro")).to_contain_text("this server is for its members")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()  # no guests: no "Join"
    page.get_by_label("Nickname").fill("gina")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#password-error")).to_contain_text("takes no guests")
    sign_in(page, "gina", PASSWORD, remember=True)
    wait_for_token(page, "local")
    close_checked(daemon, page, watch, PASSWORD)
    assert ok(daemon, "user_revoke", name="gina") == {"revoked": 1}

    again, again_watch = open_page(beside=page)
    again.goto(url_of(daemon))
    expect(again.locator("#login-message")).to_contain_text("expired or was revoked")
    expect(again.get_by_label("Nickname")).to_have_value("gina")
    expect(again.get_by_label("Password", exact=True)).to_be_focused()
    assert token_in(again, "local") is None
    assert [frame.split(" ")[0] for frame in again_watch.sent] == ["/resume"]
    assert_password_kept_nowhere(daemon, PASSWORD, (page, watch), (again, again_watch))


def test_guests_still_join_with_a_nickname_alone(accounts: Callable[..., Daemon], open_page: OpenPage) -> None:
    daemon = accounts()
    bob = line_user(daemon, "bob")
    page, watch = open_page()
    page.goto(url_of(daemon))
    screen_is_asking(page)
    page.get_by_label("Nickname").fill("hugo")
    page.get_by_role("button", name="Join", exact=True).click()
    expect(page.locator("#me")).to_contain_text("hugo")
    assert bob.expect_eventually("JOIN ") == "JOIN #lobby hugo"
    assert watch.sent[0] == "hugo"
    expect(page.get_by_role("button", name="Change nickname")).to_be_visible()
    found = storage(page)
    assert "chatd.token" not in found["local"] and "chatd.token" not in found["session"]
    assert not [frame for frame in watch.sent if frame.startswith("/remember")]


def test_a_server_without_accounts_gets_no_token_and_no_password_field(
    start_daemon: Callable[..., Daemon], open_page: OpenPage
) -> None:
    """Accounts turned off since the token was kept: it is dropped unsent
    (such a server would take `/resume <token>` for a nickname)."""
    daemon = start_daemon(accounts={"enabled": False})
    page, watch = open_page()
    page.goto(url_of(daemon))
    expect(page.get_by_label("Nickname")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_be_hidden()
    expect(page.get_by_label("Remember me")).to_be_hidden()
    token = {"token": "T" * 43, "nick": "jo", "expires": "2999-01-01T00:00:00.000Z"}
    page.evaluate("token => localStorage.setItem('chatd.token', JSON.stringify(token))", token)
    page.reload()
    expect(page.locator("#login-message")).to_contain_text("no accounts")
    assert token_in(page, "local") is None
    assert watch.sent == [], watch.sent
    page.get_by_label("Nickname").fill("jo")
    page.get_by_role("button", name="Join", exact=True).click()
    expect(page.locator("#me")).to_contain_text("jo")
    assert watch.sent[0] == "jo"
