"""chatd/transport/ircreplies.py and ircout.py without a connection: what the
IRC codec makes of the line protocol's lines for one client (its replies,
its own echoes) and for a room's members (`Frames`)."""

from __future__ import annotations

from chatd.transport.ircout import Frames, Person
from chatd.transport.ircreg import Settings
from chatd.transport.ircreplies import Personal
from chatd.transport.ircstate import Asked, IrcState, Reply

SETTINGS = Settings(
    server="irc.test",
    network="test",
    version="chatd-test",
    created="today",
    nick_length=32,
    rooms_per_client=20,
    backlog=50,
)


class Directory:
    """Everyone is an IRC client, in no room."""

    def __init__(self, *nicks: str) -> None:
        self.nicks = nicks

    def person(self, nick: str) -> Person | None:
        found = [n for n in self.nicks if n.lower() == nick.lower()]
        return Person(found[0], "~u", "irc", found[0]) if found else None

    def people(self) -> list[Person]:
        return [Person(n, "~u", "irc", n) for n in self.nicks]

    def rooms_of(self, nick: str) -> tuple[str, ...]:
        return ()

    def creator(self, room: str) -> str | None:
        return None

    def room_exists(self, room: str) -> bool:
        return False

    def topic_time(self, room: str) -> int:
        return 0

    def shares_room(self, a: str, b: str) -> bool:
        return False


def client(nick: str, *caps: str) -> Personal:
    state = IrcState(SETTINGS.server)
    state.rename(nick)
    state.registered = True
    state.set_caps(caps)
    return Personal(state, Frames(Directory(nick, "bob")), SETTINGS)


def test_a_tagmsg_to_oneself_is_the_echo_and_the_delivery() -> None:
    personal = client("foo", "echo-message", "message-tags")
    asked = Asked(Reply("TAGMSG", "12345"), target="foo")
    lines = personal.block(b"@id=7;time=2026-12-14T10:00:00.000Z;+draft/react=x TAGMSG foo foo\n", asked)
    assert len(lines.answer) == 1 and len(lines.other) == 1  # the answer carries the label; the other not
    assert lines.answer[0] == lines.other[0]
    assert b"TAGMSG foo" in lines.answer[0] and b"+draft/react=x" in lines.answer[0]


def test_a_tagmsg_to_oneself_without_echo_message_is_the_delivery_only() -> None:
    personal = client("foo", "message-tags")
    lines = personal.block(b"@id=7;time=2026-12-14T10:00:00.000Z TAGMSG foo foo\n", Asked(Reply("TAGMSG")))
    assert lines.answer == [] and len(lines.other) == 1


def test_a_tagmsg_to_another_is_echoed_only_with_echo_message() -> None:
    personal = client("foo", "echo-message", "message-tags")
    lines = personal.block(b"@id=7;time=2026-12-14T10:00:00.000Z TAGMSG bob foo\n", Asked(Reply("TAGMSG")))
    assert len(lines.answer) == 1 and lines.other == []
