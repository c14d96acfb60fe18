"""Endpoint: one TLS client socket, from handshake to close, driven by its
I/O worker: the TLS handshake, reading, closing; its phases and deadlines
are its `Lifecycle`'s (lifecycle.py), its output queue and backpressure are
output.py's (a mixin).

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

import math
import ssl
import time
from typing import TYPE_CHECKING, Final, Protocol

import structlog

from chatd.config import LimitsConfig
from chatd.tls import peer_common_name
from chatd.transport.codec import IDLE, Codec, Counted, Finished
from chatd.transport.lifecycle import Expiry, Lifecycle, Phase
from chatd.transport.output import Output
from chatd.transport.tlsstream import TLSStream, describe_error

if TYPE_CHECKING:
    from chatd.transport.worker import Timer, Worker

log = structlog.get_logger(__name__)

# Plaintext read from one connection per turn, then the others have the thread:
# at most this, and at most an eighth of send_queue_bytes, so that what one
# sender's turn puts in everyone's queue stays small beside the queue's limit.
READ_BUDGET: Final = 65536


class Host(Protocol):
    """What an endpoint needs from the server."""

    @property
    def limits(self) -> LimitsConfig: ...

    def open_codec(self, endpoint: Endpoint, alpn: str | None) -> Codec:
        """The codec for the protocol the handshake selected (None: no ALPN)."""

    def unregister(self, endpoint: Endpoint) -> None: ...
    def note_handshake_failure(self) -> None: ...
    def note_rejected(self, endpoint: Endpoint, reason: str) -> None: ...


class Endpoint(Output):
    host: Host
    worker: Worker

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
        self._stats = worker.stats  # written on the worker's thread only
        self.tls = tls
        self.sock = tls.sock
        self.fd = tls.sock.fileno()  # what the worker's epoll watches
        self.id = conn_id
        self.ip = peer[0]
        self.peer = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        self.connected_at = time.time()
        self.messages_out = 0
        self.interest = 0  # epoll events currently registered
        self.reject = reject
        self.context = {"session": conn_id, "peer": self.peer}
        self.app: Counted = Finished()  # the session, once a codec has made one
        self.codec: Codec = IDLE
        self.life = Lifecycle(time.monotonic(), host.limits.handshake_timeout)
        self.timer_at = math.inf  # the deadline the worker's heap knows (`_rearm`)
        self.timer: Timer | None = None
        self._init_output()

    @property
    def state(self) -> Phase:
        return self.life.phase

    # -- called from any thread -------------------------------------------------

    def close(self, reason: str, text: str = "") -> None:
        """`BYE`, flush and close, from any thread (see `begin_close`)."""
        if self.worker.in_thread():
            self.begin_close(reason, text)
        else:
            self.worker.call_soon(lambda: self.begin_close(reason, text), self)

    # -- events from the worker -------------------------------------------------

    def start(self) -> None:
        self._rearm()
        self._handshake()

    def on_readable(self) -> None:
        phase = self.life.phase
        if phase is Phase.CLOSED:
            return
        if phase is Phase.HANDSHAKE:
            self._handshake()
            return
        if not self._input_paused:
            self._read()
        if self.tls.pending_out and self.is_open():
            self._write()  # what reading produced, e.g. the answer to a KeyUpdate
        self._update_interest()

    def on_writable(self) -> None:
        phase = self.life.phase
        if phase is Phase.CLOSED:
            return
        if phase is Phase.HANDSHAKE:
            self._handshake()
            return
        self.flush()
        self._update_interest()

    def set_deadline(self, when: float | None) -> None:
        """The application's one deadline: its `on_timer` runs then."""
        self.life.set_app_deadline(when)
        self._rearm()

    def on_timer(self, now: float) -> None:
        expiry = self.life.expired(now)
        if expiry is Expiry.HANDSHAKE:
            self._handshake_failed("timeout")
        elif expiry is Expiry.BYE:
            self.finish(self.life.reason, "peer did not take the BYE in time")
        elif expiry is Expiry.STALL:
            self.finish("write_timeout", "no data accepted by the peer")
        elif expiry is Expiry.LINGER:
            self.finish(self.life.reason)
        else:
            if expiry is Expiry.APP:
                self.codec.on_timer(now)
            self._rearm()

    def limits_changed(self) -> None:
        if self.life.phase is Phase.OPEN:
            self.codec.limits_changed()

    def is_open(self) -> bool:
        return self.life.phase is not Phase.CLOSED

    @property
    def queued(self) -> int:
        """Bytes waiting for this client (read without the lock: for metrics)."""
        return self._queued

    # -- TLS handshake ----------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self.worker.set_interest(self, read=True, write=self.tls.pending_out > 0)
            return
        except (ssl.SSLError, OSError) as exc:
            self._handshake_failed(describe_error(exc))
            return
        cipher = self.tls.cipher()
        log.info(
            "connect",
            **self.context,
            tls_version=self.tls.version(),
            cipher=cipher[0] if cipher else None,
        )
        self.worker.set_interest(self, read=True, write=False)
        self.life.opened()
        if self.reject is not None:
            self.host.note_rejected(self, self.reject)
        self.codec = self.host.open_codec(self, self.tls.selected_alpn_protocol())
        self.codec.on_open(self.reject, peer_common_name(dict(self.tls.getpeercert() or {})))
        if self.life.phase is Phase.OPEN and self.tls.has_buffered_input():
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
                ended = describe_error(exc)
                break
            if not data:
                ended = "closed by peer"
                break
            received.append(data)
            size += len(data)
        else:
            self.worker.mark_readable(self)  # more may be waiting; come back next turn
        if received:
            self._stats.bytes_in += size
            if self.life.phase is Phase.OPEN:
                self.codec.on_data(b"".join(received) if len(received) > 1 else received[0])
        if ended:
            self.finish("connection_lost", ended)

    # -- closing ----------------------------------------------------------------------

    def begin_close(self, reason: str, text: str = "") -> None:
        """Say `BYE <reason>`, tell the application, flush, then close (after a short linger)."""
        phase = self.life.phase
        if phase is Phase.CLOSING or phase is Phase.CLOSED:
            return
        if phase is Phase.HANDSHAKE:
            self.finish(reason)
            return
        last_line = self.codec.on_close(reason, text)
        self.life.closing(reason, time.monotonic())
        with self._lock:
            # The last line, whatever the queue holds or the limit says.
            self._outbox.append(last_line)
            self._accepting_output = False
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self.worker.mark_dirty(self)
        self._rearm()

    def _start_linger(self) -> None:
        try:
            self.tls.shutdown_write()  # FIN after the BYE; reading goes on, to drain the peer
        except OSError:
            self.finish(self.life.reason)
            return
        self.life.lingering(time.monotonic())
        self._rearm()

    def finish(self, reason: str, detail: str = "", quiet: bool = False) -> None:
        """Close the socket now and forget this connection."""
        if self.life.phase is Phase.CLOSED:
            return
        if self.life.phase is Phase.OPEN:
            self.codec.on_close(reason, "")
        reason = self.life.closed(reason)
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
        self._stats.disconnected(reason)
        if not quiet:
            log.info(
                "disconnect",
                **self.context,
                nick=self.app.nick or None,
                reason=reason,
                detail=detail or None,
                duration_s=round(time.time() - self.connected_at, 3),
                messages_in=self.app.messages_in,
                messages_out=self.messages_out,
            )
        # The session holds this endpoint (its outlet) and this endpoint holds
        # the session and the codec: let go of them, so that all, with the SSL
        # object and every buffer, are freed now rather than by a later cyclic GC pass.
        self.app = Finished(self.app.nick, self.app.messages_in, self.app.rate_limited)
        self.codec = IDLE

    def _update_interest(self) -> None:
        """Watch readability unless input is paused, writability while the socket
        holds back our ciphertext."""
        if self.life.phase in (Phase.HANDSHAKE, Phase.CLOSED):
            return
        self.worker.set_interest(self, read=not self._input_paused, write=self._write_wants_write)

    def _rearm(self) -> None:
        self.worker.arm_timer(self, self.life.next_deadline())  # a later one is ignored
