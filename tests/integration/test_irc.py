"""The IRC listener against the real daemon, over TLS with raw sockets
(tests/support/ircclient.py): IRC clients and line clients in the same rooms.
irctest checks the IRC side in depth (tests/irc/); these check what it
cannot: the line protocol's side of the same conversation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Daemon
from tests.support.ircclient import IrcClient, irc_port

IRC = {"listen": "127.0.0.1:0", "server_name": "irc.test"}


@pytest.fixture
def irc_daemon(start_daemon: Callable[..., Daemon]) -> Daemon:
    return start_daemon(irc=IRC)


@pytest.fixture
def irc(irc_daemon: Daemon) -> Iterator[Callable[..., IrcClient]]:
    """Factory: `irc("alice", caps=(...))`, a registered IRC client, closed at teardown."""
    made: list[IrcClient] = []

    def connect(nick: str, **kwargs: Any) -> IrcClient:
        client = IrcClient(irc_port(irc_daemon), irc_daemon.pki.ca)
        made.append(client)
        client.register(nick, **kwargs)
        return client

    yield connect
    for client in made:
        client.close()


def test_an_irc_client_registers_with_the_server_name_and_isupport(irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice")
    first = alice.welcome[0]
    assert (first.prefix, first.command, first.params[0]) == ("irc.test", "001", "alice")
    isupport = {token for m in alice.welcome if m.command == "005" for token in m.params[1:-1]}
    assert {"CASEMAPPING=ascii", "CHANTYPES=#", "UTF8ONLY", "MSGREFTYPES=msgid", "PREFIX=(ov)@+"} <= isupport
    assert "NICKLEN=32" in isupport and "CHANLIMIT=#:20" in isupport


def test_irc_and_line_clients_talk_in_one_room(irc_daemon: Daemon, irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice")
    alice.send("JOIN #room")
    joined = alice.expect("JOIN")
    assert (joined.nick, joined.params) == ("alice", ["#room"])
    names = alice.expect("353")
    assert names.params[-1] == "@alice"  # who created the room is shown as its operator
    alice.expect("366")
    bob = irc_daemon.client("bob")
    bob.join("#room")
    seen = alice.expect("JOIN")
    assert (seen.prefix, seen.params) == ("bob!chatd@chatd", ["#room"])

    alice.send("PRIVMSG #room :hello, bob")
    assert bob.readline() == "MSG #room alice hello, bob"
    bob.send("hi alice")
    said = alice.expect("PRIVMSG")
    assert (said.prefix, said.params) == ("bob!chatd@chatd", ["#room", "hi alice"])
    assert not [m for m in alice.sync() if m.command == "PRIVMSG"], "no echo without echo-message"


def test_an_irc_join_shows_the_room_as_native_members_see_it(irc_daemon: Daemon, irc: Callable[..., IrcClient]) -> None:
    bob = irc_daemon.client("bob")
    bob.join("#room")
    bob.send("/topic #room what we talk about")
    bob.readline()
    alice = irc("alice")
    alice.send("JOIN #room")
    assert alice.expect("332").params[1:] == ["#room", "what we talk about"]
    assert alice.expect("333").params[1:3] == ["#room", "bob"]
    assert alice.expect("353").params[-1] == "alice @bob"  # bob made the room
    assert bob.readline() == "JOIN #room alice"
