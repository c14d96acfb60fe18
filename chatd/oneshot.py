"""Listeners that answer one request per connection from one selector thread:
the loop under the metrics listener (metrics_http.py) and the control socket
(control.py).

What a request looks like and what it gets belongs to the caller, a
`Respond` function; what lives here is what a stalled or hostile peer would
otherwise exploit, the same for both:

- Two deadlines per connection, both fixed at accept and never moved by
  anything the peer does: `Limits.request_timeout` to send a whole request,
  `Limits.exchange_timeout` from accept to the last byte of the response.
  A peer that trickles a byte a second gains no time.
- At most `Limits.max_connections` at once, and the listener is always
  watched. When a new connection would pass the cap, an old one is closed
  to make room: the oldest that has not sent a whole request yet; failing
  that, the oldest that is only lingering after its answer; failing that,
  the oldest of all. A real client sends its request as soon as it has
  connected and is answered in the same turn, so however many silent peers
  crowd in, each new one pushes out an older silent one, never a client
  being answered (issue 19: 48 silent peers used to starve every scrape).
- At most `Limits.max_request_bytes` + 1 bytes of a request are read; what
  an incomplete request that large gets is the caller's choice.
- After its response a connection is half-closed and read to its end, for
  `Limits.linger` seconds at most, before it is closed: closing a socket with
  unread input sends a reset, which can destroy the response before the peer
  reads it.

The thread is `chatd-<name>`, and its events are `<name>_request_evicted`,
`<name>_request_timed_out` and `<name>_request_failed` (debug: a peer's doing),
`<name>_request_crashed` (a bug while answering; that connection is closed
unanswered), `<name>_accept_failed` (EMFILE and the like; accepting pauses
for half a second), `<name>_crashed` (the thread's top: the listener stops)
and `<name>_still_running` (`stop` could not join the thread).

Nothing here knows HTTP or JSON, and nothing here touches a chat connection.
"""

from __future__ import annotations

import enum
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import structlog

from chatd.transport.waker import Waker

log = structlog.get_logger(__name__)

Respond = Callable[[socket.socket, bytes, bool], bytes | None]
"""`respond(sock, received, ended)`: the whole response once `received` holds a
whole request, else None to wait for more. `ended` is True when no more will
be read (the peer shut down its side, or `max_request_bytes` was passed);
None then closes the connection unanswered. `sock` is there for its peer
credentials, not for I/O."""

_ACCEPT_PAUSE: Final = 0.5  # seconds without accepting after EMFILE and the like
_ACCEPT_BATCH: Final = 64  # accepts per turn, so that a flood of connects cannot starve reading


@dataclass(frozen=True)
class Limits:
    max_connections: int
    request_timeout: float  # from accept to the whole request
    exchange_timeout: float  # from accept to the last byte of the response
    max_request_bytes: int
    linger: float = 1.0


class _Stage(enum.IntEnum):
    """Where a connection is; at the cap, the lowest stage is closed first."""

    READING = 0  # no whole request yet
    DRAINING = 1  # answered and half-closed: reading to the peer's end
    WRITING = 2  # answered, the response still leaving


class _Exchange:
    """One connection: the request as it arrives, then the response as it leaves."""

    __slots__ = ("accepted", "deadline", "outgoing", "received", "sock", "stage")

    def __init__(self, sock: socket.socket, now: float, limits: Limits) -> None:
        self.sock = sock
        self.accepted = now
        self.deadline = now + min(limits.request_timeout, limits.exchange_timeout)
        self.received = b""
        self.outgoing = memoryview(b"")
        self.stage = _Stage.READING


