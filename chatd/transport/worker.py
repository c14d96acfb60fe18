"""Worker: one I/O thread running an epoll loop over many non-blocking TLS connections.

Every worker also watches the listening socket and accepts from it (the
kernel wakes one waiting worker per new connection), so a new client costs
no hand-over between threads; see docs/architecture.md.

A connection belongs to exactly one worker for its whole life, and only that
worker's thread calls into its SSL object. Other threads hand work over with
`call_soon()` or, for output, `mark_dirty()`; both go through its `Inbox`
(inbox.py), which wakes the loop at most once per turn. Output queued by
the worker's own thread (the common case: one client's line fanned out to
the room) needs no wake-up at all: it is flushed at the end of the turn,
all of it in one write per connection; with a write interval
(`server.write_interval_ms`), at most once per interval, so that lines that
arrive close together share a TLS record and a `send()` (flushing.py's
`Flusher`, asking timers.py's `WriteInterval`).

What is not here: the listeners, the pause when out of descriptors and the
hand-over of an accepted socket (accepting.py, `Acceptor`), admission (the
server's), the work other threads queue (inbox.py), what the epoll watches
(polling.py), when output is flushed (flushing.py), the deadlines' heap
(timers.py), what an idle connection gives back (idle.py), and everything
a connection does (endpoint.py).
"""

from __future__ import annotations

import functools
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol

import structlog

from chatd.jobthreads import JobThreads
from chatd.transport.accepting import Acceptor
from chatd.transport.accepting import Service as AcceptService
from chatd.transport.flushing import Flusher
from chatd.transport.handshakes import Handshakes
from chatd.transport.idle import IdleSweep
from chatd.transport.inbox import Inbox
from chatd.transport.iostats import IOStats
from chatd.transport.polling import READ, WRITE, Poller
from chatd.transport.timers import Timed, Timers
from chatd.transport.tlsstream import RECV_SIZE

# IOStats lives in iostats.py, READ and WRITE in polling.py; endpoints import them from here too.
__all__ = ["READ", "WRITE", "IOStats", "Worker"]

log = structlog.get_logger(__name__)

_MAX_SELECT_WAIT = 1.0
LAG_TICK: Final = 1.0  # seconds between the loop-lag measurements a worker makes of itself


class Connection(Timed, Protocol):
    """A connection as its worker sees it: a descriptor to watch, events and a
    deadline to run, output to flush (chatd.transport.endpoint.Endpoint)."""

    id: int
    peer: str
    fd: int
    interest: int  # epoll events currently registered

    def start(self) -> None: ...
    def handshake_step(self) -> None: ...
    def handshake_answered(self, error: ssl.SSLError | None) -> None: ...
    def on_readable(self) -> None: ...
    def on_writable(self) -> None: ...
    def on_timer(self, now: float) -> None: ...
    def flush(self) -> None: ...
    def begin_close(self, reason: str, text: str = "") -> None: ...
    def finish(self, reason: str, detail: str = "", quiet: bool = False) -> None: ...
    def limits_changed(self) -> None: ...
    def release_idle(self) -> bool: ...


# What a worker needs from the server (chatd.server.Server).
Service = AcceptService["Worker", Connection]


