"""The load generator's event loop: one `epoll`, the timers, the shared
receive buffers and the run-wide counters (`Engine`), and closing a
connection out of it (`close_conn`).

One connection (TLS, reading, writing) is engine.py's `Conn`; what it does
with the bytes, receive.py's and sending.py's; what is run, scenarios.py's.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import select
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol

from bench.dialects import Dialect

EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLLERR_HUP = select.EPOLLERR | select.EPOLLHUP
perf_ns = time.perf_counter_ns


class Client(Protocol):
    """What the loop dispatches to: a `Conn`, or churn.py's raw clients."""

    def on_event(self, events: int) -> None: ...

    def close(self) -> None: ...


class Engine:
    """The loop, the shared receive buffer and the run-wide counters.

    Its connections are engine.Conn (typed `Any` here: the loop imports no
    connection, so that engine.py may import the loop)."""

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
        self.blocked: set[Any] = set()  # senders waiting for receivers to catch up
        self.finishers = 0  # receivers that must finish for the run to end
        self.finished = 0
        self.failed_receivers = 0
        self.failed_senders = 0
        self.readers: list[Any] = []  # whose expectations shrink when a sender is dropped
        self.sent_msgs = 0  # benchmark messages sent by all senders
        self.sent_by_group: list[int] = [0]  # the same, by the senders' group
        self.unsent = 0  # messages that dropped senders never got to send
        self.t_all_finished = 0
        self.t_last_progress = 0
        # Connection-phase accounting.
        self.registered = 0
        self.handshaken = 0
        self.on_handshake: Callable[[Any], None] = lambda conn: None
        self.connect_failed = 0
        self.synced = 0
        self.watch: bytes | None = None  # count other lines that mention this (a nick)
        self.watch_hits = 0
        self.on_registered: Callable[[Any], None] = lambda conn: None
        self.on_closed: Callable[[Any], None] = lambda conn: None

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
