"""Stand-ins for what the IRC codec (chatd/transport/irc.py) talks to, for
unit tests that drive the codec alone: a session that records or answers
what it is handed (a subclass says how), and an endpoint whose sends a
subclass keeps. What the commands do is the chat session's, tested in
tests/unit/test_session_irc.py and against the daemon."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

from chatd.outlet import Command


class StandInSession:
    """The session's side of the codec: registered as alice, no flood limit."""

    nick = "alice"
    messages_in = 0
    rate_limited = 0

    def on_open(self, reject: str | None, cert_nick: str | None) -> None: ...

    def on_lines(self, lines: Sequence[bytes | Command | None]) -> None:
        raise NotImplementedError  # each test's own

    def charge(self, frames: int) -> bool:
        return True

    def on_timer(self, now: float) -> None: ...

    def on_close(self, reason: str, text: str) -> bytes:
        return b"BYE quit\n"

    def limits_changed(self) -> None: ...


class StandInEndpoint:
    """What the codec reads of its endpoint; a subclass keeps what it sends
    (`deliver`). Open until a test says otherwise."""

    peer = "127.0.0.1:50000"
    connected_at = 0.0
    open = True

    def __init__(self) -> None:
        self.context: dict[str, object] = {}
        self.worker = SimpleNamespace(in_thread=lambda: True, stats=SimpleNamespace(lines_in=0))

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        raise NotImplementedError  # each test's own

    def is_open(self) -> bool:
        return self.open
