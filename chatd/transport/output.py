"""Output: an endpoint's outgoing side, from `deliver` on any thread to the
socket on its worker's: the queue, coalescing into TLS-record-sized writes,
backpressure on senders and on the client's own reading, and the
slow-consumer rule (docs/architecture.md, "Fan-out without stalls").

A mixin of `Endpoint` (endpoint.py), which provides the life cycle it
calls back into (`finish`, `begin_close`, deadlines, epoll interest).

# NOTE: `deliver()` is the fan-out hot path: every line to every member of a
# room goes through it. It takes the lock around the queue only, and wakes
# the worker outside it, once per turn at most.
"""

from __future__ import annotations

import collections
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import structlog

from chatd.config import LimitsConfig
from chatd.outlet import Sender
from chatd.transport.codec import Codec, Counted
from chatd.transport.lifecycle import Lifecycle, Phase
from chatd.transport.tlsstream import TLSStream, describe_error
from chatd.transport.worker import IOStats

log = structlog.get_logger(__name__)

WRITE_CHUNK: Final = 16384  # one TLS record: progress is visible per chunk


class _Limited(Protocol):
    @property
    def limits(self) -> LimitsConfig: ...


class _Worker(Protocol):
    """The parts of chatd.transport.worker.Worker used here; `conn` is the endpoint."""

    def in_thread(self) -> bool: ...
    def mark_dirty(self, conn: Any) -> None: ...
    def mark_readable(self, conn: Any) -> None: ...
    def call_soon(self, call: Callable[[], None], conn: Any = None) -> bool: ...


