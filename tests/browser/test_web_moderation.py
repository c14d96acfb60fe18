"""Room roles and moderation on the web page (issue 22, docs/web-client.md
"Room roles"), in a real Chromium against a real chatd over real TLS: the
owner's settings panel turning `private` on (a stranger's /rooms no longer
lists the room), an op given from the member menu (both pages show `@`), a
kick from the menu (the room leaves the kicked page, with the reason, and
they join again), a moderated room refusing a member in words and letting a
voiced one speak, and an invite whose "Join" button lets someone into a
private room. Line clients play the other parties where that is simpler; the
page fixture fails a test on any CSP violation or page error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.conftest import HOW_TO_RUN, PageWatch, log_of, login, say, url_of
from tests.conftest import Daemon
from tests.support.accounts import FAST_ARGON2, argon2id, ok, signed_in
from tests.support.chatclient import ChatClient

pytest.importorskip("playwright", reason=f"playwright is not installed; to run the browser tests: {HOW_TO_RUN}")
from playwright.sync_api import Page, expect

OpenPage = Callable[..., tuple[Page, PageWatch]]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def chatd(start_daemon: Callable[..., Daemon], short_dir: Path) -> Daemon:
    """A chatd with accounts (cheap argon2id) and a control socket to add them."""
    return start_daemon(
        accounts={"argon2": FAST_ARGON2},
        control={"socket": str(short_dir / "control.sock")},
        limits={"max_nick_attempts": 20},
    )


def accounts(daemon: Daemon, *names: str) -> None:
    for name in names:
        ok(daemon, "user_add", name=name, password_hash=argon2id(PASSWORD))


def signed_in_page(open_page: OpenPage, daemon: Daemon, name: str, **options: str) -> Page:
    """A page signed in to the account `name` with its password."""
    page, _ = open_page(**options)
    page.goto(url_of(daemon))
    expect(page.get_by_role("button", name="Create an account")).to_be_visible()  # the server's modes are known
    page.get_by_label("Nickname").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#me")).to_contain_text(name)
    return page


def line_account(daemon: Daemon, name: str) -> ChatClient:
    """A line client signed in to the account `name`, past its autojoin."""
    client = signed_in(daemon, f"/login {name} {PASSWORD}", name)
    daemon.clients.append(client)
    return client


def join(page: Page, room: str) -> None:
    """Join `room` with the sidebar's form; returns once it is on screen."""
    page.locator("#join-input").fill(room)
    page.locator("#join-input").press("Enter")
    expect(page.locator("#conv-title")).to_have_text(room)


def member(page: Page, nick: str) -> object:
    return page.locator(f'#member-list button.member[data-nick="{nick}"]')


def assert_names_inside_the_member_list(page: Page) -> None:
    """Every nickname of the member list is drawn inside it (not pushed out by its mark)."""
    column = page.locator("#members").bounding_box()
    assert column is not None
    for nick in page.locator("#member-list .nick").all():
        box = nick.bounding_box()
        assert (
            box is not None and column["x"] <= box["x"] and box["x"] + box["width"] <= column["x"] + column["width"]
        ), (
            nick.text_content(),
            box,
            column,
        )


def test_the_owner_turns_private_on_and_a_stranger_no_longer_sees_the_room(chatd: Daemon, open_page: OpenPage) -> None:
    accounts(chatd, "alice")
    alice = signed_in_page(open_page, chatd, "alice")
    join(alice, "#secret")
    alice.get_by_role("button", name="Room settings").click()
    panel = alice.locator("#room-settings")
    expect(panel).to_contain_text("Nobody registered #secret")
    panel.get_by_role("button", name="Register this room").click()
    expect(panel.locator("#settings-summary")).to_have_text("You own #secret.")
    expect(log_of(alice, "#secret")).to_contain_text("#secret is now registered to alice")

    sam, _ = open_page(color_scheme="dark")
    login(sam, chatd, "sam")  # a guest, in #lobby
    say(sam, "/rooms")
    lobby = log_of(sam, "#lobby")
    expect(lobby).to_contain_text("#secret (1 member)")

    private = panel.get_by_label("Private: invite only, hidden from others")
    expect(private).to_be_enabled()
    private.check()
    expect(log_of(alice, "#secret")).to_contain_text("alice turned on the flag “Private: invite only")
    expect(alice.locator("#room-flags")).to_contain_text("Private")
    expect(private).to_be_checked()
    alice.screenshot(path=chatd.workdir / "settings-light.png", animations="disabled")
    panel.get_by_role("button", name="Close").click()
    expect(panel).to_be_hidden()

    say(sam, "/rooms")
    answers = lobby.locator(".msg.info", has_text="Join one with /join #name")
    expect(answers).to_have_count(2)
    infos = lobby.locator(".msg.info .body").all_text_contents()
    second = infos[infos.index(next(t for t in infos if "Join one" in t)) + 1 :]
    assert second and not any("#secret" in text for text in second), second
    # Nor can the stranger join it: the refusal in words, in the join form.
    sam.locator("#join-input").fill("#secret")
    sam.locator("#join-input").press("Enter")
    expect(sam.locator("#join-error")).to_contain_text("private: you can join it only with an invite")


