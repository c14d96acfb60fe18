"""Accounts against a real chatd over real TLS (issue 21, docs/protocol.md
"Accounts"): registering, signing in, registered nicknames, replacement,
tokens, /passwd, /logout, registration modes and invites, DMs between
accounts. Throttles, the hashing queue, bans and what is stored are in
test_accounts_abuse.py."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon
from tests.support.accounts import FAST_ARGON2, argon2id, control, database, greeted, ok, refused, rows, signed_in
from tests.support.wsclient import WebSocketClient

PASSWORD = "correct horse battery staple"


@pytest.fixture
def accounts(start_daemon: Callable[..., Daemon], short_dir: Path) -> Callable[..., Daemon]:
    """Factory: a chatd with accounts (cheap argon2 unless given), a control
    socket, and room for refused attempts."""

    def start(**accounts: Any) -> Daemon:
        settings = {"argon2": FAST_ARGON2, **accounts}
        return start_daemon(
            accounts=settings,
            control={"socket": str(short_dir / "control.sock")},
            limits={"max_nick_attempts": 20},
        )

    return start


def test_the_greeting_names_the_registration_mode(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts(registration="invite", guests=False)
    client = daemon.client()
    assert client.expect("HELLO 5 chatd ")
    assert client.readline() == "ACCOUNTS registration=invite guests=no"
    assert client.readline() == "NICK"


def test_register_then_the_name_is_refused_to_guests_and_to_wrong_passwords(
    accounts: Callable[..., Daemon],
) -> None:
    daemon = accounts()
    alice = signed_in(daemon, f"/register Alice * {PASSWORD}", "Alice")
    guest = greeted(daemon)
    assert "registered account" in refused(guest, "alice", "nick_registered")
    refused(guest, f"/login alice {PASSWORD}x", "auth_failed")
    refused(guest, f"/login nobody {PASSWORD}", "auth_failed")  # one code: names are not probed by it
    refused(guest, f"/register ALICE * {PASSWORD}", "nick_taken")
    guest.send("bob")  # a guest name still works
    guest.expect("WELCOME bob ")
    guest.nick = "bob"
    guest.take_joins()
    guest.send("/nick alice")
    assert guest.expect("ERR nick_registered ")
    alice.send("/nick ALICE")  # a change of case of one's own name
    assert alice.expect_eventually("RENAME ") == "RENAME Alice ALICE"
    alice.send("/nick carol")
    assert "your nickname is your account's name" in alice.expect("ERR nick_invalid ")
    assert daemon.wait_for_event("account_registered", account="Alice")


def test_a_second_login_replaces_the_first_connection(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    first = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    bob = daemon.client("bob")
    second = greeted(daemon)
    second.send(f"/login ALICE {PASSWORD}")  # any case; WELCOME has the registered spelling
    assert first.expect_closed()[-1] == "BYE replaced"
    assert bob.expect_eventually("LEAVE ") == "LEAVE alice replaced"
    second.expect("WELCOME alice ", timeout=30)
    second.nick = "alice"
    assert second.take_joins()[-1] == "CURRENT #lobby"
    assert bob.expect_eventually("JOIN ") == "JOIN #lobby alice"  # after the LEAVE, never before
    assert daemon.wait_for_event("session_replaced", account="alice")


def test_login_and_friends_after_welcome_are_refused_and_never_said(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    bob = daemon.client("bob")
    alice.sync()  # bob's JOIN
    for line in (f"/login alice {PASSWORD}", f"/register x * {PASSWORD}", "/resume abc"):
        alice.send(line)
        assert alice.expect("ERR already_registered ")
    alice.send("//login is a message")
    assert bob.readline() == "MSG #lobby alice /login is a message"
    assert PASSWORD not in daemon.log()


def test_lines_sent_while_a_password_is_checked_wait_their_turn(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    signed_in(daemon, f"/register alice * {PASSWORD}", "alice").close()
    client = greeted(daemon)
    client.send(f"/login alice {PASSWORD}\n/join #after\nhello after")
    client.expect("WELCOME alice ", timeout=30)
    client.nick = "alice"
    client.take_joins()  # the lobby
    assert client.take_joins() == ["JOIN #after alice", "USERS #after alice", "HISTORY #after 0 end", "CURRENT #after"]
    assert client.readline() == "MSG #after alice hello after"


def test_tokens_remember_resume_logout(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts(token_days=7)
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    alice.send("/remember")
    verb, token, expires = alice.readline().split(" ")
    assert verb == "TOKEN" and len(token) == 43 and expires.endswith("Z")
    alice.send("/remember 0")
    assert alice.expect("ERR bad_argument ")
    again = signed_in(daemon, f"/resume {token}", "alice")  # replaces the first
    assert alice.expect_closed()[-1] == "BYE replaced"
    again.send(f"/passwd {PASSWORD} 2")
    assert again.expect("ERR reauth_required ")
    again.send("/logout")
    assert again.expect_closed()[-1] == "BYE logout"
    refused(greeted(daemon), f"/resume {token}", "token_invalid")
    assert ok(daemon, "user_list")  # and the store has written everything (its writer runs at nice +10)
    stored = rows(daemon, "SELECT hash FROM tokens")
    assert stored == [], stored  # revoked on disk too
    assert daemon.wait_for_event("token_revoked", account="alice")
    assert token not in daemon.log()


def test_logout_revokes_the_token_this_connection_asked_for(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    alice.send("/remember")
    token = alice.readline().split(" ")[1]
    alice.send("/logout")
    assert alice.expect_closed()[-1] == "BYE logout"
    refused(greeted(daemon), f"/resume {token}", "token_invalid")
    assert ok(daemon, "user_list")  # and the store has written everything (its writer runs at nice +10)
    assert rows(daemon, "SELECT hash FROM tokens") == []


def test_passwd_changes_the_password_and_revokes_every_token(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    alice.send("/remember")
    token = alice.readline().split(" ")[1]
    alice.send("/passwd short")
    assert alice.expect("ERR password_invalid ")
    alice.send("/passwd a much better passphrase")
    assert alice.expect("INFO Your password is changed", timeout=30) == (
        "INFO Your password is changed; 1 sign-in token(s) revoked."
    )
    alice.close()
    client = greeted(daemon)
    refused(client, f"/resume {token}", "token_invalid")
    refused(client, f"/login alice {PASSWORD}", "auth_failed")
    client.send("/login alice a much better passphrase")
    client.expect("WELCOME alice ", timeout=30)
    guest = daemon.client("guest")
    guest.send("/passwd whatever else")
    assert guest.expect("ERR not_logged_in ")
    guest.send("/remember")
    assert guest.expect("ERR not_logged_in ")


def test_an_operator_revoking_a_token_closes_the_connection_that_used_it(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    alice.send("/remember 3")
    token = alice.readline().split(" ")[1]
    resumed = signed_in(daemon, f"/resume {token}", "alice")
    sessions = ok(daemon, "user_sessions", name="alice")
    assert sessions["connection"]["method"] == "token"
    token_id = sessions["tokens"][0]["id"]
    assert token_id == hashlib.sha256(token.encode()).hexdigest()[:12]
    assert ok(daemon, "user_revoke", name="alice", token=token_id) == {"revoked": 1}
    assert resumed.expect_closed()[-1] == "BYE kicked an operator revoked your sign-in token"
    refused(greeted(daemon), f"/resume {token}", "token_invalid")


def test_a_token_expires(accounts: Callable[..., Daemon]) -> None:
    """Expiry without waiting a day: the token's expiry is moved into the past
    in the database, and the daemon restarted (tokens are checked from memory,
    loaded at start-up)."""
    daemon = accounts()
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    alice.send("/remember 1")
    token = alice.readline().split(" ")[1]
    alice.close()
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(15) == 0
    daemon.log_path.rename(daemon.log_path.with_suffix(".first"))
    conn = sqlite3.connect(database(daemon))
    with conn:
        conn.execute("UPDATE tokens SET expires = 1000")
    conn.close()
    daemon.start()
    refused(greeted(daemon), f"/resume {token}", "token_invalid")
    signed_in(daemon, f"/login alice {PASSWORD}", "alice")  # the account itself survived the restart


@pytest.mark.parametrize("mode", ["closed", "invite"])
def test_registration_closed_and_invite_without_a_code(accounts: Callable[..., Daemon], mode: str) -> None:
    daemon = accounts(registration=mode)
    refused(greeted(daemon), f"/register alice * {PASSWORD}", "registration_closed")


def test_invites_single_and_multi_use(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts(registration="invite", guests=False)
    single = ok(daemon, "invite_create", note="for alice")
    multi = ok(daemon, "invite_create", uses=2)
    assert (single["uses_left"], multi["uses_left"]) == (1, 2)
    guest = greeted(daemon)
    assert "takes no guests" in refused(guest, "somebody", "login_required")
    refused(guest, f"/register alice WRONG-CODE {PASSWORD}", "invite_invalid")
    signed_in(daemon, f"/register alice {single['code']} {PASSWORD}", "alice")
    refused(greeted(daemon), f"/register bob {single['code']} {PASSWORD}", "invite_invalid")  # used up
    signed_in(daemon, f"/register bob {multi['code'].lower()} {PASSWORD}", "bob")  # case ignored
    signed_in(daemon, f"/register carol {multi['code']} {PASSWORD}", "carol")
    refused(greeted(daemon), f"/register dave {multi['code']} {PASSWORD}", "invite_invalid")
    listed = {i["id"]: (i["uses_left"], i["used"]) for i in ok(daemon, "invite_list")}
    assert listed == {single["id"]: (0, 1), multi["id"]: (0, 2)}
    revocable = ok(daemon, "invite_create")
    ok(daemon, "invite_revoke", id=revocable["id"])
    refused(greeted(daemon), f"/register erin {revocable['code']} {PASSWORD}", "invite_invalid")
    assert daemon.wait_for_event("invite_used", account="alice")


def test_the_operator_adds_disables_enables_and_deletes(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts(registration="closed")
    assert ok(daemon, "user_add", name="Dana", password_hash=argon2id(PASSWORD))["name"] == "Dana"
    plain = control(daemon, "user_add", name="eve", password_hash=PASSWORD)
    assert plain["ok"] is False and "argon2id hash string" in plain["error"], plain
    dana = signed_in(daemon, f"/login dana {PASSWORD}", "Dana")
    assert ok(daemon, "user_disable", name="dana", reason="spamming links")["disabled"] is True
    assert dana.expect_closed()[-1] == "BYE banned spamming links"
    assert "spamming links" in refused(greeted(daemon), f"/login dana {PASSWORD}", "account_disabled")
    ok(daemon, "user_enable", name="dana")
    dana = signed_in(daemon, f"/login dana {PASSWORD}", "Dana")
    ok(daemon, "user_passwd", name="dana", password_hash=argon2id("another passphrase"))
    assert dana.expect_closed()[-1] == "BYE kicked an operator changed your password; sign in again"
    dana = signed_in(daemon, "/login dana another passphrase", "Dana")
    assert [u["name"] for u in ok(daemon, "user_list")] == ["Dana"]
    ok(daemon, "user_delete", name="dana")
    assert dana.expect_closed()[-1] == "BYE kicked an operator deleted this account"
    client = greeted(daemon)
    refused(client, "dana", "nick_registered")  # the name stays reserved
    refused(client, "/login dana another passphrase", "auth_failed")
    assert ok(daemon, "user_list") == []
    ok(daemon, "user_add", name="dana", password_hash=argon2id(PASSWORD))  # given out again
    signed_in(daemon, f"/login dana {PASSWORD}", "dana")
    for event in ("account_disabled", "account_enabled", "account_deleted", "password_changed"):
        assert daemon.find_events(event), event


def test_dms_are_kept_for_the_authenticated_party_only(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    bob = signed_in(daemon, f"/register bob * {PASSWORD}", "bob")
    guest = daemon.client("guest")
    alice.send("/msg bob kept")
    assert bob.expect_eventually("DM ") == "DM alice bob kept"
    alice.send("/msg guest kept for alice")
    assert guest.expect_eventually("DM ") == "DM alice guest kept for alice"
    alice.sync()  # the echoes
    alice.send("/history bob")
    assert alice.expect_eventually("DM ") == "DM alice bob kept"
    assert "history" in alice.last_tags
    assert alice.readline() == "HISTORY bob 1 end"
    alice.send("/history guest")  # her own conversation with a guest: hers to read
    assert alice.expect_eventually("DM ") == "DM alice guest kept for alice"
    assert alice.readline() == "HISTORY guest 1 end"
    guest.send("/history alice")
    assert guest.expect("ERR no_history ")
    guest.send("/quit")
    guest.expect_closed()
    # Whoever registers the guest's name later reads nothing the guest was sent.
    later = signed_in(daemon, f"/register guest * {PASSWORD}", "guest")
    later.send("/history alice")
    assert later.expect_eventually("HISTORY ") == "HISTORY alice 0 end"


def test_a_browser_registers_and_signs_in_over_the_websocket(accounts: Callable[..., Daemon]) -> None:
    """The password check's answer comes back through the WebSocket codec (Outlet.call_soon)."""
    daemon = accounts()
    browser = WebSocketClient(daemon.port, daemon.pki.ca, host=daemon.host)
    daemon.clients.append(browser)
    browser.expect_greeting()
    assert browser.accounts == "ACCOUNTS registration=open guests=yes"
    browser.send(f"/register alice * {PASSWORD}\n/ping after")
    browser.expect("WELCOME alice ", timeout=30)
    browser.nick = "alice"
    browser.take_joins()
    assert browser.readline() == "PONG after"  # held while the password was hashed, then answered
    browser.send("/remember")
    token = browser.readline().split(" ")[1]
    again = WebSocketClient(daemon.port, daemon.pki.ca, host=daemon.host)
    daemon.clients.append(again)
    again.expect_greeting()
    again.send(f"/resume {token}")
    again.expect("WELCOME alice ")
    assert browser.expect_closed()[-1] == "BYE replaced"


def test_history_off_keeps_accounts_but_no_messages(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(accounts={"argon2": FAST_ARGON2}, history={"enabled": False})
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    alice.send("hello, nobody keeps this")
    alice.expect_eventually("MSG #lobby alice ")
    daemon.stop()
    assert [row[0] for row in rows(daemon, "SELECT name FROM accounts")] == ["alice"]
    assert rows(daemon, "SELECT * FROM events") == []
