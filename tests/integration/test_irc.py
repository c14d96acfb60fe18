"""The IRC listener against the real daemon, over TLS with raw sockets
(tests/support/ircclient.py): IRC clients and line clients in the same rooms.
irctest checks the IRC side in depth (tests/irc/); these check what it
cannot: the line protocol's side of the same conversation."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon
from tests.support.accounts import FAST_ARGON2, argon2id, ok, signed_in
from tests.support.ircclient import IrcClient, Msg, irc_port

IRC = {"listen": "127.0.0.1:0", "server_name": "irc.test"}


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
    assert alice.expect("333").params[1:3] == ["#room", "bob!chatd@chatd"]  # who set it, as a mask
    assert alice.expect("353").params[-1] == "alice @bob"  # bob made the room
    assert bob.readline() == "JOIN #room alice"


# -- SASL against chatd's accounts (chatd/core/sasl.py, chatd/transport/ircsasl.py) ----------


@pytest.fixture
def irc_accounts(start_daemon: Callable[..., Daemon], short_dir: Path) -> Daemon:
    """An IRC listener, accounts with cheap argon2, a control socket."""
    return start_daemon(irc=IRC, accounts={"argon2": FAST_ARGON2}, control={"socket": str(short_dir / "control.sock")})


@pytest.fixture
def connect(irc_accounts: Daemon) -> Iterator[Callable[[], IrcClient]]:
    """Factory: an IRC client connected to `irc_accounts`, not registered; closed at teardown."""
    made: list[IrcClient] = []

    def open_client() -> IrcClient:
        made.append(IrcClient(irc_port(irc_accounts), irc_accounts.pki.ca))
        return made[-1]

    yield open_client
    for client in made:
        client.close()


def sasl_plain(client: IrcClient, account: str, password: str) -> Msg:
    """CAP REQ sasl, AUTHENTICATE PLAIN with `account` and `password`: the answer."""
    client.send("CAP LS 302")
    assert "sasl=PLAIN" in client.expect("CAP").params[-1].split()
    client.send("CAP REQ sasl")
    assert client.expect("CAP").params[1] == "ACK"
    client.send("AUTHENTICATE PLAIN")
    assert client.read().raw == "AUTHENTICATE +"
    blob = base64.b64encode(f"\0{account}\0{password}".encode()).decode()
    client.send(f"AUTHENTICATE {blob}")
    return client.read(timeout=30)


def test_sasl_plain_signs_in_to_the_account_whose_name_is_the_nickname(
    irc_accounts: Daemon, connect: Callable[[], IrcClient]
) -> None:
    ok(irc_accounts, "user_add", name="Alice", password_hash=argon2id("correct horse"))
    client = connect()
    logged_in = sasl_plain(client, "alice", "correct horse")
    assert (logged_in.command, logged_in.params[2]) == ("900", "Alice")
    assert client.read().command == "903"
    client.send("NICK somebody")  # an account's name is its nickname: this one is not used
    client.send("USER alice 0 * :Alice")
    client.send("CAP END")
    welcome = client.expect("001")
    assert welcome.params[0] == "Alice"
    sessions = ok(irc_accounts, "user_sessions", name="alice")
    assert sessions["connection"]["nick"] == "Alice" and sessions["connection"]["method"] == "password"


def test_sasl_plain_with_a_wrong_password_fails_and_a_guest_may_register(
    irc_accounts: Daemon, connect: Callable[[], IrcClient]
) -> None:
    ok(irc_accounts, "user_add", name="Alice", password_hash=argon2id("correct horse"))
    client = connect()
    assert sasl_plain(client, "alice", "wrong horse").command == "904"
    client.send("NICK bob")
    client.send("USER bob 0 * :Bob")
    client.send("CAP END")
    assert client.expect("001").params[0] == "bob"


def test_a_proven_clients_account_is_on_its_messages_and_joins(
    irc_accounts: Daemon, connect: Callable[[], IrcClient]
) -> None:
    ok(irc_accounts, "user_add", name="Alice", password_hash=argon2id("correct horse"))
    watcher = connect()
    watcher.register("carol", caps=("account-tag", "extended-join"))
    watcher.send("JOIN #room")
    watcher.expect("366")
    alice = connect()
    assert sasl_plain(alice, "alice", "correct horse").command == "900"
    alice.send("NICK Alice")
    alice.send("USER alice 0 * :Alice A.")
    alice.send("CAP END")
    alice.expect("376")
    alice.send("JOIN #room")
    joined = watcher.expect("JOIN")
    assert joined.params == ["#room", "Alice", "Alice A."]  # extended-join: the account, the real name
    alice.send("PRIVMSG #room :hello")
    said = watcher.expect("PRIVMSG")
    assert said.tags.get("account") == "Alice"
    guest = irc_accounts.client("dave")
    guest.join("#room")
    guest.send("hi")
    assert "account" not in watcher.expect("PRIVMSG").tags  # a guest proves nothing


def test_chathistory_targets_lists_the_rooms_by_their_last_event(irc: Callable[..., IrcClient]) -> None:
    alice = irc("alice", caps=("batch", "draft/chathistory", "server-time", "message-tags"))
    for room in ("#a", "#b"):
        alice.send(f"JOIN {room}")
        alice.expect("366")
    alice.send("PRIVMSG #b :first")
    alice.send("PRIVMSG #a :second")
    alice.send("TOPIC #b :third")  # a topic is an event too: #b's is now the last
    alice.sync()
    alice.send("CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z timestamp=2262-01-01T00:00:00.000Z 10")
    opened = alice.expect("BATCH")
    assert opened.params[1:] == ["draft/chathistory-targets"]
    listed = [alice.read(), alice.read()]
    assert [(m.command, m.params[:2]) for m in listed] == [
        ("CHATHISTORY", ["TARGETS", "#a"]),
        ("CHATHISTORY", ["TARGETS", "#b"]),
    ]
    assert listed[0].params[2] <= listed[1].params[2]  # the earliest last event first
    assert alice.read().params == [f"-{opened.params[0][1:]}"]
    first, last = listed[0].params[2], listed[1].params[2]
    for low, high in ((last, "2262-01-01T00:00:00.000Z"), ("2020-01-01T00:00:00.000Z", first)):
        alice.send(f"CHATHISTORY TARGETS timestamp={low} timestamp={high} 10")
        assert alice.expect("BATCH").params[1:] == ["draft/chathistory-targets"]
        assert alice.read().command == "BATCH"  # empty: the bounds are exclusive


def test_an_account_disabled_between_sasl_and_registration_leaves_a_guest_registration(
    irc_accounts: Daemon, connect: Callable[[], IrcClient]
) -> None:
    ok(irc_accounts, "user_add", name="Alice", password_hash=argon2id("correct horse"))
    client = connect()
    assert sasl_plain(client, "alice", "correct horse").command == "900"
    assert client.read().command == "903"
    ok(irc_accounts, "user_disable", name="alice", reason="spam")
    client.send("NICK alice")
    client.send("USER alice 0 * :Alice")
    client.send("CAP END")
    refused = client.expect("904")
    assert "disabled" in refused.params[-1]
    client.send("NICK bob")  # a guest now, under a nickname of its own
    assert client.expect("001").params[0] == "bob"


def test_an_accounts_name_is_taken_to_an_irc_guest(irc_accounts: Daemon, connect: Callable[[], IrcClient]) -> None:
    ok(irc_accounts, "user_add", name="Alice", password_hash=argon2id("correct horse"))
    client = connect()
    client.send("NICK alice")
    client.send("USER alice 0 * :Alice")
    taken = client.read()
    assert (taken.command, taken.params[1]) == ("433", "alice") and "registered account" in taken.params[2]
    client.send("NICK bob")
    assert client.expect("001").params[0] == "bob"


def test_a_server_without_guests_asks_irc_clients_for_an_account(
    start_daemon: Callable[..., Daemon], short_dir: Path
) -> None:
    daemon = start_daemon(irc=IRC, accounts={"argon2": FAST_ARGON2, "guests": False})
    client = IrcClient(irc_port(daemon), daemon.pki.ca)
    try:
        client.send("NICK bob")
        client.send("USER bob 0 * :Bob")
        refused = client.read()
        assert (refused.command, refused.params[:2]) == ("FAIL", ["*", "ACCOUNT_REQUIRED"])
    finally:
        client.close()


# -- catch-up: a join's backlog as time-tagged PRIVMSGs (irc.backlog) ---------------------------


def test_a_join_replays_the_backlog_with_its_times_in_a_chathistory_batch(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon(irc={**IRC, "backlog": 2})
    bob = daemon.client("bob")
    bob.join("#room")
    for text in ("one", "two", "three"):
        bob.send(text)
    said = [bob.expect_eventually("MSG ") for _ in range(3)]
    assert said[-1] == "MSG #room bob three"
    times = [bob.last_tags["time"]]
    clients = [IrcClient(irc_port(daemon), daemon.pki.ca) for _ in range(3)]
    try:
        shows, asks, plain = clients
        shows.register("alice", caps=("server-time", "batch"))
        shows.send("JOIN #room")
        shows.expect("366")
        opened = shows.expect("BATCH")
        assert opened.params[1:] == ["chathistory", "#room"]
        replayed = [shows.read(), shows.read()]  # irc.backlog: the last two
        assert [(m.nick, m.command, m.params) for m in replayed] == [
            ("bob", "PRIVMSG", ["#room", "two"]),
            ("bob", "PRIVMSG", ["#room", "three"]),
        ]
        assert replayed[1].tags["time"] == times[0] and replayed[1].tags["batch"] == opened.params[0][1:]
        assert shows.read().params == [f"-{opened.params[0][1:]}"]
        asks.register("carol", caps=("server-time", "batch", "draft/chathistory"))  # it asks itself
        plain.register("dave")  # shows no times: a replay would look live
        for client in (asks, plain):
            client.send("JOIN #room")
            client.expect("366")
            assert not [m for m in client.sync() if m.command in ("PRIVMSG", "BATCH")]
    finally:
        for client in clients:
            client.close()


# -- a registered room's roles and moderation (protocol v5) from IRC ---------------------------


def test_roles_and_kicks_of_a_registered_room_reach_irc_and_come_from_it(
    irc_accounts: Daemon, connect: Callable[[], IrcClient]
) -> None:
    alice = signed_in(irc_accounts, "/register alice * correct horse battery", "alice")
    alice.join("#room")
    alice.send("/room register #room")
    alice.expect_eventually("REGISTERED #room alice")
    ok(irc_accounts, "user_add", name="bob", password_hash=argon2id("correct horse"))
    bob = connect()
    assert sasl_plain(bob, "bob", "correct horse").command == "900"
    bob.send("NICK bob")
    bob.send("USER bob 0 * :Bob")
    bob.send("CAP END")
    bob.expect("376")
    bob.send("JOIN #room")
    assert bob.expect("353").params[-1] == "@alice bob"  # the owner's role, not the creator rule
    alice.send("/op #room bob")
    assert bob.expect("MODE").params == ["#room", "+o", "bob"]
    carol = irc_accounts.client("carol")
    carol.join("#room")
    bob.send("KICK #room carol :take a break")
    assert carol.expect_eventually("KICK ") == "KICK #room carol bob kicked take a break"
    kicked = bob.expect("KICK")
    assert (kicked.nick, kicked.params) == ("bob", ["#room", "carol", "take a break"])
    bob.send("MODE #room +m")  # flags are the owner's
    assert bob.expect_error("482").params[1] == "#room"
    bob.send("KICK #room nobody")
    assert bob.expect_error("441").params[1:3] == ["nobody", "#room"]
    bob.send("MODE #room")
    assert bob.expect("324").params[1:] == ["#room", "+nt"]  # a new registration's topic_ops is +t
