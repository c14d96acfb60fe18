"""`chatctl connect --login` without a server: the session's sign-in step
(chatctl/signin.py through chatctl/session.py) and the token files
(chatctl/credentials.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from chatctl.connection import Exit, Outcome
from chatctl.credentials import CredentialError, TokenFile
from chatctl.session import Action, Ended, KeepToken, Lost, PasswordNeeded, Send, Session, Shown
from chatctl.signin import SignIn

TOKEN = "Xy9" + "a" * 40
GREETING = ("HELLO 4 chatd 0.4.0", "ACCOUNTS registration=open guests=yes", "NICK")


def feed(session: Session, *lines: str) -> list[Action]:
    actions: list[Action] = []
    for line in lines:
        actions += session.feed(line, 0.0)
    return actions


def sent(actions: list[Action] | list[Send]) -> list[str]:
    return [action.text for action in actions if isinstance(action, Send)]


def test_login_with_a_password_then_remember_keeps_the_token_unshown() -> None:
    session = Session(None, follow=False, signin=SignIn("alice", password="pass word"))
    assert sent(feed(session, *GREETING)) == ["/login alice pass word"]
    welcome = feed(session, "WELCOME alice Welcome")
    assert sent(welcome) == ["/remember"]
    kept = feed(session, f"TOKEN {TOKEN} 2027-01-01T00:00:00.000Z")
    assert kept == [KeepToken(TOKEN, "2027-01-01T00:00:00.000Z")]  # and no Shown: the token is not printed
    assert session.signin is not None and session.signin.password is None  # forgotten once signed in


def test_a_kept_token_comes_first_and_a_refused_one_falls_back_to_the_password() -> None:
    session = Session(None, follow=False, signin=SignIn("alice", password="secret 1", token=TOKEN))
    assert sent(feed(session, *GREETING)) == [f"/resume {TOKEN}"]
    refused = feed(session, "ERR token_invalid That token is unknown", "NICK")
    assert KeepToken(None) in refused and sent(refused) == ["/login alice secret 1"]
    assert sent(feed(session, "WELCOME alice hi")) == ["/remember"]


def test_no_password_at_hand_asks_for_one_and_a_wrong_one_asks_again() -> None:
    session = Session(None, follow=False, signin=SignIn("alice", token=TOKEN))
    feed(session, *GREETING)
    asked = feed(session, "ERR token_invalid gone", "NICK")
    assert PasswordNeeded("alice", "token_invalid gone", refused=False) in asked and session.needs_password
    assert sent(session.offer_password("wrong one")) == ["/login alice wrong one"]
    again = feed(session, "ERR auth_failed Wrong account name or password.", "NICK")
    assert PasswordNeeded("alice", "auth_failed Wrong account name or password.", refused=True) in again
    assert sent(session.offer_password("right one")) == ["/login alice right one"]
    assert sent(feed(session, "WELCOME alice hi")) == ["/remember"]
    assert not session.needs_password


def test_a_resumed_session_asks_for_no_token_and_reconnects_with_its_own() -> None:
    session = Session(None, reconnect=True, signin=SignIn("alice", token=TOKEN))
    feed(session, *GREETING)
    assert sent(feed(session, "WELCOME alice hi", "CURRENT *")) == []  # no /remember after /resume
    assert isinstance(session.closed(None), Lost)
    assert sent(feed(session, *GREETING)) == [f"/resume {TOKEN}"]


def test_register_once_then_log_in_and_a_refused_registration_ends() -> None:
    session = Session(None, follow=False, signin=SignIn("erin", password="pw pw pw", invite="K7Q2"))
    assert sent(feed(session, *GREETING)) == ["/register erin K7Q2 pw pw pw"]
    ended = feed(session, "ERR nick_taken That name is taken", "NICK")
    assert ended[-1] == Ended(
        Outcome(Exit.NICK_REFUSED, "registering erin was refused (nick_taken: That name is taken)")
    )
    open_ = SignIn("erin", password="pw pw pw", invite="*")
    assert open_.answer("").line == "/register erin * pw pw pw"
    open_.welcomed()
    open_.password = "pw pw pw"  # as if the token were refused later: a /login now
    assert open_.answer("").line == "/login erin pw pw pw"


@pytest.mark.parametrize(("bye", "status", "words"), [("replaced", Exit.DROPPED, "signed in elsewhere")])
def test_bye_replaced_ends_a_reconnecting_session(bye: str, status: Exit, words: str) -> None:
    session = Session(None, reconnect=True, signin=SignIn("alice", token=TOKEN))
    feed(session, *GREETING, "WELCOME alice hi", "CURRENT *")
    ended = [a for a in feed(session, f"BYE {bye}") if isinstance(a, Ended)]
    assert ended and ended[0].outcome.status == status and words in (ended[0].outcome.message or "")
    assert isinstance(session.closed(None), Ended)


def test_logout_forgets_the_token_and_does_not_reconnect() -> None:
    session = Session(None, reconnect=True, signin=SignIn("alice", token=TOKEN))
    feed(session, *GREETING, "WELCOME alice hi", "CURRENT *")
    assert sent(session.command("/logout")) == ["/logout"]
    actions = feed(session, "BYE logout")
    assert KeepToken(None) in actions
    assert [a.outcome for a in actions if isinstance(a, Ended)] == [Outcome(Exit.OK, "signed out")]


def test_no_password_goes_to_a_server_without_accounts() -> None:
    session = Session(None, follow=False, signin=SignIn("alice", password="secret 1"))
    actions = feed(session, "HELLO 3 chatd 0.3.0", "NICK")  # it would take /login ... for a nickname
    assert sent(actions) == []
    (ended,) = [a for a in actions if isinstance(a, Ended)]
    assert ended.outcome.status == Exit.NICK_REFUSED and "has no accounts" in (ended.outcome.message or "")


def test_a_token_line_the_user_asked_for_is_shown() -> None:
    session = Session("bob", follow=False)
    feed(session, *GREETING, "WELCOME bob hi")
    assert feed(session, f"TOKEN {TOKEN} x") == [Shown(f"TOKEN {TOKEN} x")]


def test_token_file_is_0600_in_a_0700_directory_and_expires(tmp_path: Path) -> None:
    tokens = TokenFile("[::1]:7443", "Alice", tmp_path / "chatctl" / "tokens")
    assert tokens.path.name == "alice@[::1]:7443" and tokens.load() is None
    tokens.save(TOKEN, "2999-01-01T00:00:00.000Z")
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tokens.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(tokens.directory.parent.stat().st_mode) == 0o700
    assert tokens.load() == TOKEN
    tokens.path.chmod(0o640)
    with pytest.raises(CredentialError, match="chmod 600"):
        tokens.load()
    tokens.path.chmod(0o600)
    tokens.save(TOKEN, "2001-01-01T00:00:00.000Z")
    assert tokens.load() is None and not tokens.path.exists()  # expired: removed
    assert not tokens.remove()
    assert [p.name for p in tokens.directory.iterdir()] == []  # no temporary file left behind