class OneShotServer:
    """Serves `listener` (bound, listening, non-blocking) on thread `chatd-<name>`;
    closes it when it stops."""

    def __init__(self, name: str, listener: socket.socket, respond: Respond, limits: Limits) -> None:
        self.name = name
        self._listener = listener
        self._respond = respond
        self._limits = limits
        self._selector = selectors.DefaultSelector()
        self._exchanges: dict[int, _Exchange] = {}  # by fd, in the order they were accepted
        self._accept_paused_until = 0.0
        self._thread: threading.Thread | None = None
        self._waker: Waker | None = None  # how stop() wakes the thread; the thread closes it as it ends

    def start(self) -> None:
        self._waker = waker = Waker()
        self._selector.register(waker, selectors.EVENT_READ)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._serve, args=(waker,), name=f"chatd-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop serving and close every connection; False if the thread did not end in time."""
        if self._thread is None or self._waker is None:
            return True
        self._waker.wake()  # nothing if the thread has ended already (<name>_crashed)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(f"{self.name}_still_running")
            return False
        return True

    # -- the serving thread ------------------------------------------------------------

    def _serve(self, waker: Waker) -> None:
        try:
            while True:
                for key, events in self._selector.select(self._timeout()):
                    if key.fileobj is waker:
                        return  # stop()
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._step(key.data, events)
                self._expire(time.monotonic())
        except Exception:
            # The thread's top: this listener stops, chat goes on (it never waits for it).
            log.exception(f"{self.name}_crashed")
        finally:
            for exchange in list(self._exchanges.values()):
                self._close(exchange)
            self._selector.close()
            self._listener.close()
            waker.close()

    def _timeout(self) -> float | None:
        deadlines = [exchange.deadline for exchange in self._exchanges.values()]
        if self._accept_paused_until:
            deadlines.append(self._accept_paused_until)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                # EMFILE and the like: stop watching for a moment instead of spinning.
                log.warning(f"{self.name}_accept_failed", error=exc.strerror or str(exc))
                self._selector.unregister(self._listener)
                self._accept_paused_until = time.monotonic() + _ACCEPT_PAUSE
                return
            if len(self._exchanges) >= self._limits.max_connections:
                self._evict()
            sock.setblocking(False)
            exchange = _Exchange(sock, time.monotonic(), self._limits)
            self._exchanges[sock.fileno()] = exchange
            self._selector.register(sock, selectors.EVENT_READ, exchange)

    def _evict(self) -> None:
        """Close the connection that matters least: see the module's docstring."""
        victim = min(self._exchanges.values(), key=lambda exchange: (exchange.stage, exchange.accepted))
        log.debug(f"{self.name}_request_evicted", stage=victim.stage.name.lower())
        self._close(victim)

    def _step(self, exchange: _Exchange, events: int) -> None:
        if exchange.sock.fileno() < 0:
            return  # evicted earlier in this turn
        try:
            if exchange.stage is _Stage.DRAINING:
                self._drain(exchange)
            elif exchange.stage is _Stage.READING and events & selectors.EVENT_READ:
                self._read(exchange)
            if exchange.stage is _Stage.WRITING:
                self._write(exchange)
        except OSError as exc:  # reset by the peer, and the like: that connection ends
            log.debug(f"{self.name}_request_failed", error=exc.strerror or str(exc))
            self._close(exchange)
        except Exception:
            # A bug while answering one request (in a collector or an operator
            # action, say): that request ends unanswered, the listener goes on.
            log.exception(f"{self.name}_request_crashed")
            self._close(exchange)

    def _read(self, exchange: _Exchange) -> None:
        room = self._limits.max_request_bytes + 1 - len(exchange.received)
        try:
            data = exchange.sock.recv(min(room, 65536))
        except BlockingIOError:
            return
        exchange.received += data
        ended = not data or len(exchange.received) > self._limits.max_request_bytes
        answer = self._respond(exchange.sock, exchange.received, ended)
        if answer is None:
            if ended:
                self._close(exchange)
            return
        exchange.received = b""
        exchange.outgoing = memoryview(answer)
        exchange.stage = _Stage.WRITING
        exchange.deadline = exchange.accepted + self._limits.exchange_timeout
        self._selector.modify(exchange.sock, selectors.EVENT_WRITE, exchange)

    def _write(self, exchange: _Exchange) -> None:
        try:
            sent = exchange.sock.send(exchange.outgoing)
        except BlockingIOError:
            return
        exchange.outgoing = exchange.outgoing[sent:]
        if not exchange.outgoing:
            exchange.sock.shutdown(socket.SHUT_WR)
            exchange.stage = _Stage.DRAINING
            exchange.deadline = min(exchange.deadline, time.monotonic() + self._limits.linger)
            self._selector.modify(exchange.sock, selectors.EVENT_READ, exchange)

    def _drain(self, exchange: _Exchange) -> None:
        """Read what the peer still sends, until it closes its side too."""
        try:
            if exchange.sock.recv(65536):
                return
        except BlockingIOError:
            return
        self._close(exchange)

    def _expire(self, now: float) -> None:
        for exchange in [e for e in self._exchanges.values() if e.deadline <= now]:
            if exchange.stage is not _Stage.DRAINING:
                log.debug(f"{self.name}_request_timed_out", stage=exchange.stage.name.lower())
            self._close(exchange)
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self._selector.register(self._listener, selectors.EVENT_READ)

    def _close(self, exchange: _Exchange) -> None:
        sock = exchange.sock
        if sock.fileno() < 0:
            return
        self._exchanges.pop(sock.fileno(), None)
        self._selector.unregister(sock)
        sock.close()
        exchange.outgoing = memoryview(b"")  # a closed connection lets go of its response at once
