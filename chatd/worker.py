"""Worker: one I/O thread running an epoll loop over many non-blocking TLS connections.

Every worker also watches the listening socket and accepts from it (the
kernel wakes one waiting worker per new connection), so a new client costs
no hand-over between threads; see docs/architecture.md.

A connection belongs to exactly one worker for its whole life, and only that
worker's thread calls into its SSL object. Other threads hand work over with
`call_soon()` or, for output, `mark_dirty()`; both wake the loop through a
socketpair at most once per turn. Output queued by the worker's own thread
(the common case: one client's line fanned out to the room) needs no wake-up
at all: it is flushed at the end of the turn, all of it in one write per
connection.
"""

from __future__ import annotations

import heapq
import itertools
import select
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Callable, Final

import structlog

from chatd.connection import Connection
from chatd.tlsstream import RECV_SIZE, TLSStream

ACCEPT_PAUSE: Final = 0.1  # seconds without accepting after EMFILE and the like

if TYPE_CHECKING:
    from chatd.server import Server

log = structlog.get_logger(__name__)

_MAX_SELECT_WAIT = 1.0
READ: Final = select.EPOLLIN
WRITE: Final = select.EPOLLOUT
# Wake only one of the workers waiting on the listener per connection (Linux ≥ 4.5).
_EXCLUSIVE: Final = getattr(select, "EPOLLEXCLUSIVE", 0)


class Worker:
    def __init__(self, server: Server, index: int) -> None:
        self.server = server
        self.name = f"chatd-io-{index}"
        self.connections: set[Connection] = set()
        self._epoll = select.epoll()
        self._by_fd: dict[int, Connection] = {}  # what the epoll watches, by descriptor
        self._scratch = bytearray(RECV_SIZE)  # every recv() of this thread lands here first
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_fd = self._wake_r.fileno()
        self._epoll.register(self._wake_fd, READ)
        self._listener_fd = -1  # the server's listener while this worker accepts from it
        self._accept_paused_until = 0.0  # out of descriptors: accept again after this
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
        if threading.get_ident() == self._thread.ident:
            self._start_connection(sock, peer, conn_id, reject)
        else:
            self.call_soon(lambda: self._start_connection(sock, peer, conn_id, reject))

    def watch_listener(self, listener: socket.socket) -> None:
        """Accept from `listener` on this worker's thread, from its next turn on."""
        fd = listener.fileno()
        self.call_soon(lambda: self._watch(fd))

    def unwatch_listener(self, done: threading.Event) -> None:
        """Stop accepting; `done` is set once this worker will not touch the listener again."""

        def unwatch() -> None:
            self._unwatch()
            done.set()

        self.call_soon(unwatch)

    # -- worker thread only ---------------------------------------------------------

    def set_interest(self, conn: Connection, read: bool, write: bool) -> None:
        events = (READ if read else 0) | (WRITE if write else 0)
        if events == conn.interest:
            return
        if conn.interest == 0:
            self._epoll.register(conn.fd, events)
            self._by_fd[conn.fd] = conn
        elif events == 0:
            self._epoll.unregister(conn.fd)
            del self._by_fd[conn.fd]
        else:
            self._epoll.modify(conn.fd, events)
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
            self._by_fd.pop(conn.fd, None)
            try:
                self._epoll.unregister(conn.fd)
            except OSError:
                pass  # the socket was already closed underneath the epoll
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
        by_fd = self._by_fd
        for fd, events in self._epoll.poll(timeout):
            conn = by_fd.get(fd)
            if conn is not None:
                self._guarded(conn, events)
            elif fd == self._listener_fd:
                self._accept()
            elif fd == self._wake_fd:
                self._drain_wakeups()
            # else: a connection closed earlier in this batch
        self._take_remote_work()
        if self._readable:
            readable, self._readable = self._readable, []
            for conn in readable:
                self._guarded(conn, READ)
        self._flush_dirty()
        self._run_timers()

    def _guarded(self, conn: Connection, events: int) -> None:
        # A bug while serving one client must cost that client only.
        try:
            if events & ~WRITE:  # readable, or an error or hang-up that reading will report
                conn.on_readable()
            if events & ~READ:
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

    # -- accepting (worker thread only) ------------------------------------------

    def _watch(self, fd: int) -> None:
        self._listener_fd = fd
        self._listening(True)

    def _unwatch(self) -> None:
        if self._listener_fd >= 0 and not self._accept_paused_until:
            self._listening(False)
        self._listener_fd = -1
        self._accept_paused_until = 0.0

    def _listening(self, on: bool) -> bool:
        """Put the listener in this worker's epoll or take it out; False (and
        accepting over) if stop(0) closed it meanwhile, which took it out already."""
        try:
            if on:
                self._epoll.register(self._listener_fd, READ | _EXCLUSIVE)
            else:
                self._epoll.unregister(self._listener_fd)
        except OSError:
            self._listener_fd = -1
            return False
        return True

    def _accept(self) -> None:
        try:
            out_of_resources = self.server.accept_from(self)
        except Exception:
            # A bug here must not take this worker's connections with it.
            log.exception("accept_crashed", worker=self.name)
            return
        # Level-triggered: the waiting client would wake us again at once. Out
        # of descriptors, stop watching for a moment instead of spinning (or sleeping).
        if out_of_resources and self._listening(False):
            self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE

    def _resume_accepting(self, now: float) -> None:
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self._listening(True)

    def _select_timeout(self) -> float:
        wait = _MAX_SELECT_WAIT
        if self._timers:
            wait = min(wait, self._timers[0][0] - time.monotonic())
        if self._accept_paused_until:
            wait = min(wait, self._accept_paused_until - time.monotonic())
        return max(0.0, wait)

    def _run_timers(self) -> None:
        now = time.monotonic()
        self._resume_accepting(now)
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
        self._epoll.close()
        self._wake_r.close()
        self._wake_w.close()