def test_an_op_from_the_member_menu_and_a_kick_with_a_reason(chatd: Daemon, open_page: OpenPage) -> None:
    accounts(chatd, "alice", "bob")
    alice = signed_in_page(open_page, chatd, "alice")
    bob = signed_in_page(open_page, chatd, "bob", color_scheme="dark")
    join(alice, "#rust")
    say(alice, "/room register #rust")
    expect(alice.locator("#member-list")).to_contain_text("@alice owner")
    join(bob, "#rust")
    expect(bob.locator("#member-list")).to_contain_text("@alice owner")

    # By keyboard: the member's button opens the menu; the owner may op.
    member(alice, "bob").focus()
    alice.keyboard.press("Enter")
    menu = alice.locator("#member-menu")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("button", name="Send a direct message")).to_be_visible()
    make_op = menu.get_by_role("button", name="Op (make an op)")
    make_op.focus()
    alice.keyboard.press("Enter")
    expect(menu).to_be_hidden()
    for page in (alice, bob):
        expect(member(page, "bob") if page is alice else page.locator("#member-list li.self")).to_contain_text("@bob")
        expect(log_of(page, "#rust")).to_contain_text("bob is now an op, by alice")

    # A kick asks for a reason; the kicked page loses the room and says why.
    member(alice, "bob").click()
    expect(menu.get_by_role("button", name="Deop (no longer an op)")).to_be_visible()
    menu.get_by_role("button", name="Kick…").click()
    menu.get_by_label("Why kick bob?").fill("take a break")
    alice.screenshot(path=chatd.workdir / "kick-reason.png", animations="disabled")
    menu.get_by_role("button", name="Kick bob").click()
    expect(log_of(alice, "#rust")).to_contain_text("bob was kicked from #rust by alice: take a break")
    expect(bob.locator('#room-list li[data-conv="#rust"]')).to_have_count(0)
    status = bob.locator("#status")
    expect(status).to_contain_text("You were kicked from #rust by alice: take a break")
    expect(bob.locator("#conv-title")).to_have_text("#lobby")
    bob.screenshot(path=chatd.workdir / "kicked-dark.png", animations="disabled")

    # They may come back (an op still: the role is the account's).
    status.get_by_role("button", name="Join #rust again").click()
    expect(bob.locator("#conv-title")).to_have_text("#rust")
    expect(log_of(alice, "#rust")).to_contain_text("bob joined #rust")
    expect(member(alice, "bob")).to_contain_text("@bob")
    expect(bob.locator("#member-list")).to_contain_text("@alice owner")


def test_a_moderated_room_refuses_a_member_in_words_and_lets_a_voice_speak(chatd: Daemon, open_page: OpenPage) -> None:
    accounts(chatd, "alice", "bob")
    alice = line_account(chatd, "alice")
    for line in ("/join #quiet", "/room register #quiet", "/room #quiet moderated on"):
        alice.send(line)
    alice.expect_eventually("FLAG #quiet moderated on alice")
    bob = signed_in_page(open_page, chatd, "bob")
    join(bob, "#quiet")
    expect(bob.locator("#room-flags")).to_contain_text("Moderated")

    say(bob, "may I speak?")
    log = log_of(bob, "#quiet")
    expect(log.locator(".msg.error")).to_contain_text("Your message was not sent: the room is moderated")
    alice.send("/voice #quiet bob")
    expect(bob.locator("#member-list li.self")).to_contain_text("+bob")
    expect(log).to_contain_text("bob is now voiced, by alice")
    say(bob, "now I may")
    assert alice.expect_eventually("MSG #quiet bob ") == "MSG #quiet bob now I may"
    expect(log.locator(".msg[data-id] .body")).to_have_text(["now I may"])  # the refused line never was one


def test_an_invite_from_the_member_menu_offers_join_on_the_invited_page(chatd: Daemon, open_page: OpenPage) -> None:
    accounts(chatd, "alice")
    alice = signed_in_page(open_page, chatd, "alice")
    bob, _ = open_page(color_scheme="dark")
    login(bob, chatd, "bob")  # a guest: an invite is for the nickname on this connection
    join(alice, "#secret")
    say(alice, "/room register #secret")
    say(alice, "/room #secret private on")
    expect(alice.locator("#room-flags")).to_contain_text("Private")

    alice.locator('#room-list li[data-conv="#lobby"] button').click()
    expect(alice.locator("#conv-title")).to_have_text("#lobby")
    member(alice, "bob").click()
    alice.locator("#member-menu").get_by_role("button", name="Invite to #secret").click()
    expect(log_of(alice, "#secret")).to_contain_text("bob may join #secret once within 24 hours, invited by alice")

    assert_names_inside_the_member_list(bob)  # marks or none, in a room nobody registered too
    invite = log_of(bob, "#lobby").locator(".msg.invite")
    expect(invite).to_contain_text("alice invites you to #secret")
    bob.screenshot(path=chatd.workdir / "invite-dark.png", animations="disabled")
    invite.get_by_role("button", name="Join #secret").click()
    expect(bob.locator("#conv-title")).to_have_text("#secret")
    expect(bob.locator("#room-flags")).to_contain_text("Private")
    expect(alice.locator("#room-list")).to_contain_text("#secret")
    alice.locator('#room-list li[data-conv="#secret"] button').click()
    expect(member(alice, "bob")).to_be_visible()
    assert_names_inside_the_member_list(alice)