class Worker:
    def __init__(
        self,
        server: Service,
        index: int,
        write_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        work_clock: Callable[[], float] = time.thread_time,
        handshake_threads: JobThreads | None = None,
    ) -> None:
        """`write_interval`: flush output at most once per this many seconds
        (0: at the end of every turn). `clock`: monotonic seconds, for the
        worker's deadlines; `work_clock`: this thread's CPU seconds, for how
        much a turn worked (which a busy machine's preemptions do not inflate);
        a test's fake clocks. `handshake_threads`: where the step that answers
        a ClientHello is computed (None: on this worker)."""
        self._clock = clock
        self._handshake_threads = handshake_threads
        self.name = f"chatd-io-{index}"
        self.connections: set[Connection] = set()
        self._poller: Poller[Connection] = Poller()
        # Every recv() of this thread lands here first; one view for all its streams.
        self.scratch = memoryview(bytearray(RECV_SIZE))
        self._inbox: Inbox[Connection] = Inbox()  # what other threads hand over
        self._wake_fd = self._inbox.fileno()
        self._poller.epoll.register(self._wake_fd, READ)
        self._acceptor: Acceptor[Worker, Connection] = Acceptor(server, self, self.name, self._poller.epoll, clock)
        self._flusher: Flusher[Connection] = Flusher(self._guard, write_interval, clock, work_clock)
        self._readable: list[Connection] = []
        self._handshakes: Handshakes[Connection] = Handshakes(clock)
        self._timers: Timers[Connection] = Timers()
        self._idle = IdleSweep()  # a slice of the connections at every tick (idle.py)
        self._stopping = threading.Event()
        self.stats = IOStats()
        # Loop lag: the worker wakes itself every LAG_TICK and notes how late it
        # got round to it, which is how long its turns take when it is busy.
        self.lag = 0.0
        self._tick_at = clock() + LAG_TICK
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    # -- any thread ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        """False once the loop has ended, by stop() or by a crash: the server no
        longer hands it clients, and call_soon() refuses work it would never run."""
        return self._inbox.open

    def call_soon(self, call: Callable[[], None], conn: Connection | None = None) -> bool:
        """Run `call` on this worker's thread, guarded like `conn`'s events if
        given; False (and nothing will run) if the worker has stopped."""
        return self._inbox.call_soon(call, conn)

    def loop_lag(self, now: float) -> float:
        """Seconds by which this worker ran its last lag tick late, or by which
        the pending one is already overdue (a stuck or dead worker's grows)."""
        return max(self.lag, now - self._tick_at)

    def in_thread(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def mark_dirty(self, conn: Connection) -> None:
        """`conn` has output queued; flush it at the end of this worker's turn."""
        if self.in_thread():
            self._flusher.dirty.append(conn)
            return
        self._inbox.mark_dirty(conn)

    def set_write_interval(self, seconds: float) -> None:
        """Flush output at most every `seconds` from now on (a reload; any thread)."""

        def apply() -> None:
            self._flusher.gate.interval = seconds

        self.call_soon(apply)

    def stop(self) -> None:
        self._stopping.set()
        self._inbox.wake()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def adopt(
        self, sock: socket.socket, peer: tuple[str, int], conn_id: int, reject: str | None, kind: str = "chat"
    ) -> bool:
        """Take over a freshly accepted socket (from the listener of `kind`); TLS
        starts on this worker's thread. False if this worker has stopped: the
        socket is then still the caller's."""
        if self.in_thread():
            self._start_connection(sock, peer, conn_id, reject, kind)
            return True
        return self.call_soon(lambda: self._start_connection(sock, peer, conn_id, reject, kind))

    def watch_listener(self, listener: socket.socket) -> None:
        """Accept from `listener` on this worker's thread, from its next turn on."""
        fd = listener.fileno()
        self.call_soon(lambda: self._acceptor.watch(fd))

    def unwatch_listener(self, done: threading.Event) -> None:
        """Stop accepting; `done` is set once this worker will not touch the listener again."""

        def unwatch() -> None:
            self._acceptor.unwatch()
            done.set()

        if not self.call_soon(unwatch):
            done.set()  # stopped: its epoll, and the listener in it, are closed

    def for_each_connection(self, action: Callable[[Connection], None]) -> bool:
        """Run `action` on each of this worker's connections, on its thread,
        each under the connection's guard; False if the worker has stopped."""

        def run() -> None:
            for conn in list(self.connections):
                self._guard(conn, functools.partial(action, conn))

        return self.call_soon(run)

    # -- worker thread only ---------------------------------------------------------

    def set_interest(self, conn: Connection, read: bool, write: bool) -> None:
        self._poller.set_interest(conn, read, write)

    def mark_readable(self, conn: Connection) -> None:
        """`conn` may hold decrypted input the selector cannot see; read it next turn."""
        self._readable.append(conn)

    def queue_handshake(self, conn: Connection) -> None:
        """Take `conn`'s next handshake step in a turn's slice for handshakes (handshakes.py)."""
        self._poller.set_interest(conn, read=False, write=False)
        self._handshakes.add(conn)

    @property
    def hands_over(self) -> bool:
        """Whether handshake threads compute the step that answers a ClientHello."""
        return self._handshake_threads is not None

    def hand_over(self, conn: Connection, call: Callable[[], ssl.SSLError | None]) -> None:
        """Have a handshake thread run `call` (`conn`'s OpenSSL part of a step);
        `conn.handshake_answered` gets what it returned, on this thread. The
        step is owed meanwhile (`Handshakes.full`)."""
        assert self._handshake_threads is not None, "hand_over without handshake threads"
        self._handshakes.away += 1
        inbox = self._inbox

        def answered(error: ssl.SSLError | Exception | None) -> None:  # on the handshake thread
            if error is not None and not isinstance(error, ssl.SSLError):  # a bug, logged: the handshake fails
                error = ssl.SSLError(f"internal error: {error!r}")
            inbox.call_soon(functools.partial(self._answered, conn, error), conn)

        self._handshake_threads.submit(call, answered)

    def _answered(self, conn: Connection, error: ssl.SSLError | None) -> None:
        self._handshakes.away -= 1
        conn.handshake_answered(error)

    def arm_timer(self, conn: Connection, when: float) -> None:
        """Run `conn.on_timer` at `when` (monotonic), unless it is due earlier already."""
        self._timers.arm(conn, when)

    def forget(self, conn: Connection) -> None:
        """`conn` is closed: no event, deadline or turn of this worker refers to it any more."""
        self._poller.forget(conn)
        self._timers.cancel(conn)
        self._handshakes.discard(conn)
        self.connections.discard(conn)
        self._idle.closed += 1

    def _start_connection(
        self, sock: socket.socket, peer: tuple[str, int], conn_id: int, reject: str | None, kind: str
    ) -> None:
        conn = self._acceptor.open(sock, peer, conn_id, reject, kind)
        if conn is not None:
            self.connections.add(conn)
            self._guard(conn, conn.start)

    def _run(self) -> None:
        self._tick_at = self._clock() + LAG_TICK
        try:
            while not self._stopping.is_set():
                self._turn()
        except Exception:
            # A bug outside any one connection's handling. This worker's clients
            # are closed below and the server stops choosing it (and stops
            # feeding the systemd watchdog, so that the service is restarted).
            log.exception("worker_crashed", worker=self.name, connections=len(self.connections))
        finally:
            self._close_all()

    def _turn(self) -> None:
        # Output held for the write interval is not work for now: _select_timeout
        # wakes the worker when the interval ends.
        busy = self._readable or self._handshakes or self._flusher.due_now()
        timeout = 0.0 if busy else self._select_timeout()
        poller = self._poller
        by_fd = poller.by_fd
        ready = poller.epoll.poll(timeout)
        self._flusher.turn_began()
        for fd, events in ready:
            conn = by_fd.get(fd)
            if conn is not None:
                self._guarded(conn, events)
            elif fd in self._acceptor.fds:
                if self._handshakes.full():  # it waits in the listen backlog until steps are taken
                    self._acceptor.hold()
                else:
                    self._acceptor.accept(fd)
            elif fd == self._wake_fd:
                self._inbox.drain()  # the work it announced is taken just below
            # else: a connection closed earlier in this batch
        self._take_remote_work()
        if self._readable:
            readable, self._readable = self._readable, []
            for conn in readable:
                self._guarded(conn, READ)
        self._flusher.flush()
        self._handshakes.run(self._guard)
        self._run_timers()
        if self._acceptor.held and not self._handshakes.full():
            self._acceptor.unhold()

    def _guarded(self, conn: Connection, events: int) -> None:
        if events & ~WRITE:  # readable, or an error or hang-up that reading will report
            self._guard(conn, conn.on_readable)
        if events & ~READ:
            self._guard(conn, conn.on_writable)

    def _guard(self, conn: Connection, call: Callable[[], None]) -> None:
        """Run one piece of work for `conn`: a bug in it costs that client only.

        Every event, timer, flush and callback of a connection runs through here.
        """
        try:
            call()
        except Exception:
            log.exception("session_crashed", session=conn.id, peer=conn.peer)
            try:
                conn.finish("internal_error")
            except Exception:
                # The close itself failed: forget the connection regardless, so
                # the worker goes on and no deadline or descriptor refers to it.
                log.exception("session_cleanup_failed", session=conn.id, peer=conn.peer)
                self.forget(conn)

    def _take_remote_work(self) -> None:
        calls, dirty = self._inbox.take()
        for call, conn in calls:
            if conn is not None:
                self._guard(conn, call)
                continue
            try:
                call()
            except Exception:
                log.exception("callback_crashed", worker=self.name)
        self._flusher.dirty.extend(dirty)

    def _select_timeout(self) -> float:
        now = self._clock()
        wait = min(_MAX_SELECT_WAIT, self._tick_at - now)
        next_timer = self._timers.next_at()
        if next_timer is not None:
            wait = min(wait, next_timer - now)
        if self._flusher.dirty:  # held for the write interval
            wait = min(wait, self._flusher.gate.next_at - now)
        if self._acceptor.paused_until:
            wait = min(wait, self._acceptor.paused_until - now)
        return max(0.0, wait)

    def _run_timers(self) -> None:
        now = self._clock()
        if now >= self._tick_at:
            self.lag = now - self._tick_at
            self._tick_at = now + LAG_TICK
            by_fd = self._poller.by_fd
            for fd in self._idle.next_slice(by_fd):
                if (conn := by_fd.get(fd)) is not None:
                    self._guard(conn, functools.partial(self._idle.visit, conn))
        self._acceptor.resume(now)
        while (conn := self._timers.pop_due(now)) is not None:
            self._guard(conn, functools.partial(conn.on_timer, now))
        self._flusher.flush()

    def _close_all(self) -> None:
        self._inbox.refuse()
        self._take_remote_work()  # e.g. clients handed over meanwhile: closed just below
        reason = "shutdown" if self._stopping.is_set() else "internal_error"
        for conn in list(self.connections):
            self._guard(conn, functools.partial(conn.finish, reason))
        self._poller.close()
        self._inbox.close()
