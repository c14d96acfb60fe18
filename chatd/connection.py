"""Connection: one client, from TLS handshake to close, driven by its I/O worker.

# NOTE: every method here except `deliver()` runs only on the owning worker's
# thread, which is the only thread that ever touches this connection's
# TLSStream and its SSL object (OpenSSL forbids concurrent use of one SSL
# object; see docs/architecture.md). Other threads reach a connection only through
# `deliver()`, which queues bytes under `_lock`, or `Worker.call_soon()`.
"""

from __future__ import annotations

import collections
import math
import ssl
import threading
import time
from enum import Enum
from typing import TYPE_CHECKING, Final

import structlog

from chatd import protocol
from chatd.errors import ProtocolError
from chatd.tls import peer_common_name
from chatd.tlsstream import TLSStream

if TYPE_CHECKING:
    from chatd.room import Sender
    from chatd.server import Server
    from chatd.worker import Timer, Worker

log = structlog.get_logger(__name__)

# Plaintext read from one connection per turn, then the others have the thread:
# at most this, and at most an eighth of send_queue_bytes, so that what one
# sender's turn puts in everyone's queue stays small beside the queue's limit.
READ_BUDGET: Final = 65536
WRITE_CHUNK: Final = 16384  # one TLS record: progress is visible per chunk
LINGER_SECONDS: Final = 2.0  # after BYE, how long to drain the peer before closing
FLOOD_WINDOW: Final = 30.0


class State(Enum):
    HANDSHAKE = "handshake"
    REGISTERING = "registering"
    ACTIVE = "active"
    CLOSING = "closing"  # BYE queued; flushing, then lingering
    CLOSED = "closed"


