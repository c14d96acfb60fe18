"""chatd/transport/irc.py's `IrcGroup` and chatd/core/rooms.py's delivery
groups: a room hands a block to all of its IRC members in one call, and every
client gets exactly what it gets when each member is delivered to alone.

The same conversation is held twice, on real sessions and codecs over
stand-in endpoints: once with the IRC sessions in one delivery group (as the
IRC listener makes them), once with each delivered to alone. The IRC
clients differ in what they asked for (tags, server-time, echo-message,
labeled-response, extended-join, multi-prefix), a native client shares the
room, and the lines include a labeled message, an echo, a NOTICE, an ACTION,
a topic, a nick change, joins and parts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatd.core.chat import Chat
from chatd.core.session import Session
from chatd.irc_listener import ChatDirectory
from chatd.outlet import SharedDelivery
from chatd.transport.irc import IrcCodec, IrcGroup
from chatd.transport.ircout import Frames
from chatd.transport.ircreg import Settings
from tests.support.ircstandins import StandInEndpoint
from tests.support.sessions import PAUSE, FakeClock, connect, make_chat

CAPS = [
    b"",
    b"message-tags server-time",
    b"echo-message",
    b"echo-message labeled-response batch message-tags",
    b"extended-join multi-prefix userhost-in-names",
    b"server-time account-tag",
]


class RecordingEndpoint(StandInEndpoint):
    """The stand-in endpoint, keeping what it is sent, with what a real session
    asks of its outlet besides."""

    def __init__(self, peer: str) -> None:
        super().__init__()
        self.peer = peer
        self.sent: list[bytes] = []

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        self.sent.append(data)

    def close(self, reason: str, text: str = "") -> None:
        pass

    def set_deadline(self, when: float | None) -> None:
        pass

    def call_soon(self, callback: Callable[[], None]) -> None:
        callback()

    def pause_for_backlog(self) -> bool:
        return False

    def resume_after_backlog(self) -> None:
        pass


def irc_client(chat: Chat, frames: Frames, group: IrcGroup | None, nick: str, caps: bytes) -> IrcCodec:
    settings = Settings("irc.test", "test", "0", "today", 16, 10, 0)
    endpoint = RecordingEndpoint(f"127.0.0.1:{51000 + len(chat.nicks)}")

    def open_session(codec: IrcCodec) -> Session:
        shared = SharedDelivery(group, codec) if group is not None else None
        return Session(chat, codec, {}, tracer=codec, autojoin=False, shared=shared)

    codec = IrcCodec(endpoint, settings, frames, open_session)  # type: ignore[arg-type]
    codec.on_open(None, None)
    asked = b"CAP REQ :%s\r\n" % caps if caps else b""
    codec.on_data(b"CAP LS 302\r\n" + asked + b"CAP END\r\nNICK %s\r\nUSER u 0 * :u\r\n" % nick.encode())
    return codec


def converse(grouped: bool) -> list[list[bytes]]:
    """What each client got of one conversation."""
    chat = make_chat(autojoin=["#lobby"], permanent=["#lobby"])
    chat.history.clock.now_ms = lambda: 1_700_000_000_000  # type: ignore[method-assign]  # the same times both ways
    frames = Frames(ChatDirectory(chat), "irc.test")
    group = IrcGroup(frames) if grouped else None
    codecs = [irc_client(chat, frames, group, f"irc{i}", caps) for i, caps in enumerate(CAPS)]
    native = connect(chat, "native")
    clock = chat.monotonic
    assert isinstance(clock, FakeClock)

    def say(codec: IrcCodec, data: bytes) -> None:
        clock.advance(PAUSE)
        codec.on_data(data)

    for codec in codecs:
        say(codec, b"JOIN #lobby\r\n")
    say(codecs[0], b"PRIVMSG #lobby :hello\r\nPRIVMSG #lobby :and more\r\nNOTICE #lobby :a notice\r\n")
    say(codecs[3], b"@label=L1 PRIVMSG #lobby :labeled\r\n")
    say(codecs[2], b"PRIVMSG #lobby :\x01ACTION waves\x01\r\n")
    say(codecs[1], b"TOPIC #lobby :a topic\r\n")
    say(codecs[4], b"NICK renamed\r\n")
    clock.advance(PAUSE)
    native.session.on_lines([b"from the terminal", b"/me nods"])  # type: ignore[union-attr]
    say(codecs[5], b"PART #lobby :bye\r\n")
    say(codecs[5], b"JOIN #lobby\r\nPRIVMSG #lobby :back\r\n")
    return [codec.endpoint.sent for codec in codecs] + [[line.encode() for line in native.take()]]  # type: ignore[attr-defined]


def test_a_group_delivers_what_each_member_would_get_alone() -> None:
    grouped, alone = converse(grouped=True), converse(grouped=False)
    assert [b"".join(sent) for sent in grouped] == [b"".join(sent) for sent in alone]
    assert all(b"PRIVMSG #lobby :hello" in b"".join(sent) for sent in grouped[1:-1])  # it did talk


def test_a_room_calls_a_group_once_for_all_its_members(monkeypatch: pytest.MonkeyPatch) -> None:
    chat = make_chat(autojoin=["#lobby"], permanent=["#lobby"])
    frames = Frames(ChatDirectory(chat), "irc.test")
    group = IrcGroup(frames)
    codecs = [irc_client(chat, frames, group, f"irc{i}", caps) for i, caps in enumerate(CAPS)]
    for codec in codecs:
        codec.on_data(b"JOIN #lobby\r\n")
    connect(chat, "native")
    calls: list[int] = []
    alone = IrcCodec.deliver

    def counted(codec: IrcCodec, data: bytes, lines: int = 1, sender: object = None) -> None:
        calls.append(1)
        alone(codec, data, lines, sender)  # type: ignore[arg-type]

    monkeypatch.setattr(IrcCodec, "deliver", counted)
    room = chat.rooms.find("#lobby")
    assert room is not None
    sent_before = [len(codec.endpoint.sent) for codec in codecs]  # type: ignore[attr-defined]
    assert room.broadcast(b"INFO to everyone\n") == len(codecs) + 1
    assert calls == []  # no member's own `deliver`: the group's one call
    assert [len(codec.endpoint.sent) for codec in codecs] == [n + 1 for n in sent_before]  # type: ignore[attr-defined]
