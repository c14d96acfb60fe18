"""chatd/transport/irc.py: how the IRC codec hands a read's commands to its
session. The session and the endpoint are stand-ins here: what the commands
do is tested in test_session_irc.py, and against the daemon in
tests/integration/test_irc*.py and irctest."""

from __future__ import annotations

from collections.abc import Sequence

from chatd.outlet import Command
from chatd.transport.irc import IrcCodec
from chatd.transport.ircout import Frames
from chatd.transport.ircreg import Settings
from tests.support.ircstandins import StandInEndpoint, StandInSession


class RecordingSession(StandInSession):
    """Records each `on_lines` call: one per hand-over."""

    def __init__(self, log: list[str]) -> None:
        self.handed: list[list[str]] = []
        self.log = log

    def on_lines(self, lines: Sequence[bytes | Command | None]) -> None:
        self.handed.append([f"{c.verb} {c.target}" for c in lines if isinstance(c, Command)])
        self.log.append("handed")


class FakeEndpoint(StandInEndpoint):
    """What the codec sends is kept: the numeric of each line."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        self.log.append(data.decode().split(" ")[1])


def registered_codec() -> tuple[IrcCodec, RecordingSession, list[str]]:
    settings = Settings("irc.test", "test", "0", "today", 16, 10, 0)
    log: list[str] = []  # "handed" for each hand-over, a numeric for each line sent
    session = RecordingSession(log)
    frames = Frames(directory=None, server="irc.test")  # type: ignore[arg-type]  # no reply here reads it
    codec = IrcCodec(FakeEndpoint(log), settings, frames, lambda _: session)  # type: ignore[arg-type]
    codec.state.registered = True
    codec.state.rename("alice")
    return codec, session, log


def test_the_messages_of_one_read_are_handed_over_together() -> None:
    codec, session, _ = registered_codec()
    codec.on_data(b"PRIVMSG #a :one\r\nPRIVMSG #a :two\r\nNOTICE #a :three\r\n")
    assert session.handed == [["msg #a", "msg #a", "msg #a"]]


def test_any_other_command_hands_over_what_came_before_it_first() -> None:
    codec, session, _ = registered_codec()
    codec.on_data(b"PRIVMSG #a :one\r\nPRIVMSG #a :two\r\nPART #a\r\nPRIVMSG #b :three\r\n")
    assert session.handed == [["msg #a", "msg #a"], ["part #a"], ["msg #b"]]


def test_an_answer_of_the_codecs_own_waits_for_the_messages_before_it() -> None:
    codec, session, log = registered_codec()
    codec.on_data(b"PRIVMSG #a :one\r\nPRIVMSG #a\r\n")  # no text: 412, from the codec
    assert session.handed == [["msg #a"]] and log == ["handed", "412"]
