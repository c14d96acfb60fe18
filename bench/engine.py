"""The load generator's connection: one non-blocking TLS client (`Conn`),
its socket, TLS through memory BIOs and its reads and writes, written for
low overhead per byte received. The epoll loop that drives many of them is
loop.py's `Engine`.

Why not asyncio: its SSL transport costs tens of microseconds per read event
in Python-level protocol callbacks, and at a million or more delivered lines
a second the generator would become the bottleneck. Here a readable socket
costs one `recv()` into a memory BIO, however many TLS records arrived, and
then one `SSLObject.read()` per record into one shared buffer. What happens to
the decrypted bytes (counted, split, timed) is receive.py's business; what
the bytes mean, dialects.py's; what is run, scenarios.py's.
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
from collections.abc import Callable

from bench.loop import EPOLLERR_HUP, EPOLLIN, EPOLLOUT, Engine, close_conn
from bench.receive import Receiving
from bench.sending import Sending
from bench.websocket import ClientWebSocket, WebSocketFailed

perf_ns = time.perf_counter_ns


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
        self.address: tuple[str, int] | None = None  # another server than the engine's (cluster nodes)
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
        self.parse = False  # split lines even as a plain receiver (slow-consumer runs)
        self._init_receiving(sample, sender_id)
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
        err = sock.connect_ex(self.address or self.engine.address)
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower()
    if isinstance(exc, OSError) and exc.errno:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__
