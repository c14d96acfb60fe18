"""Endpoint: one TLS client socket, from handshake to close, driven by its
I/O worker: TLS, the output queue, backpressure, deadlines, closing.

What the bytes mean is its `Codec`'s business, chosen by the host once the
handshake has said which protocol ALPN selected: lines for a chat session
(lines.py), or HTTP and WebSocket (http.py, websocket.py). It knows nothing
of chat: a session answers through `deliver` and `close`.

# NOTE: every method here except `deliver()` and `close()` runs only on the
# owning worker's thread, which is the only thread that ever touches this
# endpoint's TLSStream and its SSL object (OpenSSL forbids concurrent use of
# one SSL object; see docs/architecture.md). Other threads reach an endpoint
# only through `deliver()`, which queues bytes under `_lock`, `close()`, or
# `Worker.call_soon()`.
"""

from __future__ import annotations

import collections
import math
import ssl
import threading
import time
from enum import Enum
from typing import TYPE_CHECKING, Final, Protocol

import structlog

from chatd.config import LimitsConfig
from chatd.tls import peer_common_name
from chatd.transport.tlsstream import TLSStream

if TYPE_CHECKING:
    from chatd.transport.worker import Timer, Worker

log = structlog.get_logger(__name__)

# Plaintext read from one connection per turn, then the others have the thread:
# at most this, and at most an eighth of send_queue_bytes, so that what one
# sender's turn puts in everyone's queue stays small beside the queue's limit.
READ_BUDGET: Final = 65536
WRITE_CHUNK: Final = 16384  # one TLS record: progress is visible per chunk
LINGER_SECONDS: Final = 2.0  # after BYE, how long to drain the peer before closing


class Sender(Protocol):
    def pause_for_backlog(self) -> bool: ...
    def resume_after_backlog(self) -> None: ...


class Application(Protocol):
    """What a codec serves: a chat session (chatd.core.session.Session)."""

    nick: str
    messages_in: int

    def on_open(self, reject: str | None, cert_nick: str | None) -> None: ...
    def on_lines(self, lines: list[bytes | None]) -> None: ...
    def on_timer(self, now: float) -> None: ...
    def on_close(self, reason: str, text: str) -> bytes:
        """The connection ends for `reason`; returns the last line to send."""
    def limits_changed(self) -> None: ...


class Counted(Protocol):
    """What an endpoint's logs and counters read of its application."""

    nick: str
    messages_in: int


class Finished:
    """What an endpoint keeps of its application before it has one and after
    it has finished: what its logs and counters may still read."""

    __slots__ = ("nick", "messages_in")

    def __init__(self, nick: str = "", messages_in: int = 0) -> None:
        self.nick = nick
        self.messages_in = messages_in


class Codec(Protocol):
    """What the bytes of an open connection mean (lines.py, http.py, websocket.py)."""

    # Whether the slow-consumer rule applies: false while answering HTTP, whose
    # responses (files) may be larger than a chat client's queue.
    bounded: bool

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


class _Idle:
    """The codec before the handshake and after the end: nothing to do."""

    bounded = True

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


IDLE: Final = _Idle()


class Host(Protocol):
    """What an endpoint needs from the server."""

    @property
    def limits(self) -> LimitsConfig: ...

    def open_codec(self, endpoint: Endpoint, alpn: str | None) -> Codec:
        """The codec for the protocol the handshake selected (None: no ALPN)."""
    def unregister(self, endpoint: Endpoint) -> None: ...
    def note_handshake_failure(self) -> None: ...
    def note_rejected(self, endpoint: Endpoint, reason: str) -> None: ...


