"""Churn: for about a minute, a bounded number of concurrent clients (40 by
default) connect again and again, each time as one of four kinds of
connection, in turn:

- `garbage`: 200 random bytes instead of a ClientHello, then close;
- `truncated`: the first half of a real ClientHello, then close;
- `quit`: full TLS, a nickname, one line to the room, quit (IRC: NICK/USER,
  JOIN #bench, PRIVMSG #bench, QUIT);
- `drop`: full TLS and a nickname, then close without quitting.

"Close" for the first two is a half-close (`shutdown(SHUT_WR)`, a FIN after
the bytes, as close() sends), after which the client waits for the server to
close its side: so a connection counts as done when the server has dealt with
it, and connects/s is the server's rate, not how fast the generator can throw
sockets away. `drop` is done when the client has closed; the server's clean-up
of it shows in its RSS and descriptors, sampled once a second from /proc for
the whole run and for `idle` seconds after the churn. Then one last client
checks that the server still registers a newcomer.

The result: completed connects/s per kind and in all, how each kind failed
(timeouts included), completion times, the RSS and descriptor series, and CPU.
"""

from __future__ import annotations

import collections
import errno
import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from bench.engine import Conn, perf_ns
from bench.harness import make_engine
from bench.loop import EPOLLERR_HUP, EPOLLIN, EPOLLOUT, Engine, close_conn
from bench.measure import Meter, Proc, percentiles

KINDS = ("garbage", "truncated", "quit", "drop")


def _garbage() -> bytes:
    # Random, but never a TLS record header (content types 20-24), which would
    # make the server wait for the rest of a record that is not coming.
    data = bytearray(os.urandom(200))
    if 20 <= data[0] <= 24:
        data[0] = 0x47  # "G", as in a stray "GET / HTTP/1.1"
    return bytes(data)