class Connection:
    def __init__(
        self,
        server: Server,
        worker: Worker,
        tls: TLSStream,
        peer: tuple[str, int],
        conn_id: int,
        reject: str | None,
    ) -> None:
        self.server = server
        self.worker = worker
        self.tls = tls
        self.sock = tls.sock
        self.fd = tls.sock.fileno()  # what the worker's epoll watches
        self.id = conn_id
        self.ip = peer[0]
        self.peer = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        self.nick = ""
        self.state = State.HANDSHAKE
        self.connected_at = time.time()
        self.last_active = time.monotonic()
        self.messages_in = 0
        self.messages_out = 0
        self.interest = 0  # epoll events currently registered
        self.reject = reject
        self._ctx = {"session": conn_id, "peer": self.peer}
        self._linebuf = protocol.LineBuffer(server.limits.max_line_bytes)
        self._batch: list[bytes] = []  # lines for everyone, sent as one block
        self._nick_bytes = b""
        self._cert_nick: str | None = None
        self._nick_attempts = 0
        self._strikes = 0
        self._tokens = float(server.limits.message_burst)
        self._tokens_at = time.monotonic()
        self._held: collections.deque[bytes | None] = collections.deque()
        self._rejections: collections.deque[float] = collections.deque()
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
        self._phase_deadline: float | None = now + server.limits.handshake_timeout
        self._stall_deadline: float | None = None
        self._hold_deadline: float | None = None
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
                and self._unflushed > self.server.limits.send_queue_bytes // 2
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
            and self.state in (State.REGISTERING, State.ACTIVE)
            and self._queued > self.server.limits.send_queue_bytes
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

    def on_timer(self, now: float) -> None:
        if self._phase_deadline is not None and now >= self._phase_deadline:
            self._phase_deadline = None
            if self.state is State.HANDSHAKE:
                self._handshake_failed("timeout")
                return
            if self.state is State.REGISTERING:
                self.begin_close("register_timeout")
            elif self.state is State.CLOSING:
                self.finish(self._close_reason, "peer did not take the BYE in time")
                return
        if self._stall_deadline is not None and now >= self._stall_deadline:
            self.finish("write_timeout", "no data accepted by the peer")
            return
        if self._linger_deadline is not None and now >= self._linger_deadline:
            self.finish(self._close_reason)
            return
        if self._hold_deadline is not None and now >= self._hold_deadline:
            self._hold_deadline = None
            self._release_held(now)
        self._rearm()

    def limits_changed(self) -> None:
        """A reload changed the limits: lines held by the old rate go by the new one."""
        if self._held and self.state is State.ACTIVE:
            self._hold_deadline = None
            self._release_held(time.monotonic())
            self._rearm()

    def is_open(self) -> bool:
        return self.state is not State.CLOSED

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
            **self._ctx,
            tls_version=self.tls.version(),
            cipher=cipher[0] if cipher else None,
        )
        self.worker.set_interest(self, read=True, write=False)
        self.state = State.REGISTERING
        if self.reject is not None:
            self.server.note_rejected(self, self.reject)
            self._send_error(ProtocolError(self.reject, _REJECT_TEXT[self.reject]))
            self.begin_close(self.reject)
            return
        self._cert_nick = peer_common_name(dict(self.tls.getpeercert() or {}))
        self._phase_deadline = time.monotonic() + self.server.limits.register_timeout
        self._rearm()
        self.deliver(b"NICK\n")
        if self.tls.has_buffered_input():
            self.worker.mark_readable(self)  # the nickname came with the client's Finished

    def _handshake_failed(self, error: str) -> None:
        log.info("tls_handshake_failed", **self._ctx, error=error)
        self.server.note_handshake_failure()
        self.finish("tls_handshake_failed", error, quiet=True)

    # -- reading ----------------------------------------------------------------

    def _read(self) -> None:
        """Take what has arrived, up to the read budget, and handle it as one
        piece: people send one line per TLS record, and lines read together
        leave together (one block for the room, not one per line)."""
        if not self._may_read():
            self._input_paused = True
            self._update_interest()
            return
        received: list[bytes] = []
        size = 0
        ended = ""
        budget = min(READ_BUDGET, self.server.limits.send_queue_bytes // 8)
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
        if received and self.state in (State.REGISTERING, State.ACTIVE):
            self._on_data(b"".join(received) if len(received) > 1 else received[0])
        if ended:
            self.finish(self._close_reason or "connection_lost", ended)

    def _may_read(self) -> bool:
        return not self._waiting and self._queued <= self.server.limits.send_queue_bytes // 2

    def _backlog_taken(self) -> None:
        self._waiting = False
        self._resume_input()

    def _resume_input(self) -> None:
        if self._input_paused and self._may_read() and self.state is not State.CLOSED:
            self._input_paused = False
            self._update_interest()
            self.worker.mark_readable(self)

    def _on_data(self, data: bytes) -> None:
        now = time.monotonic()
        self.last_active = now
        self._linebuf.max_line_bytes = self.server.limits.max_line_bytes  # live after reload
        for line in self._linebuf.feed(data):
            if self.state is State.ACTIVE:
                self._gate(line, now)
            elif self.state is State.REGISTERING:
                self._register(line)
            else:
                break
        self._flush_batch()

    def _gate(self, line: bytes | None, now: float) -> None:
        """Token-bucket flood control: handle, hold, or refuse the line."""
        if not self._held and self._take_token(now):
            self._handle(line)
            return
        limits = self.server.limits
        if len(self._held) < limits.message_burst:
            self._held.append(line)
            if self._hold_deadline is None:
                self._hold_deadline = self._next_token_at(now)
                self._rearm()
            return
        self._send_error(ProtocolError(protocol.RATE_LIMITED, "Slow down; that line was dropped."))
        log.info("rate_limited", **self._ctx, nick=self.nick)
        if limits.flood_disconnect:
            self._rejections.append(now)
            while self._rejections and now - self._rejections[0] > FLOOD_WINDOW:
                self._rejections.popleft()
            if len(self._rejections) >= limits.flood_disconnect:
                self.begin_close("flood")

    def _take_token(self, now: float) -> bool:
        limits = self.server.limits
        if limits.message_rate <= 0:
            return True
        self._tokens = min(
            float(limits.message_burst),
            self._tokens + (now - self._tokens_at) * limits.message_rate,
        )
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _release_held(self, now: float) -> None:
        while self._held and self.state is State.ACTIVE and self._take_token(now):
            self._handle(self._held.popleft())
        self._flush_batch()
        if self._held and self.state is State.ACTIVE:
            self._hold_deadline = self._next_token_at(now)

    def _next_token_at(self, now: float) -> float:
        rate = self.server.limits.message_rate or 1.0  # 0 after a reload: release at once
        return now + max(0.0, 1.0 - self._tokens) / rate

    # -- registration and commands --------------------------------------------------

    def _register(self, line: bytes | None) -> None:
        limits = self.server.limits
        try:
            if line is protocol.TOO_LONG:
                raise ProtocolError(protocol.LINE_TOO_LONG, "Nicknames are short; line dropped.")
            text = protocol.clean_line(line).decode("utf-8")
            if text == "/quit" or text.startswith("/quit "):
                self.begin_close("quit")
                return
            nick = protocol.check_nick(text, limits.max_nick_length)
            if self.server.config.tls.nick_from_cert and nick != self._cert_nick:
                raise ProtocolError(
                    protocol.NICK_INVALID,
                    f"Your certificate allows only the nickname {self._cert_nick}.",
                )
            welcome = f"Welcome to {self.server.name}, {nick}! Type /help for commands."
            self.server.room.join(self, nick, protocol.format_line("WELCOME", nick, welcome))
        except ProtocolError as error:
            self._nick_attempts += 1
            self._send_error(error)
            if self._nick_attempts >= limits.max_nick_attempts:
                self.begin_close("nick_failed")
            else:
                self.deliver(b"NICK\n")
            return
        self.state = State.ACTIVE
        self._phase_deadline = None
        self._nick_bytes = nick.encode()
        log.info("nickname", **self._ctx, nick=nick)

    def _handle(self, line: bytes | None) -> None:
        try:
            if line is protocol.TOO_LONG:
                raise ProtocolError(
                    protocol.LINE_TOO_LONG,
                    f"Lines are limited to {self.server.limits.max_line_bytes} bytes; "
                    "that one was dropped.",
                )
            command = protocol.parse_command(protocol.clean_line(line))
            if command.verb == "say":
                self.messages_in += 1
                self._batch.append(protocol.format_text_line(b"MSG", self._nick_bytes, command.text))
            else:
                self._command(command)
        except ProtocolError as error:
            self._send_error(error)

    def _command(self, command: protocol.Command) -> None:
        verb = command.verb
        if verb == "me":
            self.messages_in += 1
            self._batch.append(protocol.format_text_line(b"ACTION", self._nick_bytes, command.text))
            return
        self._flush_batch()
        room = self.server.room
        if verb == "msg":
            target = room.find(command.target)
            if target is None:
                raise ProtocolError(protocol.NO_SUCH_NICK, f"Nobody is called {command.target}.")
            self.messages_in += 1
            line = b"DM %s %s %s\n" % (self._nick_bytes, target.nick.encode(), command.text)
            target.deliver(line, 1, sender=self)
            if target is not self:
                self.deliver(line)
        elif verb == "nick":
            self._rename(command.target)
        elif verb == "who":
            self.deliver(protocol.format_users(room.nicks()))
        elif verb == "ping":
            self.deliver(b"PONG %s\n" % command.text if command.text else b"PONG\n")
        elif verb == "quit":
            self.begin_close("quit", command.text.decode())
        elif verb == "help":
            for text in protocol.HELP_LINES:
                self.deliver(protocol.format_line("INFO", text))

    def _rename(self, new: str) -> None:
        protocol.check_nick(new, self.server.limits.max_nick_length)
        if new == self.nick:
            self.deliver(protocol.format_line("INFO", f"You are already {new}."))
            return
        if self.server.config.tls.nick_from_cert:
            raise ProtocolError(protocol.NICK_INVALID, "Your nickname comes from your certificate.")
        old = self.server.room.rename(self, new)
        self._nick_bytes = new.encode()
        log.info("rename", **self._ctx, old=old, new=new)

    def _flush_batch(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self.server.room.broadcast(b"".join(batch), len(batch), sender=self)

    def _send_error(self, error: ProtocolError) -> None:
        self._flush_batch()
        self.deliver(protocol.format_error(error))
        if error.code in protocol.STRIKE_CODES:
            self._strikes += 1
            if self._strikes >= self.server.limits.max_strikes:
                self.begin_close("too_many_errors")

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
                self._unsent.appendleft(first[WRITE_CHUNK:])
                return first[:WRITE_CHUNK]
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
            self._stall_deadline = time.monotonic() + self.server.limits.write_timeout
            self._rearm()

    def _overflowed(self) -> None:
        log.info("slow_consumer", **self._ctx, nick=self.nick, queued=self._queued)
        # Drop what is queued, but finish a line already half handed to TLS, so
        # that the BYE starts a line of its own.
        rest_of_line = b""
        if self._split_line and self._unsent:
            head = self._unsent[0]
            rest_of_line = head[: head.find(b"\n") + 1] or head
        self._unsent.clear()
        if rest_of_line:
            self._unsent.append(rest_of_line)
        self._take_outbox(scheduled=False)
        with self._lock:
            self._queued = len(self._inflight or b"") + len(rest_of_line)
        self.begin_close("slow_consumer")

    # -- closing ----------------------------------------------------------------------

    def begin_close(self, reason: str, text: str = "") -> None:
        """Say `BYE <reason>`, tell the room, flush, then close (after a short linger)."""
        if self.state in (State.CLOSING, State.CLOSED):
            return
        if self.state is State.HANDSHAKE:
            self.finish(reason)
            return
        self._flush_batch()
        full_reason = f"{reason} {text}".rstrip() if text else reason
        self._leave_room(full_reason)
        self.state = State.CLOSING
        self._close_reason = reason
        self._held.clear()
        with self._lock:
            # The last line, whatever the queue holds or the limit says.
            # A /quit's own words go to the others only; any other reason's text
            # (an operator's kick message) is for the client too.
            bye = reason if reason == "quit" else full_reason
            self._outbox.append(protocol.format_line("BYE", bye))
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

    def _leave_room(self, reason: str) -> None:
        if self.nick and self.state is State.ACTIVE:
            self.server.room.leave(self, None if self.server.stopping else reason)

    def finish(self, reason: str, detail: str = "", quiet: bool = False) -> None:
        """Close the socket now and forget this connection."""
        if self.state is State.CLOSED:
            return
        self._leave_room(reason)
        self.state = State.CLOSED
        with self._lock:
            self._accepting_output = False
        self._take_outbox(scheduled=True)  # nothing more is sent, nor scheduled
        self._unsent.clear()
        self._held.clear()
        self.worker.forget(self)
        try:
            self.tls.close()
        except OSError:
            pass  # already gone; nothing more to release
        self.server.unregister(self)
        if not quiet:
            log.info(
                "disconnect",
                **self._ctx,
                nick=self.nick or None,
                reason=self._close_reason or reason,
                detail=detail or None,
                duration_s=round(time.time() - self.connected_at, 3),
                messages_in=self.messages_in,
                messages_out=self.messages_out,
            )

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
                self._hold_deadline,
                self._linger_deadline,
            )
            if d is not None
        ]
        if deadlines:
            self.worker.arm_timer(self, min(deadlines))


_REJECT_TEXT: Final = {
    protocol.SERVER_FULL: "The server is full; try again later.",
    protocol.TOO_MANY_CONNECTIONS: "Too many connections from your address.",
    protocol.THROTTLED: "Too many connections from your address in the last minute; wait a bit.",
}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"{exc.reason}: {exc.verify_message}"  # e.g. certificate has expired
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
