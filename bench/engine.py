"""The load generator's engine: one epoll loop driving many non-blocking TLS
client connections (`Conn`), written for low overhead per byte received.

Why not asyncio: its SSL transport costs tens of microseconds per read event
in Python-level protocol callbacks, and at a million or more delivered lines
a second the generator would become the bottleneck. Here a readable socket
costs one `recv()` into a memory BIO, however many TLS records arrived, and
then one `SSLObject.read()` per record into one shared buffer. What happens to
the decrypted bytes (counted, split, timed) is receive.py's business; what
the bytes mean, dialects.py's; what is run, scenarios.py's.
"""

from __future__ import annotations

import collections
import errno
import heapq
import itertools
import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol

from bench.dialects import Dialect
from bench.receive import Receiving
from bench.sending import Sending
from bench.websocket import ClientWebSocket, WebSocketFailed

EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLLERR_HUP = select.EPOLLERR | select.EPOLLHUP
perf_ns = time.perf_counter_ns


class Client(Protocol):
    """What the loop dispatches to: a `Conn`, or churn.py's raw clients."""

    def on_event(self, events: int) -> None: ...

    def close(self) -> None: ...


class Engine:
    """The loop, the shared receive buffer and the run-wide counters."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, dialect: Dialect) -> None:
        self.address = (host, port)
        self.context = context
        self.dialect = dialect
        self.epoll = select.epoll()
        self.conns: dict[int, Client] = {}
        self.buf = bytearray(256 * 1024)  # decrypted bytes, shared by all connections
        self.raw = bytearray(1024 * 1024)  # encrypted bytes straight from recv()
        self.raw_view = memoryview(self.raw)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()
        self.errors: collections.Counter[str] = collections.Counter()
        # Run-phase accounting, shared by all connections.
        self.received_total = 0  # benchmark lines received by all reading clients
        self.expected_sent = 0  # deliveries implied by the messages sent so far
        # Deliveries each message should cause, by the sender's group: one group
        # (0) but in the rooms scenario, where a group is a room.
        self.fanouts: list[int] = [0]
        self.lag_limit = 1 << 62
        # How a sender writes a batch: "packed", all its lines in one TLS record;
        # "lines", one TLS record and one send() per line, as people send.
        self.records = "lines"
        self.quickack = True  # see Conn._receive
        self.pad = b""  # appended to every benchmark message (b" xxx…")
        self.mark_rtts: list[int] = []  # ns from a batch's send to its acknowledgement
        self.blocked: set[Conn] = set()  # senders waiting for receivers to catch up
        self.finishers = 0  # receivers that must finish for the run to end
        self.finished = 0
        self.failed_receivers = 0
        self.failed_senders = 0
        self.readers: list[Conn] = []  # whose expectations shrink when a sender is dropped
        self.sent_msgs = 0  # benchmark messages sent by all senders
        self.sent_by_group: list[int] = [0]  # the same, by the senders' group
        self.unsent = 0  # messages that dropped senders never got to send
        self.t_all_finished = 0
        self.t_last_progress = 0
        # Connection-phase accounting.
        self.registered = 0
        self.handshaken = 0
        self.on_handshake: Callable[[Conn], None] = lambda conn: None
        self.connect_failed = 0
        self.synced = 0
        self.watch: bytes | None = None  # count other lines that mention this (a nick)
        self.watch_hits = 0
        self.on_registered: Callable[[Conn], None] = lambda conn: None
        self.on_closed: Callable[[Conn], None] = lambda conn: None

    # -- timers and the loop ---------------------------------------------------------

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._timer_ids), fn))

    def lag_ok(self) -> bool:
        return self.expected_sent - self.received_total < self.lag_limit

    def run(self, until: Callable[[], bool], timeout: float, idle: float | None = None) -> str:
        """Dispatch events until `until()` holds ("done"), `timeout` seconds pass
        ("timeout") or, with `idle`, no benchmark line arrives for that long ("idle")."""
        deadline = time.monotonic() + timeout
        poll = self.epoll.poll
        conns = self.conns
        timers = self._timers
        last_total, last_change = self.received_total, time.monotonic()
        while True:
            if until():
                return "done"
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            if idle is not None:
                if self.received_total != last_total:
                    last_total, last_change = self.received_total, now
                    self.t_last_progress = perf_ns()
                elif now - last_change > idle:
                    return "idle"
            wait = min(deadline - now, 0.05)
            if timers:
                wait = max(0.0, min(wait, timers[0][0] - now))
            for fd, events in poll(wait, 4096):
                conn = conns.get(fd)
                if conn is not None:
                    conn.on_event(events)
            if timers:
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    heapq.heappop(timers)[2]()
            if self.blocked and self.lag_ok():
                waiting = list(self.blocked)
                self.blocked.clear()
                for sender in waiting:
                    sender.pump()

    def close_all(self) -> None:
        for conn in list(self.conns.values()):
            conn.close()
        self.epoll.close()


class Conn(Receiving, Sending):
    """One TLS client: connect → handshake → register → setup → run."""

    def __init__(
        self,
        engine: Engine,
        index: int,
        nick: str,
        *,
        sender_id: int = -1,
        sample: bool = False,
        privileged: bool = False,
        rcvbuf: int = 0,
        room: str | None = None,
        group: int = 0,
    ) -> None:
        self.engine = engine
        self.index = index
        self.nick = nick
        self.sender_id = sender_id
        self.sample = sample
        self.rcvbuf = rcvbuf
        # Who hears this client and whom it hears: one group but in the rooms
        # scenario, where the client registers into `room` and talks only there.
        self.group = group
        self.prefix = engine.dialect.msg_prefix if room is None else engine.dialect.room_prefix(room)
        self.registration = engine.dialect.registration(nick, privileged, room)
        # Lines as WebSocket messages, once `GET /ws` has been answered (bench/websocket.py).
        self.ws = ClientWebSocket("{}:{}".format(*engine.address)) if engine.dialect.websocket else None
        self.source: str | None = None  # a local address to connect from (127.x.y.z: one per client)
        self.sock: socket.socket | None = None
        self.tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.fd = -1
        self.events = 0
        self.state = "new"
        self.error: str | None = None
        self.feed: Callable[[bytearray | bytes, int], None] = self._feed_register
        self._unsent = b""  # TLS records the socket did not take yet
        self.partial = b""
        self.hold = False  # after the handshake, wait for register() before registering
        self.held = bytearray()
        # timings (perf_counter_ns)
        self.t_connect = self.t_handshake = self.t_registered = 0
        # run phase
        self.reading = True
        self.is_sync_sender = False
        self.synced = False
        self.count = 0  # benchmark lines received
        self.other = 0  # other lines received (PONG, JOIN, LEAVE, ...)
        self.other_examples: list[bytes] = []
        self.corrupt = 0
        self.order_errors = 0
        self.expected = 0
        self.done = False
        self.latencies: list[int] | None = [] if sample else None
        self.last_seq: dict[bytes, int] = {}  # sender (4 digits) -> last sequence seen
        self.own_id = b"%04d" % sender_id if sender_id >= 0 else b"-"
        self.validate = sample
        self.tail = b""  # last bytes of the previous read (PONG search across reads)
        self.parse = False  # split lines even as a plain receiver (slow-consumer runs)
        self._init_sending()

    # -- connection set-up ---------------------------------------------------------------

    def connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        if self.source:
            sock.bind((self.source, 0))  # the server's per-address limits and throttles see this address
        self.sock = sock
        self.fd = sock.fileno()
        self.t_connect = perf_ns()
        err = sock.connect_ex(self.engine.address)
        if err not in (0, errno.EINPROGRESS):
            self._fail(f"connect: {errno.errorcode.get(err, err)}")
            return
        self.engine.conns[self.fd] = self
        # On loopback the connection is usually up by now: the ClientHello goes at
        # once. If it is not, send() says EAGAIN and _flush waits for EPOLLOUT; a
        # refused connection shows up as an error on the first read.
        self.events = EPOLLIN
        self.engine.epoll.register(self.fd, EPOLLIN)
        self._start_tls()

    def on_event(self, events: int) -> None:
        state = self.state
        if state == "open":
            if events & (EPOLLIN | EPOLLERR_HUP):
                self._read()
            if events & EPOLLOUT and self.state == "open":
                self._flush()
        elif state == "handshake":
            if events & EPOLLOUT and self._unsent:
                self._flush()
            if events & (EPOLLIN | EPOLLERR_HUP) and self._receive():
                self._handshake()

    def _start_tls(self) -> None:
        self.tls = self.engine.context.wrap_bio(self._incoming, self._outgoing, server_hostname="localhost")
        self.state = "handshake"
        self._handshake()

    def _handshake(self) -> None:
        assert self.tls is not None
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, OSError) as exc:
            self._fail(f"handshake: {_describe(exc)}")
            return
        self.state = "open"
        self._flush()
        if self.ws is not None:
            self._write_raw(self.ws.upgrade_request())  # ready (below) once answered
        else:
            self._ready()
        if self._incoming.pending and self.state == "open":
            self._decrypt()  # the server's first line came with its last handshake flight

    def _ready(self) -> None:
        """TLS is up (and with a WebSocket, the upgrade answered): count the
        handshake, then register, or wait for register() (`hold`)."""
        self.t_handshake = perf_ns()
        self.engine.handshaken += 1
        self.engine.on_handshake(self)
        if self.hold:
            self.feed = self._feed_hold
        else:
            hello = self.registration.start()
            if hello:
                self.write(hello)

    # -- reading -------------------------------------------------------------------------
    #
    # One recv() per readiness event takes everything the kernel has (many TLS
    # records at once) into a memory BIO; OpenSSL then decrypts record by
    # record without further system calls. An SSLSocket would make two recv()
    # calls per record (header, body) plus a failing one per event.

    def _receive(self) -> bool:
        """Move what the socket has into the TLS layer; False if the connection ended."""
        assert self.sock is not None
        raw = self.engine.raw
        try:
            n = self.sock.recv_into(raw)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as exc:
            self._fail(f"read: {_describe(exc)}")
            return False
        if n == 0:
            self._incoming.write_eof()
        else:
            self._incoming.write(self.engine.raw_view[:n])
            if self.engine.quickack:
                # ACK at once: a server with Nagle on (ngircd, the seed) would
                # otherwise wait for our delayed ACK before its next small write.
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return True

    def _read(self) -> None:
        if self._receive():
            self._decrypt()

    def _decrypt(self) -> None:
        buf = self.engine.buf
        size = len(buf)
        read = self.tls.read  # type: ignore[union-attr]
        while True:
            try:
                n = read(size, buf)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                n = 0
            except ssl.SSLError as exc:
                self._fail(f"read: {_describe(exc)}")
                return
            if n == 0:
                self._fail("closed by server")
                return
            if self.ws is None:
                self.feed(buf, n)
            else:
                lines = self._from_websocket(buf, n)
                if lines:
                    self.feed(lines, len(lines))
            if self.state != "open" or not self.reading:
                return
        if self._outgoing.pending:
            self._flush()  # e.g. a KeyUpdate answer

    def _from_websocket(self, buf: bytearray, n: int) -> bytes:
        """What the server's frames in buf[:n] say, as lines; the upgrade's answer first."""
        ws = self.ws
        assert ws is not None
        try:
            if not ws.open:
                rest = ws.take_upgrade(bytes(buf[:n]))
                if rest is None:
                    return b""
                self._ready()
                if not rest or self.state != "open":
                    return b""
                lines, reply = ws.lines(rest)
            else:
                lines, reply = ws.lines(memoryview(buf)[:n])
        except WebSocketFailed as exc:
            self._fail(f"websocket: {exc}")
            return b""
        if reply:
            self._write_raw(reply)
        return lines

    def stop_reading(self) -> None:
        """The slow consumer: never read again (the socket stays open)."""
        self.reading = False
        self._set_events(EPOLLOUT if self._unsent else 0)

    def write(self, data: bytes) -> None:
        if self.ws is not None:
            data = self.ws.frame(data)  # lines as text messages
        self._write_raw(data)

    def _write_raw(self, data: bytes) -> None:
        assert self.tls is not None
        try:
            self.tls.write(data)  # into the memory BIO: never blocks
        except ssl.SSLError as exc:
            self._fail(f"write: {_describe(exc)}")
            return
        self._flush()

    def _flush(self) -> None:
        """Send the TLS records waiting in the BIO; keep what the socket refuses."""
        assert self.sock is not None
        data = self._unsent + self._outgoing.read() if self._unsent else self._outgoing.read()
        if data:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._fail(f"write: {_describe(exc)}")
                return
            self._unsent = data[sent:]
        reading = EPOLLIN if self.reading else 0
        self._set_events(reading | EPOLLOUT if self._unsent else reading)

    # -- bookkeeping ---------------------------------------------------------------------

    def _set_events(self, events: int) -> None:
        if events != self.events and self.fd >= 0:
            self.events = events
            self.engine.epoll.modify(self.fd, events)

    def resume_reading(self) -> None:
        self.reading = True
        self._set_events(EPOLLIN)

    def _fail(self, error: str) -> None:
        if self.error is None:
            self.error = error
            self.engine.errors[error.split(":")[0] + ": " + error.split(":", 1)[-1].strip()[:60]] += 1
        engine = self.engine
        if self.state in ("new", "handshake") or not self.registration.done:
            engine.connect_failed += 1
        else:
            self._gone()
        self.close()
        self.engine.on_closed(self)

    def close(self) -> None:
        close_conn(self)


def close_conn(conn: Any) -> None:
    """Close a generator connection (a Conn, or churn's RawConn) once: out of
    the engine's table and epoll, then its socket."""
    if conn.state == "closed":
        return
    conn.state = "closed"
    if conn.fd >= 0:
        conn.engine.conns.pop(conn.fd, None)
        try:
            conn.engine.epoll.unregister(conn.fd)
        except (OSError, ValueError):
            pass  # not registered (never connected) or the epoll is already closed
        conn.fd = -1
    if conn.sock is not None:
        conn.sock.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower()
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__