class Output:
    # Provided by Endpoint.
    host: _Limited
    worker: _Worker
    tls: TLSStream
    codec: Codec
    app: Counted
    context: dict[str, object]
    messages_out: int
    _stats: IOStats
    life: Lifecycle

    def _init_output(self) -> None:
        # `_outbox`, `_queued`, `_unflushed` and `_waiters` are shared
        # with other threads under _lock.
        self._lock = threading.Lock()
        self._outbox: list[bytes] = []
        self._queued = 0  # bytes waiting for this client, wherever they wait
        self._unflushed = 0  # of those, bytes this worker has not taken yet
        self._waiters: list[Sender] = []  # senders paused until this worker takes them
        self._scheduled = False
        self._accepting_output = True
        self._unsent: collections.deque[bytes] = collections.deque()
        self._inflight: bytes | None = None
        self._split_line = False  # the last chunk handed to TLS ended inside a line
        # The socket would not take all our ciphertext; `_update_interest` watches writability.
        self._write_wants_write = False
        # Backpressure: this client is not read while its own queue is over half
        # its limit (a sender that outpaces its own echo is slowed by TCP rather
        # than disconnected), nor while `_waiting` for a recipient's worker to
        # catch up with what it sent (chatd itself is the bottleneck then).
        self._input_paused = False
        self._waiting = False
        # The codec takes no more input for now (HTTP: requests are queued
        # behind a response in flight), until `release_input`.
        self._input_held = False
        self._notify_drained = False  # call `codec.drained()` once the queue is empty

    # -- the endpoint's, called from here ---------------------------------------------

    def finish(self, reason: str, detail: str = "", quiet: bool = False) -> None:
        raise NotImplementedError

    def begin_close(self, reason: str, text: str = "") -> None:
        raise NotImplementedError

    def _start_linger(self) -> None:
        raise NotImplementedError

    def _update_interest(self) -> None:
        raise NotImplementedError

    def _rearm(self) -> None:
        raise NotImplementedError

    # -- called from any thread ------------------------------------------------------

    def deliver(self, data: bytes, lines: int = 1, sender: Sender | None = None) -> None:
        """Queue `data` for this client; never blocks, never touches the socket.

        `sender`, whose line this is (called on its thread), is paused when this
        client's worker has fallen more than half a queue behind, until that
        worker has taken what waits here (`resume_after_backlog`).
        """
        size = len(data)
        with self._lock:
            if not self._accepting_output:
                return
            self._outbox.append(data)
            self._queued += size
            self._unflushed += size
            self.messages_out += lines
            if (
                sender is not None
                and self._unflushed > self.host.limits.send_queue_bytes // 2
                and sender.pause_for_backlog()
            ):
                self._waiters.append(sender)
            if self._scheduled:
                return
            self._scheduled = True
        self.worker.mark_dirty(self)

    def pause_for_backlog(self) -> bool:
        """Stop reading this client until `resume_after_backlog`; False if it is
        already waiting. Called on this connection's own thread, as the sender."""
        if self._waiting:
            return False
        self._waiting = True
        return True

    def resume_after_backlog(self) -> None:
        """The recipient this client waited for has been taken by its worker."""
        if self.worker.in_thread():
            self._backlog_taken()
        else:
            self.worker.call_soon(self._backlog_taken, self)

    # -- the worker's thread -----------------------------------------------------------

    def flush(self) -> None:
        """Move queued output to the socket, as far as it takes it.

        A client whose socket refuses data while more than `send_queue_bytes`
        wait for it is a slow consumer. Bytes this worker had not yet tried to
        write never count against a client (docs/architecture.md).
        """
        chunks = self._take_outbox(scheduled=False)
        if self.life.phase is Phase.CLOSED:
            return
        self._unsent.extend(chunks)
        self._write()
        if (
            self._write_wants_write
            and self.life.phase is Phase.OPEN
            and self._queued > self.host.limits.send_queue_bytes
            and self._queued - self.codec.exempt_bytes > self.host.limits.send_queue_bytes
        ):
            self._overflowed()

    def _take_outbox(self, scheduled: bool) -> list[bytes]:
        """Everything queued by other threads; senders waiting on it read again."""
        with self._lock:
            self._scheduled = scheduled
            chunks, self._outbox = self._outbox, []
            self._unflushed = 0
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.resume_after_backlog()
        return chunks

    @property
    def queued(self) -> int:
        """Bytes waiting for this client (read without the lock: for metrics)."""
        return self._queued

    def output_pending(self) -> bool:
        """Whether bytes queued for this client have not all gone to the socket yet."""
        return self._queued > 0 or self.tls.pending_out > 0

    def notify_when_drained(self) -> None:
        """Call the codec's `drained()` once all that is queued has gone to the socket."""
        self._notify_drained = True

    # -- backpressure on this client's reading ------------------------------------------

    def hold_input(self) -> None:
        """Read nothing more from this client until `release_input` (its codec's call)."""
        self._input_held = True

    def release_input(self) -> None:
        self._input_held = False
        self._resume_input()

    def _may_read(self) -> bool:
        return not self._waiting and not self._input_held and self._queued <= self.host.limits.send_queue_bytes // 2

    def _backlog_taken(self) -> None:
        self._waiting = False
        self._resume_input()

    def _resume_input(self) -> None:
        if self._input_paused and self._may_read() and self.life.phase is not Phase.CLOSED:
            self._input_paused = False
            self._update_interest()
            self.worker.mark_readable(self)

    # -- writing ------------------------------------------------------------------------

    def _write(self) -> None:
        while True:
            if self._inflight is None:
                if not self._unsent:
                    break
                self._inflight = self._next_chunk()
            try:
                sent = self.tls.send(self._inflight)
            except ssl.SSLWantWriteError:
                self._blocked()
                return
            except (ssl.SSLError, OSError) as exc:
                self.finish("connection_lost", describe_error(exc))
                return
            with self._lock:
                self._queued -= sent
            self._stats.bytes_out += sent
            self._inflight = None
        try:
            if not self.tls.flush():
                self._blocked()
                return
        except OSError as exc:
            self.finish("connection_lost", describe_error(exc))
            return
        self.life.written()
        if self._write_wants_write:
            self._write_wants_write = False
            self._update_interest()
        self._resume_input()
        if self.life.awaits_linger():
            self._start_linger()
        elif self._notify_drained and self._queued == 0 and self.life.phase is Phase.OPEN:
            # NOTE: last, for the codec may queue more or begin closing here.
            self._notify_drained = False
            self.codec.drained()

    def _next_chunk(self) -> bytes:
        chunk = self._take_chunk()
        self._split_line = not chunk.endswith(b"\n")
        return chunk

    def _take_chunk(self) -> bytes:
        first = self._unsent.popleft()
        if len(first) >= WRITE_CHUNK or not self._unsent:
            if len(first) > WRITE_CHUNK:
                cut = self.codec.cut(first, WRITE_CHUNK)
                if cut < len(first):
                    self._unsent.appendleft(first[cut:])
                    return first[:cut]
            return first
        parts = [first]
        size = len(first)
        while self._unsent and size + len(self._unsent[0]) <= WRITE_CHUNK:
            chunk = self._unsent.popleft()
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    def _blocked(self) -> None:
        self._write_wants_write = True
        self._update_interest()
        if self.life.write_refused(time.monotonic(), self.host.limits.write_timeout):
            self._rearm()

    def _overflowed(self) -> None:
        log.info("slow_consumer", **self.context, nick=self.app.nick, queued=self._queued)
        self._stats.slow_consumers += 1
        # Drop what is queued, but finish a line already half handed to TLS, so
        # that the BYE starts a line of its own.
        rest_of_line = b""
        if self._split_line and self._unsent:
            rest_of_line = self.codec.rest_of_unit(self._unsent[0])
        self._unsent.clear()
        if rest_of_line:
            self._unsent.append(rest_of_line)
        self._take_outbox(scheduled=False)
        with self._lock:
            self._queued = len(self._inflight or b"") + len(rest_of_line)
        self.begin_close("slow_consumer")