def _truncated_hello(context: ssl.SSLContext) -> bytes:
    """The first half of the ClientHello this generator's TLS clients send."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    return hello[: len(hello) // 2]


class RawConn:
    """A client that sends bytes that are not (all of) a TLS handshake, half-closes,
    and waits for the server to close."""

    def __init__(self, churn: Churn, kind: str, payload: bytes) -> None:
        self.churn = churn
        self.engine = churn.engine
        self.kind = kind
        self.payload = payload
        self.sock: socket.socket | None = None
        self.fd = -1
        self.state = "new"
        self.ended = False
        self.t_start = perf_ns()

    def connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.sock = sock
        err = sock.connect_ex(self.engine.address)
        if err not in (0, errno.EINPROGRESS):
            self._end(f"connect: {errno.errorcode.get(err, err)}")
            return
        self.fd = sock.fileno()
        self.engine.conns[self.fd] = self
        self.engine.epoll.register(self.fd, EPOLLOUT)  # connected when writable
        self.state = "connecting"

    def on_event(self, events: int) -> None:
        assert self.sock is not None
        if self.state == "connecting":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._end(f"connect: {errno.errorcode.get(err, err)}")
                return
            if not events & EPOLLOUT:
                return
            try:
                self.sock.send(self.payload)  # 200-odd bytes into an empty buffer
                self.sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                self._end(f"write: {errno.errorcode.get(exc.errno or 0, exc)}")
                return
            self.state = "waiting"
            self.engine.epoll.modify(self.fd, EPOLLIN)
        elif self.state == "waiting" and events & (EPOLLIN | EPOLLERR_HUP):
            try:
                data = self.sock.recv(65536)  # an alert, if anything; then EOF
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # a reset is also the server closing
                self._end(None, f"reset ({errno.errorcode.get(exc.errno or 0, exc)})")
                return
            if not data:
                self._end(None, "closed")

    def _end(self, error: str | None, how: str = "") -> None:
        self.close()
        self.churn.done(self, error, how)

    def close(self) -> None:
        close_conn(self)


@dataclass
class KindStats:
    started: int = 0
    completed: int = 0
    in_window: int = 0  # completed before the churn's end (what connects/s counts)
    timeouts: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    how: collections.Counter[str] = field(default_factory=collections.Counter)  # how it ended
    times: list[int] = field(default_factory=list)  # ns from connect() to completion


class ChurnConn(Conn):
    """A TLS client of the churn: registers, then quits or drops (`kind`)."""

    def __init__(self, engine: Engine, index: int, kind: str) -> None:
        super().__init__(engine, index, f"k{index:07d}")
        self.kind = kind
        self.ended = False
        self.t_start = perf_ns()


class Churn:
    """The loop that keeps `concurrency` connections going, one kind after another."""

    def __init__(self, engine: Engine, spec: dict[str, Any]) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.concurrency = int(spec.get("concurrency", 40))
        self.timeout = float(spec.get("timeout", 20))
        self.kinds = tuple(spec.get("kinds", KINDS))
        self.truncated = _truncated_hello(engine.context)
        self.in_progress = 0
        self.started = 0
        self.stop_at = 0.0  # monotonic; no new connection after this
        self.stats = {kind: KindStats() for kind in self.kinds}
        engine.on_registered = self._registered
        engine.on_closed = self._closed

    def start(self, duration: float) -> None:
        self.stop_at = time.monotonic() + duration
        for _ in range(self.concurrency):
            self._next()

    def _next(self) -> None:
        if time.monotonic() >= self.stop_at:
            return
        kind = self.kinds[self.started % len(self.kinds)]
        self.started += 1
        self.in_progress += 1
        self.stats[kind].started += 1
        conn: RawConn | ChurnConn
        if kind in ("garbage", "truncated"):
            conn = RawConn(self, kind, _garbage() if kind == "garbage" else self.truncated)
        else:
            conn = ChurnConn(self.engine, self.started, kind)
        when = time.monotonic() + self.timeout
        self.engine.call_at(when, lambda: self._expire(conn))
        conn.connect()

    def _expire(self, conn: RawConn | ChurnConn) -> None:
        if not conn.ended:
            conn.close()
            self.done(conn, "timeout")

    def _registered(self, conn: Conn) -> None:
        assert isinstance(conn, ChurnConn)
        if conn.kind == "drop":
            conn.close()
            self.done(conn, None, "closed by client")
            return
        conn.feed = lambda buf, n: None  # JOIN, MSG and LEAVE lines of the others
        conn.write(self.dialect.chat_line(b"hello from churn"))
        if conn.state == "open":
            conn.write(self.dialect.quit())

    def _closed(self, conn: Conn) -> None:
        assert isinstance(conn, ChurnConn)
        if conn.ended:
            return
        if conn.kind == "quit" and conn.registration.done:
            self.done(conn, None, "closed by server" if conn.error == "closed by server" else f"reset ({conn.error})")
        else:
            self.done(conn, conn.error or "closed")

    def done(self, conn: RawConn | ChurnConn, error: str | None, how: str = "") -> None:
        """One connection has ended: `error` None means it completed as its kind should."""
        if conn.ended:
            return
        conn.ended = True
        stats = self.stats[conn.kind]
        now = perf_ns()
        if error is None:
            stats.completed += 1
            stats.how[how] += 1
            stats.times.append(now - conn.t_start)
            if time.monotonic() < self.stop_at:
                stats.in_window += 1
        elif error == "timeout":
            stats.timeouts += 1
        else:
            stats.errors[error[:70]] += 1
        self.in_progress -= 1
        # The next one from the loop, not from here: a connect that fails at
        # once (no ports left, say) would otherwise recurse.
        self.engine.call_at(0.0, self._next)


def churn(spec: dict[str, Any]) -> dict[str, Any]:
    engine = make_engine(spec)
    server = Proc(spec.get("server_pid"))
    duration = float(spec.get("duration", 60))
    idle = float(spec.get("idle", 10))
    loop = Churn(engine, spec)
    samples: list[list[float]] = []
    t0 = time.monotonic()

    def sample() -> None:
        samples.append(
            [
                round(time.monotonic() - t0, 1),
                server.rss_kib(),
                _fds(server.pid),
                sum(s.completed for s in loop.stats.values()),
            ]
        )
        engine.call_at(time.monotonic() + 1.0, sample)

    sample()
    rss_start, fds_start = samples[0][1], samples[0][2]
    meter = Meter(server)
    t_start = perf_ns()
    loop.start(duration)
    outcome = engine.run(
        lambda: loop.in_progress == 0 and time.monotonic() >= loop.stop_at, duration + loop.timeout + 5
    )
    cpu = meter.result()
    elapsed = (perf_ns() - t_start) / 1e9
    rss_end, fds_end = server.rss_kib(), _fds(server.pid)
    samples.append([round(time.monotonic() - t0, 1), rss_end, fds_end, samples[-1][3]])
    engine.run(lambda: False, idle)  # nobody connected; the sampler goes on
    rss_idle, fds_idle = server.rss_kib(), _fds(server.pid)
    samples.append([round(time.monotonic() - t0, 1), rss_idle, fds_idle, samples[-1][3]])
    serves = _serves(engine, spec)
    kinds: dict[str, Any] = {}
    for kind, s in loop.stats.items():
        kinds[kind] = {
            "started": s.started,
            "completed": s.completed,
            "per_s": round(s.in_window / duration, 1),
            "timeouts": s.timeouts,
            "failed": sum(s.errors.values()),
            "errors": dict(s.errors.most_common(5)),
            "how": dict(s.how.most_common(4)),
            "time": percentiles(s.times),
        }
    completed = sum(k["completed"] for k in kinds.values())
    failed = sum(k["failed"] + k["timeouts"] for k in kinds.values())
    result = {
        **spec,
        "ok": outcome == "done" and failed == 0 and serves,
        "outcome": outcome,
        "elapsed_s": round(elapsed, 2),
        "connects_per_s": round(sum(s.in_window for s in loop.stats.values()) / duration, 1),
        "completed": completed,
        "failed": failed,
        "kinds": kinds,
        "truncated_bytes": len(loop.truncated),
        "rss_kib_start": rss_start,
        "rss_kib_peak": max(s[1] for s in samples),
        "rss_kib_end": rss_end,
        "rss_kib_idle": rss_idle,
        "fds_start": fds_start,
        "fds_end": fds_end,
        "fds_idle": fds_idle,
        "serves_after": serves,
        "samples": samples,  # [s since start, RSS KiB, open descriptors, completed so far]
        **cpu,
    }
    engine.close_all()
    return result


def _serves(engine: Engine, spec: dict[str, Any]) -> bool:
    """After the churn and the idle time: does a newcomer still get registered?"""
    conn = Conn(engine, 0, "after01")
    registered: list[Conn] = []
    engine.on_registered = registered.append
    engine.on_closed = lambda c: None
    conn.connect()
    engine.run(lambda: bool(registered) or conn.state == "closed", float(spec.get("timeout", 20)))
    conn.close()
    return bool(registered)


def _fds(pid: int | None) -> int:
    """The server's open descriptors (root may list anyone's)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1
