"""LineCodec: the line protocol, for a client that negotiated no ALPN
(`chatctl connect`, `openssl s_client`): bytes cut into bounded lines for its
session, and the session's bytes sent as they are.

The session's outlet is the endpoint itself, whose `deliver` is its send
queue's (sendqueue.py), so that a line delivered to this client costs nothing
more than queueing it (the fan-out hot path); this codec only sees what
comes in.
"""

from __future__ import annotations

from chatd.transport.codec import Application
from chatd.transport.endpoint import Endpoint
from chatd.transport.framing import LineBuffer


class LineCodec:
    __slots__ = ("_buffer", "_stats", "app", "endpoint")

    exempt_bytes = 0

    def __init__(self, endpoint: Endpoint, app: Application) -> None:
        self.endpoint = endpoint
        self.app = app
        self._buffer = LineBuffer(endpoint.host.limits.max_line_bytes)
        self._stats = endpoint.worker.stats  # its worker's counters (one thread writes them)

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        self.app.on_open(reject, cert_nick)

    def on_data(self, data: bytes) -> None:
        lines = self._buffer.feed(data)
        if lines:
            self._stats.lines_in += len(lines)
            self.app.on_lines(lines)

    def on_timer(self, now: float) -> None:
        self.app.on_timer(now)

    def on_close(self, reason: str, text: str) -> bytes:
        return self.app.on_close(reason, text)

    def limits_changed(self) -> None:
        self._buffer.max_line_bytes = self.endpoint.host.limits.max_line_bytes
        self.app.limits_changed()

    def cut(self, data: bytes, limit: int) -> int:
        return limit  # anywhere: `rest_of_unit` finishes a line cut short

    def rest_of_unit(self, head: bytes) -> bytes:
        return head[: head.find(b"\n") + 1] or head

    def drained(self) -> None:
        pass  # never asked for
