"""Worker: one I/O thread running a selector over many non-blocking TLS connections.

A connection belongs to exactly one worker for its whole life, and only that
worker's thread calls into its SSL object. Other threads hand work over with
`call_soon()` or, for output, `mark_dirty()`; both wake the selector through a
socketpair at most once per loop turn. Output queued by the worker's own
thread (the common case: one client's line fanned out to the room) needs no
wake-up at all: it is flushed at the end of the turn, all of it in one write
per connection.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Callable

import structlog

from chatd.connection import Connection
from chatd.tlsstream import RECV_SIZE, TLSStream

if TYPE_CHECKING:
    from chatd.server import Server

log = structlog.get_logger(__name__)

_MAX_SELECT_WAIT = 1.0


class Worker:
    def __init__(self, server: Server, index: int) -> None:
        self.server = server
        self.name = f"chatd-io-{index}"
        self.connections: set[Connection] = set()
        self._selector = selectors.DefaultSelector()
        self._scratch = bytearray(RECV_SIZE)  # every recv() of this thread lands here first
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._calls: list[Callable[[], None]] = []
        self._remote_dirty: list[Connection] = []
        self._woken = False
        self._local_dirty: list[Connection] = []
        self._readable: list[Connection] = []
        self._timers: list[tuple[float, int, Connection]] = []
        self._sequence = itertools.count()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    # -- any thread ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def call_soon(self, call: Callable[[], None]) -> None:
        with self._lock:
            self._calls.append(call)
            wake = not self._woken
            self._woken = True
        if wake:
            self._wake()

    def mark_dirty(self, conn: Connection) -> None:
        """`conn` has output queued; flush it at the end of this worker's turn."""
        if threading.get_ident() == self._thread.ident:
            self._local_dirty.append(conn)
            return
        with self._lock:
            self._remote_dirty.append(conn)
            wake = not self._woken
            self._woken = True
        if wake:
            self._wake()

    def stop(self) -> None:
        self._stopping.set()
        self._wake()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def adopt(self, sock: socket.socket, peer: tuple[str, int], conn_id: int, reject: str | None) -> None:
        """Take over a freshly accepted socket; TLS starts on this worker's thread."""
        self.call_soon(lambda: self._start_connection(sock, peer, conn_id, reject))

    # -- worker thread only ---------------------------------------------------------

    def set_interest(self, conn: Connection, read: bool, write: bool) -> None:
        events = (selectors.EVENT_READ if read else 0) | (selectors.EVENT_WRITE if write else 0)
        if events == conn.interest:
            return
        if conn.interest == 0:
            self._selector.register(conn.sock, events, conn)
        elif events == 0:
            self._selector.unregister(conn.sock)
        else:
            self._selector.modify(conn.sock, events, conn)
        conn.interest = events

    def mark_readable(self, conn: Connection) -> None:
        """`conn` may hold decrypted input the selector cannot see; read it next turn."""
        self._readable.append(conn)

    def arm_timer(self, conn: Connection, when: float) -> None:
        if when < conn.timer_at:
            conn.timer_at = when
            heapq.heappush(self._timers, (when, next(self._sequence), conn))

    def forget(self, conn: Connection) -> None:
        if conn.interest:
            try:
                self._selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass  # the socket was already closed underneath the selector
            conn.interest = 0
        conn.timer_at = float("inf")
        self.connections.discard(conn)

    def _start_connection(
        self, sock: socket.socket, peer: tuple[str, int], conn_id: int, reject: str | None
    ) -> None:
        try:
            tls = TLSStream(sock, self.server.tls_context, self._scratch)
        except (ssl.SSLError, OSError) as exc:
            log.info("tls_handshake_failed", session=conn_id, peer=f"{peer[0]}:{peer[1]}", error=str(exc))
            sock.close()
            self.server.release(peer[0], reject)
            return
        conn = Connection(self.server, self, tls, peer, conn_id, reject)
        self.connections.add(conn)
        self.server.register(conn)
        conn.start()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._turn()
        except Exception:
            # A bug here would otherwise silently orphan every connection of this worker.
            log.exception("worker_crashed", worker=self.name)
        finally:
            self._close_all()

    def _turn(self) -> None:
        busy = self._readable or self._local_dirty
        timeout = 0.0 if busy else self._select_timeout()
        for key, events in self._selector.select(timeout):
            conn = key.data
            if conn is None:
                self._drain_wakeups()
                continue
            self._guarded(conn, events)
        self._take_remote_work()
        if self._readable:
            readable, self._readable = self._readable, []
            for conn in readable:
                self._guarded(conn, selectors.EVENT_READ)
        self._flush_dirty()
        self._run_timers()

    def _guarded(self, conn: Connection, events: int) -> None:
        # A bug while serving one client must cost that client only.
        try:
            if events & selectors.EVENT_READ:
                conn.on_readable()
            if events & selectors.EVENT_WRITE:
                conn.on_writable()
        except Exception:
            log.exception("session_crashed", session=conn.id, peer=conn.peer)
            conn.finish("internal_error")

    def _take_remote_work(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
            dirty, self._remote_dirty = self._remote_dirty, []
            self._woken = False
        for call in calls:
            call()
        self._local_dirty.extend(dirty)

    def _flush_dirty(self) -> None:
        # Flushing can queue more (a closing client's LEAVE), so loop until quiet.
        while self._local_dirty:
            dirty, self._local_dirty = self._local_dirty, []
            for conn in dirty:
                try:
                    conn.flush()
                except Exception:
                    log.exception("session_crashed", session=conn.id, peer=conn.peer)
                    conn.finish("internal_error")

    def _select_timeout(self) -> float:
        if not self._timers:
            return _MAX_SELECT_WAIT
        return max(0.0, min(_MAX_SELECT_WAIT, self._timers[0][0] - time.monotonic()))

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            when, _, conn = heapq.heappop(self._timers)
            if when != conn.timer_at:
                continue  # superseded by an earlier deadline, or the connection is gone
            conn.timer_at = float("inf")
            try:
                conn.on_timer(now)
            except Exception:
                log.exception("session_crashed", session=conn.id, peer=conn.peer)
                conn.finish("internal_error")
        self._flush_dirty()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or closed at shutdown

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass  # drained

    def _close_all(self) -> None:
        self._take_remote_work()
        for conn in list(self.connections):
            conn.finish("shutdown")
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
