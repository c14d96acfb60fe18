"""Registration and chat as users see it, against a real chatd over TLS."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import chatd
from chatd.core.protocol import HELP_LINES
from tests.conftest import Daemon, with_io_threads
from tests.support.chatclient import ChatClient


def test_hello_nick_welcome_and_the_lobby(daemon: Daemon) -> None:
    client = daemon.client()
    assert client.readline() == f"HELLO 5 chatd {chatd.__version__}"
    assert client.readline() == "ACCOUNTS registration=open guests=yes"  # the defaults
    assert client.readline() == "NICK"
    client.send("alice")
    assert client.readline() == "WELCOME alice Welcome to chatd, alice! Type /help for commands."
    assert client.readline() == "JOIN #lobby alice"
    assert client.readline() == "USERS #lobby alice"
    assert client.readline() == "HISTORY #lobby 0 end"  # a new server: no backlog
    assert client.readline() == "CURRENT #lobby"
    client.send("/ping")
    assert client.readline() == "PONG"  # nothing else came


@with_io_threads(1, 2, 4)
def test_broadcast_reaches_everyone_with_echo(start_daemon: Callable[..., Daemon], io_threads: int) -> None:
    daemon = start_daemon(server={"io_threads": io_threads})
    clients = [daemon.client(nick) for nick in ("alice", "bob", "carol", "dave")]
    for i, client in enumerate(clients):
        for joined in clients[i + 1 :]:
            assert client.readline() == f"JOIN #lobby {joined.nick}"
    clients[1].send("hello, world  with  spaces")
    events = [client.read_event() for client in clients]
    for tags, line in events:
        assert line == "MSG #lobby bob hello, world  with  spaces"
        assert tags.keys() == {"id", "time"}  # live: no `history` tag
    assert len({tags["id"] for tags, _ in events}) == 1  # one event: one id for all, echo included
    assert len({tags["time"] for tags, _ in events}) == 1


def test_join_leave_rename(daemon: Daemon) -> None:
    alice = daemon.client("alice")
    bob = daemon.client("bob")
    assert bob.autojoin == ["JOIN #lobby bob", "USERS #lobby alice bob", "HISTORY #lobby 0 end", "CURRENT #lobby"]
    assert bob.backlog == {"#lobby": []}
    assert alice.readline() == "JOIN #lobby bob"
    bob.send("/nick robert")
    assert bob.readline() == "RENAME bob robert"
    assert alice.readline() == "RENAME bob robert"
    bob.send("/nick Robert")  # a change of case only is allowed
    assert alice.readline() == "RENAME robert Robert"
    assert bob.readline() == "RENAME robert Robert"
    bob.send("/quit see you")
    assert bob.readline() == "BYE quit"
    assert alice.readline() == "LEAVE Robert quit see you"
    bob.close()
    carol = daemon.client("carol")
    assert alice.readline() == "JOIN #lobby carol"
    carol.close()
    assert alice.readline() == "LEAVE carol connection_lost"


def test_direct_message_goes_to_recipient_and_sender_only(daemon: Daemon) -> None:
    alice, bob, carol = (daemon.client(n) for n in ("alice", "bob", "carol"))
    alice.expect("JOIN #lobby bob")
    alice.expect("JOIN #lobby carol")
    bob.expect("JOIN #lobby carol")
    alice.send("/msg BOB psst")  # nick lookup ignores case
    received, echoed = bob.read_event(), alice.read_event()
    assert received[1] == echoed[1] == "DM alice bob psst"
    assert received[0] == echoed[0] and received[0].keys() == {"id", "time"}  # an event, tagged
    alice.send("/msg nobody hi")
    assert alice.readline().startswith("ERR no_such_nick ")
    carol.send("/ping")  # carol saw nothing in between
    assert carol.readline() == "PONG"


def test_who_ping_help_action_and_slash_escape(daemon: Daemon) -> None:
    bob = daemon.client("bob")
    alice = daemon.client("alice")
    bob.expect("JOIN #lobby alice")
    alice.send("/who")
    assert alice.readline() == "USERS #lobby alice bob"
    alice.send("/ping abc 123")
    assert alice.readline() == "PONG abc 123"
    alice.send("/me waves")
    action = alice.read_event()
    assert action[1] == "ACTION #lobby alice waves" and action[0].keys() == {"id", "time"}
    assert bob.read_event() == action
    alice.send("//etc/passwd is a path")
    message = bob.read_event()
    assert message[1] == "MSG #lobby alice /etc/passwd is a path"
    assert alice.read_event() == message
    assert int(message[0]["id"]) > int(action[0]["id"])  # ids increase
    alice.send("/help")
    first = alice.readline()
    assert first.startswith("INFO ")
    help_lines = [first] + [alice.readline() for _ in range(len(HELP_LINES) - 1)]
    assert all(line.startswith("INFO ") for line in help_lines)
    for command in ("/msg", "/join", "/part", "/topic", "/rooms", "/who", "/history"):
        assert any(command in line for line in help_lines), command
    alice.send("/ping end of help")
    assert alice.readline() == "PONG end of help"


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [("alice", "ALICE", "nick_taken"), ("bob", "bad nick!", "nick_invalid")],
)
def test_refused_nickname_asks_again(daemon: Daemon, first: str, second: str, code: str) -> None:
    daemon.client(first)
    client = daemon.client()
    client.expect_greeting()
    client.send(second)
    assert client.readline().startswith(f"ERR {code} ")
    assert client.readline() == "NICK"
    client.send("carol")
    client.expect("WELCOME carol ")
    client.nick = "carol"
    assert client.take_joins() == [
        "JOIN #lobby carol",
        f"USERS #lobby {first} carol",
        "HISTORY #lobby 0 end",
        "CURRENT #lobby",
    ]


def test_too_many_refused_nicknames_says_bye(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(limits={"max_nick_attempts": 2})
    client = daemon.client()
    client.expect_greeting()
    client.send("!")
    client.expect("ERR nick_invalid")
    client.expect("NICK")
    client.send("?")
    client.expect("ERR nick_invalid")
    assert client.expect_closed() == ["BYE nick_failed"]


def test_bad_lines_are_answered_and_others_keep_chatting(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(limits={"max_line_bytes": 512})
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.expect("JOIN #lobby bob")
    bob.send(b"x" * 2000 + b"\nstill here\n")
    assert bob.readline().startswith("ERR line_too_long ")
    assert alice.readline() == "MSG #lobby bob still here"
    assert bob.readline() == "MSG #lobby bob still here"
    bob.send(b"\xff\xfe broken\n")
    assert bob.readline().startswith("ERR bad_encoding ")
    bob.send(b"bell \x07 ring\n")
    assert bob.readline().startswith("ERR bad_encoding ")
    bob.send("/frobnicate")
    assert bob.readline().startswith("ERR unknown_command ")
    alice.send("unaffected")
    assert alice.readline() == "MSG #lobby alice unaffected"
    assert bob.readline() == "MSG #lobby alice unaffected"
    bob.send("crlf works\r")
    assert alice.readline() == "MSG #lobby bob crlf works"


def test_strikes_end_in_bye(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(limits={"max_strikes": 3})
    alice = daemon.client("alice")
    alice.send("/a\n/b\n/c\n/d")
    lines = alice.expect_closed()
    assert [line.split()[1] for line in lines[:3]] == ["unknown_command"] * 3
    assert lines[3:] == ["BYE too_many_errors"]


@with_io_threads(1, 2, 4)
def test_fifty_clients_chat_with_nothing_lost_or_reordered(
    start_daemon: Callable[..., Daemon], io_threads: int
) -> None:
    daemon = start_daemon(server={"io_threads": io_threads})
    senders, per_sender = 50, 40
    clients = [daemon.client(f"u{i}") for i in range(senders)]
    for i, client in enumerate(clients):  # consume JOINs of later clients
        for _ in range(senders - i - 1):
            client.expect("JOIN #lobby ")
    received: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def chat(client: ChatClient) -> None:
        try:
            for n in range(per_sender):
                client.send(f"{client.nick} {n}")
            lines = [client.readline(timeout=30) for _ in range(senders * per_sender)]
            received[client.nick] = lines
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a client thread hung"
    assert not errors, errors[:3]
    for nick, lines in received.items():
        by_sender: dict[str, list[int]] = {}
        for line in lines:
            verb, room, sender, owner, number = line.split(" ")
            assert verb == "MSG" and room == "#lobby" and sender == owner
            by_sender.setdefault(sender, []).append(int(number))
        assert len(by_sender) == senders, nick
        assert all(seq == list(range(per_sender)) for seq in by_sender.values()), nick
