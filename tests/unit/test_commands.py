"""chatd/core/commands.py: the command table against the line protocol's
grammar (chatd/core/protocol.py). What each command answers is checked on a
session in test_session.py and against the daemon in tests/integration."""

from __future__ import annotations

from chatd.core import protocol
from chatd.core.commands import COMMANDS, IRC_ONLY


def test_every_command_the_grammar_can_yield_has_a_row_and_no_row_is_unreachable() -> None:
    assert set(COMMANDS) == {"say", "empty", *protocol.GRAMMAR, *IRC_ONLY}
    assert not IRC_ONLY & set(protocol.GRAMMAR)
    assert protocol.parse_command(b"hello").verb in COMMANDS
    assert protocol.parse_command(b"").verb in COMMANDS


def test_only_signing_in_and_quit_work_before_registration() -> None:
    # v4: /login, /register and /resume answer NICK (docs/protocol.md "Accounts"),
    # and so does IRC's SASL (AUTHENTICATE, which only the IRC codec hands in).
    before = [verb for verb, row in COMMANDS.items() if row.before_registration]
    assert before == ["login", "register", "resume", "sasl", "quit"]


def test_only_saying_something_adds_to_the_block_of_room_events() -> None:
    # /msg and /me to a nickname speak too, but send what was said before them first
    # (test_session_irc.py: a DM does not overtake what was said before it).
    assert {verb for verb, row in COMMANDS.items() if row.speaks} == {"say", "me", "msg"}
