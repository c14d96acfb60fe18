"""The terminal client's connection in the asyncio event loop: reading,
writing, and dialling again with backoff when told to.

`Link` owns the current `LineChannel` (chatctl/connection.py) and watches its
socket with `loop.add_reader`/`add_writer`. It hands every complete line to
`Handler.on_lines` and reports the end of a connection (EOF, or a failure as
a `ClientError`) to `Handler.on_closed`, which decides what happens next:
end the session, or `reconnect()`. Reconnecting waits (chatctl/reconnect.py's
`backoff`, with a notice the handler shows), dials in the background, and
calls `Handler.on_connected` with the new connection; a failed attempt
schedules the next one, except for failures that retrying cannot mend (the
server's certificate no longer verifies), which go to `Handler.on_gave_up`.

# NOTE: one thread owns each SSL socket (docs/architecture.md): this module
# uses a channel only in the event loop's thread. The only other thread is the
# dialler's, which hands over a socket it no longer touches.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Protocol

from chatctl.connection import ClientError, Dialer, LineChannel
from chatctl.reconnect import Attempts, backoff, dial_in_background, gives_up


class Handler(Protocol):
    def on_lines(self, lines: list[str]) -> None: ...

    def on_closed(self, error: ClientError | None) -> None:
        """The connection ended: `error` is None for an orderly EOF."""

    def on_waiting(self, delay: float, attempt: int, failed: str | None) -> None:
        """A reconnect attempt is scheduled in `delay` seconds; `failed` says
        why the previous attempt failed (None for the first)."""

    def on_connected(self) -> None:
        """A new connection is up (TLS done); registration is next."""

    def on_gave_up(self, error: ClientError) -> None:
        """Reconnecting failed in a way retrying cannot mend."""


class Link:
    def __init__(self, handler: Handler, channel: LineChannel, dialer: Dialer | None, attempts: Attempts) -> None:
        self.handler = handler
        self.dialer = dialer  # None: no reconnecting
        self.channel: LineChannel | None = None
        self.attempts = attempts  # told of each registration by the handler's session
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer_added = False
        self._flush_soon = False
        self._timer: asyncio.TimerHandle | None = None
        self._dialling: asyncio.Future[ssl.SSLSocket] | None = None
        self._first = channel
        self.stopped = False

    @property
    def attempt(self) -> int:
        """Reconnect attempts since the last stable connection."""
        return self.attempts.count

    @property
    def connected(self) -> bool:
        return self.channel is not None

    @property
    def waiting(self) -> bool:
        """Between connections: a reconnect is scheduled or being dialled."""
        return self.channel is None and not self.stopped and (self._timer is not None or self._dialling is not None)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._attach(self._first)

    def send(self, text: str) -> None:
        """Queue a line; it is written as soon as the event loop gets to it.
        Raises nothing: a failure comes back through `on_closed`, never in the
        middle of the caller's work (which may be `on_lines`)."""
        if self.channel is None:
            return
        self.channel.send_line(text.encode("utf-8"))
        if not self._flush_soon:
            self._flush_soon = True
            assert self._loop is not None
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_soon = False
        self.flush()

    def flush(self) -> None:
        channel = self.channel
        if channel is None:
            return
        try:
            channel.flush()
        except ClientError as exc:
            self._closed(exc)
            return
        assert self._loop is not None
        wants = channel.wants_write
        if wants and not self._writer_added:
            self._loop.add_writer(channel.fileno(), self.on_ready)
        elif not wants and self._writer_added:
            self._loop.remove_writer(channel.fileno())
        self._writer_added = wants

    def on_ready(self) -> None:
        """The socket is readable or writable: read every line, then flush."""
        channel = self.channel
        if channel is None:
            return
        try:
            lines = channel.read_lines()
        except ClientError as exc:
            self._closed(exc)
            return
        if lines:
            self.handler.on_lines([raw.decode("utf-8", "replace") for raw in lines])
        if self.channel is channel:
            if channel.closed:
                self._closed(None)
            else:
                self.flush()

    def reconnect(self, failed: str | None = None) -> None:
        """Dial again after the backoff (`failed`: why the last attempt failed)."""
        if self.dialer is None or self.stopped:
            return
        attempt = self.attempts.next(time.monotonic())
        delay = backoff(attempt)
        self.handler.on_waiting(delay, attempt, failed)
        assert self._loop is not None
        self._timer = self._loop.call_later(delay, self._dial)

    def stop(self) -> None:
        """No more reconnecting, and the connection (if any) is closed."""
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._dialling is not None:
            self._dialling.cancel()  # the dialler closes the socket it gets
            self._dialling = None
        self._detach()

    def _dial(self) -> None:
        self._timer = None
        assert self._loop is not None and self.dialer is not None
        future = dial_in_background(self._loop, self.dialer)
        self._dialling = future
        future.add_done_callback(self._dialled)

    def _dialled(self, future: asyncio.Future[ssl.SSLSocket]) -> None:
        if future.cancelled() or self.stopped:
            return
        self._dialling = None
        error = future.exception()
        if isinstance(error, ClientError):
            if gives_up(error):
                self.stop()
                self.handler.on_gave_up(error)
            else:
                self.reconnect(error.message)
            return
        if error is not None:
            raise error  # a bug: asyncio's exception handler reports it
        self._attach(LineChannel(future.result()))
        self.handler.on_connected()
        self.on_ready()  # the handshake may have left lines in OpenSSL's buffer

    def _attach(self, channel: LineChannel) -> None:
        assert self._loop is not None
        self.channel = channel
        self._writer_added = False
        self._loop.add_reader(channel.fileno(), self.on_ready)

    def _detach(self) -> None:
        channel, self.channel = self.channel, None
        if channel is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(channel.fileno())
            if self._writer_added:
                self._loop.remove_writer(channel.fileno())
        self._writer_added = False
        channel.close()

    def _closed(self, error: ClientError | None) -> None:
        self._detach()
        self.handler.on_closed(error)
