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

    def flags(self, room: str) -> frozenset[str]:
        return frozenset()

    def topic_time(self, room: str) -> int:
        return 0

    def shares_room(self, a: str, b: str) -> bool:
        return False


def client(nick: str, *caps: str) -> Personal:
    state = IrcState(SETTINGS.server)
    state.rooms["#room"] = "#room"
    state.rename(nick)
    state.registered = True
    state.set_caps(caps)
    return Personal(state, Frames(Directory(nick, "bob"), SETTINGS.server), SETTINGS)


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


def test_a_clients_own_room_lines_echo_as_the_others_see_them() -> None:
    # The codec's fast path (IrcCodec.deliver) sends a `said` translation as the echo.
    personal = client("foo", "echo-message", "message-tags", "server-time")
    block = (
        b"@id=7;time=2026-12-14T10:00:00.000Z MSG #room foo one\n"
        b"@id=8;time=2026-12-14T10:00:00.000Z ACTION #room foo waves\n"
    )
    slow = personal.block(block, None)
    fast = personal.frames.translate(block, personal.state.profile)
    assert fast is not None and fast.said and fast.about == "foo" and fast.lines == 2
    assert b"".join(slow.answer + slow.other) == fast.data
    dm = personal.frames.translate(b"@id=9;time=2026-12-14T10:00:00.000Z DM foo foo hi\n", personal.state.profile)
    assert dm is not None and not dm.said  # to oneself: the echo and the delivery


def test_a_blocks_sender_is_looked_up_once_for_all_its_lines() -> None:
    asked: list[str] = []

    class Counting(Directory):
        def person(self, nick: str) -> Person | None:
            asked.append(nick)
            return super().person(nick)

    frames = Frames(Counting("foo", "bob"), SETTINGS.server)
    block = b"".join(b"@id=%d;time=2026-12-14T10:00:00.000Z MSG #room foo line %d\n" % (i, i) for i in range(5))
    translated = frames.translate(block, 0)
    assert translated is not None and translated.lines == 5 and asked == ["foo"]
    assert translated.data.count(b":foo!~u@irc PRIVMSG #room :line ") == 5


# -- a registered room's moderation (protocol v5) as IRC ------------------------------------


def said(personal: Personal, data: bytes, asked: Asked | None = None) -> list[str]:
    lines = personal.block(data, asked)
    return [line.decode().rstrip("\r\n") for line in lines.answer + lines.other]


def test_a_kick_is_irc_kick_and_the_kicked_one_leaves_the_channel() -> None:
    personal = client("foo")
    assert said(personal, b"KICK #room bob foo kicked spamming\n") == [":foo!~u@irc KICK #room bob :spamming"]
    assert "#room" in personal.state.rooms
    assert said(personal, b"KICK #room foo * banned\n") == [":irc.test KICK #room foo :Banned"]  # by the operator
    assert "#room" not in personal.state.rooms


def test_roles_and_flags_are_channel_modes() -> None:
    personal = client("foo")
    assert said(personal, b"ROLE #room bob op foo\n") == [":foo!~u@irc MODE #room +o bob"]
    assert said(personal, b"ROLE #room bob voice foo\n") == [":foo!~u@irc MODE #room -o+v bob bob"]
    assert said(personal, b"ROLE #room bob member *\n") == [":irc.test MODE #room -ov bob bob"]
    assert said(personal, b"FLAG #room moderated on foo\n") == [":foo!~u@irc MODE #room +m"]
    assert said(personal, b"REGISTERED #room *\n") == [":irc.test NOTICE #room :#room is no longer registered"]


def test_names_in_a_registered_room_show_roles_not_the_creator() -> None:
    personal = client("foo", "multi-prefix")
    lines = said(personal, b"USERS #room bob carol foo\nROLES #room bob:voice foo:owner\n", Asked(Reply("NAMES")))
    assert lines[0] == ":irc.test 353 foo = #room :+bob carol @foo"


def test_an_invite_reaches_the_invitee_and_is_341_to_the_inviter() -> None:
    personal = client("foo")
    assert said(personal, b"INVITE #room foo bob\n") == [":bob!~u@irc INVITE foo #room"]
    assert said(personal, b"INVITE #room bob foo\n", Asked(Reply("INVITE"))) == [":irc.test 341 foo bob :#room"]


def test_a_ban_list_and_a_refused_kick_as_numerics() -> None:
    personal = client("foo")
    bans = b"BAN #room bob foo 2026-12-14T10:00:00.000Z spam\nBANS #room 1\n"
    assert said(personal, bans, Asked(Reply("MODE"), target="#room", mask="b")) == [
        ":irc.test 367 foo #room bob foo :1797242400",
        ":irc.test 368 foo #room :End of channel ban list",
    ]
    refused = said(personal, b"ERR not_allowed Only ops of #room may do that.\n", Asked(Reply("KICK"), target="#room"))
    assert refused == [":irc.test 482 foo #room :Only ops of #room may do that."]
    nobody = said(personal, b"ERR no_such_nick Nobody.\n", Asked(Reply("KICK"), target="#room", mask="dave"))
    assert nobody == [":irc.test 441 foo dave #room :Nobody."]
