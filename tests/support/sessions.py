"""Sessions of the chat core without a transport, for unit tests: an
in-memory outlet in place of the transport (the core has no sockets), a fake
clock, a chat at the default limits, and a registered client. Used by
tests/unit/test_session.py and test_session_irc.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from chatd.config import Config, LimitsConfig, RoomsConfig
from chatd.core.chat import Chat
from chatd.core.session import Session
from tests.support.chatclient import Tags, split_tags


class FakeOutlet:
    """What a transport gives a session, recording instead of sending.

    `take` returns the lines without their tags, `take_events` with them;
    both check every line's tags against docs/protocol.md (`split_tags`).
    """

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.connected_at = 0.0
        self.received: list[str] = []
        self.closed: tuple[str, str] | None = None
        self.deadline: float | None = None
        self.session: Session | None = None

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        self.received.extend(data.decode().splitlines())

    def close(self, reason: str, text: str = "") -> None:
        if self.closed is None:
            self.closed = (reason, text)
            assert self.session is not None
            self.session.on_close(reason, text)

    def set_deadline(self, when: float | None) -> None:
        self.deadline = when

    def pause_for_backlog(self) -> bool:
        return False

    def resume_after_backlog(self) -> None:
        pass

    def take_events(self) -> list[tuple[Tags, str]]:
        lines, self.received = self.received, []
        return [split_tags(line) for line in lines]

    def take(self) -> list[str]:
        return [line for _, line in self.take_events()]


class FakeClock:
    """The chat's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PAUSE = 60.0  # between two exchanges: the bucket is full again


def make_chat(**rooms: object) -> Chat:
    limit_keys = {field.name for field in dataclasses.fields(LimitsConfig)}
    limits = {k: rooms.pop(k) for k in list(rooms) if k in limit_keys}
    config = Config(
        path=Path("chatd.yaml"),
        rooms=RoomsConfig(**rooms),  # type: ignore[arg-type]
        limits=LimitsConfig(**limits),  # type: ignore[arg-type]
    )
    return Chat(config, monotonic=FakeClock())


def clock_of(outlet: FakeOutlet) -> FakeClock:
    assert outlet.session is not None and isinstance(outlet.session.chat.monotonic, FakeClock)
    return outlet.session.chat.monotonic


def connect(chat: Chat, nick: str) -> FakeOutlet:
    outlet = FakeOutlet(f"127.0.0.1:{len(chat.nicks) + 40000}")
    session = Session(chat, outlet, {"session": nick})
    outlet.session = session
    session.on_open(None, None)
    session.on_lines([nick.encode()])
    assert outlet.take()[-1] == "CURRENT #lobby"
    return outlet