class State(Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"  # BYE queued; flushing, then lingering
    CLOSED = "closed"


class Endpoint:
    def __init__(
        self,
        host: Host,
        worker: Worker,
        tls: TLSStream,
        peer: tuple[str, int],
        conn_id: int,
        reject: str | None,
    ) -> None:
        self.host = host
        self.worker = worker
        self.tls = tls
        self.sock = tls.sock
        self.fd = tls.sock.fileno()  # what the worker's epoll watches
        self.id = conn_id
        self.ip = peer[0]
        self.peer = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        self.state = State.HANDSHAKE
        self.connected_at = time.time()
        self.messages_out = 0
        self.interest = 0  # epoll events currently registered
        self.reject = reject
        self.context = {"session": conn_id, "peer": self.peer}
        self.app: Counted = Finished()  # the session, once a codec has made one
        self.codec: Codec = IDLE
        self._close_reason = ""
        # Output. `_outbox`, `_queued`, `_unflushed` and `_waiters` are shared
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
        # Deadlines (monotonic); `timer_at` is the one the worker's heap knows.
        self.timer_at = math.inf
        self.timer: Timer | None = None
        now = time.monotonic()
        self._phase_deadline: float | None = now + host.limits.handshake_timeout
        self._stall_deadline: float | None = None
        self._app_deadline: float | None = None
        self._linger_deadline: float | None = None

    # -- called from any thread -------------------------------------------------

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

    def close(self, reason: str, text: str = "") -> None:
        """`BYE`, flush and close, from any thread (see `begin_close`)."""
        if self.worker.in_thread():
            self.begin_close(reason, text)
        else:
            self.worker.call_soon(lambda: self.begin_close(reason, text), self)

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

    # -- events from the worker -------------------------------------------------

    def start(self) -> None:
        self._rearm()
        self._handshake()

    def on_readable(self) -> None:
        if self.state is State.CLOSED:
            return
        if self.state is State.HANDSHAKE:
            self._handshake()
            return
        if not self._input_paused:
            self._read()
        if self.tls.pending_out and self.is_open():
            self._write()  # what reading produced, e.g. the answer to a KeyUpdate
        self._update_interest()

    def on_writable(self) -> None:
        if self.state is State.CLOSED:
            return
        if self.state is State.HANDSHAKE:
            self._handshake()
            return
        self.flush()
        self._update_interest()

    def flush(self) -> None:
        """Move queued output to the socket, as far as it takes it.

        A client whose socket refuses data while more than `send_queue_bytes`
        wait for it is a slow consumer. Bytes this worker had not yet tried to
        write never count against a client (docs/architecture.md).
        """
        chunks = self._take_outbox(scheduled=False)
        if self.state is State.CLOSED:
            return
        self._unsent.extend(chunks)
        self._write()
        if (
            self._write_wants_write
            and self.state is State.OPEN
            and self._queued > self.host.limits.send_queue_bytes
            and self.codec.bounded
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

    def set_deadline(self, when: float | None) -> None:
        """The application's one deadline: its `on_timer` runs then."""
        self._app_deadline = when
        self._rearm()

    def on_timer(self, now: float) -> None:
        if self._phase_deadline is not None and now >= self._phase_deadline:
            self._phase_deadline = None
            if self.state is State.HANDSHAKE:
                self._handshake_failed("timeout")
                return
            if self.state is State.CLOSING:
                self.finish(self._close_reason, "peer did not take the BYE in time")
                return
        if self._stall_deadline is not None and now >= self._stall_deadline:
            self.finish("write_timeout", "no data accepted by the peer")
            return
        if self._linger_deadline is not None and now >= self._linger_deadline:
            self.finish(self._close_reason)
            return
        if self._app_deadline is not None and now >= self._app_deadline:
            self._app_deadline = None
            if self.state is State.OPEN:
                self.codec.on_timer(now)
        self._rearm()

    def limits_changed(self) -> None:
        if self.state is State.OPEN:
            self.codec.limits_changed()

    def is_open(self) -> bool:
        return self.state is not State.CLOSED

    def output_pending(self) -> bool:
        """Whether bytes queued for this client have not all gone to the socket yet."""
        return self._queued > 0 or self.tls.pending_out > 0

    # -- TLS handshake ----------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self.worker.set_interest(self, read=True, write=self.tls.pending_out > 0)
            return
        except (ssl.SSLError, OSError) as exc:
            self._handshake_failed(_describe(exc))
            return
        self._phase_deadline = None
        cipher = self.tls.cipher()
        log.info(
            "connect",
            **self.context,
            tls_version=self.tls.version(),
            cipher=cipher[0] if cipher else None,
        )
        self.worker.set_interest(self, read=True, write=False)
        self.state = State.OPEN
        if self.reject is not None:
            self.host.note_rejected(self, self.reject)
        self.codec = self.host.open_codec(self, self.tls.selected_alpn_protocol())
        self.codec.on_open(self.reject, peer_common_name(dict(self.tls.getpeercert() or {})))
        if self.state is State.OPEN and self.tls.has_buffered_input():
            self.worker.mark_readable(self)  # the nickname came with the client's Finished

    def _handshake_failed(self, error: str) -> None:
        log.info("tls_handshake_failed", **self.context, error=error)
        self.host.note_handshake_failure()
        self.finish("tls_handshake_failed", error, quiet=True)

    # -- reading ----------------------------------------------------------------

    def _read(self) -> None:
        """Take what has arrived, up to the read budget, and hand it to the
        application in one piece: people send one line per TLS record, and
        lines read together leave together (one block per room, not per line)."""
        if not self._may_read():
            self._input_paused = True
            self._update_interest()
            return
        received: list[bytes] = []
        size = 0
        ended = ""
        budget = min(READ_BUDGET, self.host.limits.send_queue_bytes // 8)
        while size < budget:
            try:
                data = self.tls.recv(budget - size)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLError, OSError) as exc:
                ended = _describe(exc)
                break
            if not data:
                ended = "closed by peer"
                break
            received.append(data)
            size += len(data)
        else:
            self.worker.mark_readable(self)  # more may be waiting; come back next turn
        if received and self.state is State.OPEN:
            self.codec.on_data(b"".join(received) if len(received) > 1 else received[0])
        if ended:
            self.finish(self._close_reason or "connection_lost", ended)

    def _may_read(self) -> bool:
        return not self._waiting and self._queued <= self.host.limits.send_queue_bytes // 2

    def _backlog_taken(self) -> None:
        self._waiting = False
        self._resume_input()

    def _resume_input(self) -> None:
        if self._input_paused and self._may_read() and self.state is not State.CLOSED:
            self._input_paused = False
            self._update_interest()
            self.worker.mark_readable(self)

    # -- writing --------------------------------------------------------------------

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
                self.finish("connection_lost", _describe(exc))
                return
            with self._lock:
                self._queued -= sent
            self._inflight = None
        try:
            if not self.tls.flush():
                self._blocked()
                return
        except OSError as exc:
            self.finish("connection_lost", _describe(exc))
            return
        self._stall_deadline = None
        if self._write_wants_write:
            self._write_wants_write = False
            self._update_interest()
        self._resume_input()
        if self.state is State.CLOSING and self._linger_deadline is None:
            self._start_linger()

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
        if self._stall_deadline is None:
            self._stall_deadline = time.monotonic() + self.host.limits.write_timeout
            self._rearm()

    def _overflowed(self) -> None:
        log.info("slow_consumer", **self.context, nick=self.app.nick, queued=self._queued)
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

    # -- closing ----------------------------------------------------------------------

    def begin_close(self, reason: str, text: str = "") -> None:
        """Say `BYE <reason>`, tell the application, flush, then close (after a short linger)."""
        if self.state in (State.CLOSING, State.CLOSED):
            return
        if self.state is State.HANDSHAKE:
            self.finish(reason)
            return
        last_line = self.codec.on_close(reason, text)
        self.state = State.CLOSING
        self._close_reason = reason
        with self._lock:
            # The last line, whatever the queue holds or the limit says.
            self._outbox.append(last_line)
            self._accepting_output = False
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self.worker.mark_dirty(self)
        self._linger_deadline = None
        self._phase_deadline = time.monotonic() + LINGER_SECONDS + 1.0  # cap the flush too
        self._rearm()

    def _start_linger(self) -> None:
        try:
            self.tls.shutdown_write()  # FIN after the BYE; reading goes on, to drain the peer
        except OSError:
            self.finish(self._close_reason)
            return
        self._linger_deadline = time.monotonic() + LINGER_SECONDS
        self._rearm()

    def finish(self, reason: str, detail: str = "", quiet: bool = False) -> None:
        """Close the socket now and forget this connection."""
        if self.state is State.CLOSED:
            return
        if self.state is State.OPEN:
            self.codec.on_close(reason, "")
        self.state = State.CLOSED
        with self._lock:
            self._accepting_output = False
        self._take_outbox(scheduled=True)  # nothing more is sent, nor scheduled
        self._unsent.clear()
        self.worker.forget(self)
        try:
            self.tls.close()
        except OSError:
            pass  # already gone; nothing more to release
        self.host.unregister(self)
        if not quiet:
            log.info(
                "disconnect",
                **self.context,
                nick=self.app.nick or None,
                reason=self._close_reason or reason,
                detail=detail or None,
                duration_s=round(time.time() - self.connected_at, 3),
                messages_in=self.app.messages_in,
                messages_out=self.messages_out,
            )
        # The session holds this endpoint (its outlet) and this endpoint holds
        # the session and the codec: let go of them, so that all, with the SSL
        # object and every buffer, are freed now rather than by a later cyclic GC pass.
        self.app = Finished(self.app.nick, self.app.messages_in)
        self.codec = IDLE

    def _update_interest(self) -> None:
        """Watch readability unless input is paused, writability while the socket
        holds back our ciphertext."""
        if self.state in (State.HANDSHAKE, State.CLOSED):
            return
        self.worker.set_interest(self, read=not self._input_paused, write=self._write_wants_write)

    def _rearm(self) -> None:
        deadlines = [
            d
            for d in (
                self._phase_deadline,
                self._stall_deadline,
                self._app_deadline,
                self._linger_deadline,
            )
            if d is not None
        ]
        if deadlines:
            self.worker.arm_timer(self, min(deadlines))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"{exc.reason}: {exc.verify_message}"  # e.g. certificate has expired
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
