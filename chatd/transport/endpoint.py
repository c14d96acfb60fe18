"""Endpoint: one TLS client socket, from handshake to close, driven by its
I/O worker: its phases and deadlines, opening it once the TLS handshake is
done (with the codec for the protocol ALPN selected), closing it with a
`BYE` and a linger, and what its codec and session may ask of it.

It has a `SendQueue` (sendqueue.py: the queue, coalescing, the senders
paused behind it, the slow-consumer rule), an `Intake` (intake.py: what a
turn reads, and when the client is not read) and a `Lifecycle`
(lifecycle.py: its phases and deadlines, and which deadline calls for
what); its bytes are moved by the pump's functions (pump.py: the TLS
handshake's steps, reading, writing, what the worker watches, the stall,
the FIN after the `BYE`), to which it passes itself. This module does what
the lifecycle calls for, and hands the bytes to the pump.

What is not here: moving the bytes (the pump's), and what they mean: that is
its `Codec`'s business, chosen by the host once the handshake has said
which protocol ALPN selected (`switch_codec`): lines for a chat session
(lines.py), or HTTP and WebSocket (http.py, websocket.py). It knows nothing
of chat: a session answers through `deliver` and `close`.

# NOTE: every method here except `deliver()` and `close()` runs only on the
# owning worker's thread, which is the only thread that touches this
# endpoint's TLSStream and its SSL object (OpenSSL forbids concurrent use of
# one SSL object; see docs/architecture.md), but for one call: while
# `hello_step` is HELLO_AWAY, a handshake thread runs `handshake_call` and the
# worker leaves the stream alone (the connection is out of its epoll, and a
# close meanwhile closes only the socket). Other threads reach an endpoint
# only through `deliver()` (its send queue's, which takes the queue's lock),
# `close()`, or `Worker.call_soon()`.
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

import structlog

from chatd.addresses import format_host_port
from chatd.config import LimitsConfig
from chatd.tls import peer_common_name
from chatd.transport import pump
from chatd.transport.codec import IDLE, Codec, Counted, Idle
from chatd.transport.intake import Intake
from chatd.transport.lifecycle import Expiry, Lifecycle, Phase
from chatd.transport.sendqueue import SendQueue
from chatd.transport.tlsstream import TLSStream
from chatd.transport.worker import Connection, IOStats

if TYPE_CHECKING:
    from chatd.transport.timers import Timer

log = structlog.get_logger(__name__)

# The step that answers the ClientHello (`hello_step`), the dear one: a handshake
# thread computes it where the worker has them (chatd/jobthreads.py).
HELLO_OWED: Final = 0  # not taken yet
HELLO_AWAY: Final = 1  # at a handshake thread, which alone touches the SSL object
HELLO_ANSWERED: Final = 2  # the steps after it (cheap) are taken on the worker


class Host(Protocol):
    """What an endpoint needs from the server."""

    @property
    def limits(self) -> LimitsConfig: ...

    def open_codec(self, endpoint: Endpoint, alpn: str | None) -> Codec:
        """The codec for the protocol the handshake selected (None: no ALPN)."""

    def unregister(self, endpoint: Endpoint) -> None: ...
    def note_handshake_failure(self) -> None: ...
    def note_rejected(self, endpoint: Endpoint, reason: str) -> None: ...


class IOWorker(Protocol):
    """What an endpoint needs from its worker (chatd.transport.worker.Worker)."""

    @property
    def stats(self) -> IOStats: ...

    def in_thread(self) -> bool: ...
    def call_soon(self, call: Callable[[], None], conn: Connection | None = None) -> bool: ...
    def mark_dirty(self, conn: Connection) -> None: ...
    def mark_readable(self, conn: Connection) -> None: ...
    def set_interest(self, conn: Connection, read: bool, write: bool) -> None: ...
    def queue_handshake(self, conn: Connection) -> None: ...
    @property
    def hands_over(self) -> bool: ...
    def hand_over(self, conn: Connection, call: Callable[[], ssl.SSLError | None]) -> None: ...
    def arm_timer(self, conn: Connection, when: float) -> None: ...
    def forget(self, conn: Connection) -> None: ...


class Endpoint:
    # One per client: no instance dict (docs/architecture.md, "Memory per connection").
    __slots__ = (
        "__weakref__",
        "app",
        "codec",
        "connected_at",
        "context",
        "deliver",
        "drained_wanted",
        "fd",
        "hello_step",
        "host",
        "id",
        "intake",
        "interest",
        "ip",
        "kind",
        "life",
        "peer",
        "reject",
        "send_queue",
        "timer",
        "timer_at",
        "tls",
        "worker",
    )

    def __init__(
        self,
        host: Host,
        worker: IOWorker,
        tls: TLSStream,
        peer: tuple[str, int],
        conn_id: int,
        reject: str | None,
        kind: str = "chat",
    ) -> None:
        self.host = host
        self.kind = kind  # the listener it came from: "chat" (lines, HTTP) or "irc"
        self.worker = worker
        self.tls = tls
        self.fd = tls.sock.fileno()  # what the worker's epoll watches
        self.id = conn_id
        self.ip = peer[0]
        self.peer = format_host_port(peer[0], peer[1])
        self.connected_at = time.time()
        self.interest = 0  # epoll events currently registered
        self.reject = reject
        self.context: dict[str, object] = {"session": conn_id, "peer": self.peer}
        if kind != "chat":
            self.context["listener"] = kind
        self.codec: Codec = IDLE  # set by `switch_codec` only
        self.app: Counted = IDLE.app  # the codec's application, for the logs and counters
        self.life = Lifecycle(time.monotonic(), host.limits.handshake_timeout)
        self.timer_at = math.inf  # the deadline the worker's heap knows (`_rearm`)
        self.timer: Timer | None = None
        self.send_queue = SendQueue(host, worker.stats, worker, self)
        # NOTE: the queue's own bound method, not a method of this class that
        # calls it: rooms call it once per member per line (the fan-out path).
        self.deliver = self.send_queue.deliver
        self.intake = Intake(self.send_queue)  # what a turn reads, and when none (pump.py moves the bytes)
        self.drained_wanted = False  # call `codec.drained()` once the queue is empty
        self.hello_step = HELLO_OWED  # where the step that answers the ClientHello is

    @property
    def state(self) -> Phase:
        return self.life.phase

    @property
    def queued(self) -> int:
        """Bytes waiting for this client (read without the lock: for metrics)."""
        return self.send_queue.queued

    @property
    def messages_out(self) -> int:
        return self.send_queue.messages_out

    def is_open(self) -> bool:
        return self.life.phase is not Phase.CLOSED

    def switch_codec(self, codec: Codec) -> None:
        """Let `codec` take the connection's bytes from now on; the logs and
        counters read its application."""
        self.codec = codec
        self.app = codec.app

    # -- called from any thread -------------------------------------------------

    def close(self, reason: str, text: str = "") -> None:
        """`BYE`, flush and close, from any thread (see `begin_close`)."""
        if self.worker.in_thread():
            self.begin_close(reason, text)
        else:
            self.worker.call_soon(lambda: self.begin_close(reason, text), self)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run `callback` on this endpoint's worker thread, guarded as its events are."""
        self.worker.call_soon(callback, self)

    def resume_after_backlog(self) -> None:
        """The recipient this client waited for has been taken by its worker."""
        if self.worker.in_thread():
            pump.backlog_taken(self)
        else:
            self.worker.call_soon(lambda: pump.backlog_taken(self), self)

    # -- events from the worker -------------------------------------------------

    def start(self) -> None:
        self._rearm()
        self.worker.queue_handshake(self)

    def handshake_step(self) -> None:
        if self.life.phase is not Phase.HANDSHAKE or self.hello_step == HELLO_AWAY:
            return
        if self.hello_step == HELLO_OWED and self.worker.hands_over:
            if pump.handshake_input(self):
                self.hello_step = HELLO_AWAY
                self.worker.hand_over(self, self.tls.handshake_call)
            return
        if pump.handshake(self):
            self._open()

    def handshake_answered(self, error: ssl.SSLError | None) -> None:
        """The handshake thread's answer to the ClientHello: `error` is what OpenSSL raised."""
        self.hello_step = HELLO_ANSWERED
        if self.life.phase is Phase.HANDSHAKE and pump.handshake_answered(self, error):
            self._open()

    def on_readable(self) -> None:
        phase = self.life.phase
        if phase is Phase.CLOSED:
            return
        if phase is Phase.HANDSHAKE:
            self.worker.queue_handshake(self)
            return
        pump.read(self)
        if self.tls.pending_out and self.is_open():
            pump.write(self)  # what reading produced, e.g. the answer to a KeyUpdate
        pump.watch(self)

    def on_writable(self) -> None:
        phase = self.life.phase
        if phase is Phase.CLOSED:
            return
        if phase is Phase.HANDSHAKE:
            self.worker.queue_handshake(self)
            return
        self.flush()
        pump.watch(self)

    def on_timer(self, now: float) -> None:
        expiry = self.life.expired(now)
        if expiry is Expiry.HANDSHAKE:
            pump.handshake_failed(self, "timeout")
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

    def set_deadline(self, when: float | None) -> None:
        """The application's one deadline: its `on_timer` runs then."""
        self.life.set_app_deadline(when)
        self._rearm()

    def limits_changed(self) -> None:
        if self.life.phase is Phase.OPEN:
            self.codec.limits_changed()

    def release_idle(self) -> bool:
        """The worker's idle sweep (idle.py): give back the TLS buffers if
        nothing was read or written since its last visit."""
        if self.life.phase is Phase.HANDSHAKE:
            return False  # a handshake thread may have the SSL object
        return self.tls.release_buffers()

    # -- opening ------------------------------------------------------------------

    def _open(self) -> None:
        """The handshake is done: the connection opens with the codec for the
        protocol ALPN selected."""
        self.worker.set_interest(self, read=True, write=False)
        self.life.opened()
        if self.reject is not None:
            self.host.note_rejected(self, self.reject)
        self.switch_codec(self.host.open_codec(self, self.tls.selected_alpn_protocol()))
        self.codec.on_open(self.reject, peer_common_name(dict(self.tls.getpeercert() or {})))
        if self.life.phase is Phase.OPEN and self.tls.has_buffered_input():
            self.worker.mark_readable(self)  # the nickname came with the client's Finished

    # -- the bytes: the pump's ----------------------------------------------------

    def flush(self) -> None:
        """Move queued output to the socket, as far as it takes it; a client
        that does not take it is a slow consumer (`SendQueue.slow_consumer`)."""
        queue = self.send_queue
        queue.take()
        if self.life.phase is Phase.CLOSED:
            return
        pump.write(self)
        if queue.slow_consumer(self.codec.exempt_bytes):
            pump.overflowed(self)

    def pause_for_backlog(self) -> bool:
        """Stop reading this client until `resume_after_backlog`; False if it is
        already waiting. Called on this connection's own thread, as the sender."""
        return self.intake.pause_for_backlog()

    def hold_input(self) -> None:
        """Read nothing more from this client until `release_input` (its codec's call)."""
        self.intake.held = True

    def release_input(self) -> None:
        pump.release(self)

    def output_pending(self) -> bool:
        """Whether bytes queued for this client have not all gone to the socket yet."""
        return pump.pending(self)

    def notify_when_drained(self) -> None:
        """Call the codec's `drained()` once all that is queued has gone to the socket."""
        self.drained_wanted = True

    def _rearm(self) -> None:
        self.worker.arm_timer(self, self.life.next_deadline())  # a later one is ignored

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
        self.send_queue.close_with(last_line)
        self._rearm()

    def finish(self, reason: str, detail: str = "", quiet: bool = False) -> None:
        """Close the socket now and forget this connection."""
        if self.life.phase is Phase.CLOSED:
            return
        if self.life.phase is Phase.OPEN:
            self.codec.on_close(reason, "")
        reason = self.life.closed(reason)
        self.send_queue.close()  # nothing more is sent, nor scheduled
        self.worker.forget(self)
        try:
            self.tls.close()
        except OSError:
            pass  # already gone; nothing more to release
        self.host.unregister(self)
        self.worker.stats.disconnected(reason)
        app = self.app
        if not quiet:
            _log_disconnect(self, app, reason, detail)
        # The session holds this endpoint (its outlet) and this endpoint holds
        # the session and the codec: let go of them, so that all, with the SSL
        # object and every buffer, are freed now rather than by a later cyclic GC pass.
        self.switch_codec(Idle(app.nick, app.messages_in, app.rate_limited))


def _log_disconnect(endpoint: Endpoint, app: Counted, reason: str, detail: str) -> None:
    log.info(
        "disconnect",
        **endpoint.context,
        nick=app.nick or None,
        reason=reason,
        detail=detail or None,
        duration_s=round(time.time() - endpoint.connected_at, 3),
        messages_in=app.messages_in,
        messages_out=endpoint.messages_out,
    )
