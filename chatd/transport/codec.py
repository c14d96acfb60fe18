"""What an endpoint, its codec and the application behind them agree on:
the Protocols between the transport's modules. (The endpoint's phases are
lifecycle.py's.)

An `Endpoint` (endpoint.py) drives one TLS socket; a `Codec` (lines.py,
http.py, websocket.py) says what its bytes mean; an `Application` (a chat
session, chatd.core.session) is what a codec serves. Each module sees the
others only through these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol


class Application(Protocol):
    """What a codec serves: a chat session (chatd.core.session.Session)."""

    nick: str
    messages_in: int
    rate_limited: int  # lines refused with ERR rate_limited

    def on_open(self, reject: str | None, cert_nick: str | None) -> None: ...
    def on_lines(self, lines: Sequence[bytes | None]) -> None: ...
    def charge(self, frames: int) -> bool:
        """`frames` that carry no line (WebSocket pings, pongs, fragments) take a
        line's worth of the flood-control budget each; False (and counted, as a
        line refused for the rate is) when the budget does not have them all."""

    def on_timer(self, now: float) -> None: ...
    def on_close(self, reason: str, text: str) -> bytes:
        """The connection ends for `reason`; returns the last line to send."""

    def limits_changed(self) -> None: ...


class Counted(Protocol):
    """What an endpoint's logs and counters read of its application."""

    nick: str
    messages_in: int
    rate_limited: int


class Finished:
    """What an endpoint keeps of its application before it has one and after
    it has finished: what its logs and counters may still read."""

    __slots__ = ("messages_in", "nick", "rate_limited")

    def __init__(self, nick: str = "", messages_in: int = 0, rate_limited: int = 0) -> None:
        self.nick = nick
        self.messages_in = messages_in
        self.rate_limited = rate_limited


class Codec(Protocol):
    """What the bytes of an open connection mean (lines.py, http.py, websocket.py)."""

    # Bytes of the output queue the slow-consumer rule does not count: the HTTP
    # response in flight (a file may be larger than a chat client's queue);
    # 0 for a chat client, whose every queued byte counts.
    exempt_bytes: int

    @property
    def app(self) -> Counted:
        """The application it serves (what the endpoint's logs and counters read)."""

    def on_open(self, reject: str | None, cert_nick: str | None) -> None: ...
    def on_data(self, data: bytes) -> None: ...
    def on_timer(self, now: float) -> None: ...
    def on_close(self, reason: str, text: str) -> bytes:
        """The connection ends for `reason` (with the application's `text`);
        returns the last bytes to send."""

    def limits_changed(self) -> None: ...
    def cut(self, data: bytes, limit: int) -> int:
        """Where to cut `data`, longer than `limit`, for one write: at most `limit`."""

    def rest_of_unit(self, head: bytes) -> bytes:
        """What of `head` finishes the unit (line, frame) a write cut short."""

    def drained(self) -> None:
        """Everything queued has gone to the socket; called once after each
        `Endpoint.notify_when_drained`, and only while the connection is open."""


class Idle:
    """The codec before the handshake and after the end: nothing to do. Its
    `app` keeps what the logs and counters may still read (nothing before;
    the application's last figures after)."""

    exempt_bytes = 0

    def __init__(self, nick: str = "", messages_in: int = 0, rate_limited: int = 0) -> None:
        self.app = Finished(nick, messages_in, rate_limited)

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        pass

    def on_data(self, data: bytes) -> None:
        pass

    def on_timer(self, now: float) -> None:
        pass

    def on_close(self, reason: str, text: str) -> bytes:
        return b""

    def limits_changed(self) -> None:
        pass

    def cut(self, data: bytes, limit: int) -> int:
        return limit

    def rest_of_unit(self, head: bytes) -> bytes:
        return b""

    def drained(self) -> None:
        pass


IDLE: Final = Idle()
