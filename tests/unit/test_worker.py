"""chatd/transport/worker.py with real socketpairs and a real thread, and
fake connections in place of endpoints (its `Connection` Protocol): work
handed over from another thread wakes it and runs under the connection's
guard, a crash in one connection's callback closes that one only, timers
fire in order, and a stopped worker refuses work."""

from __future__ import annotations

import math
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from structlog.testing import capture_logs

from chatd.jobthreads import JobThreads
from chatd.transport import handshakes as handshakes_module
from chatd.transport import worker as worker_module
from chatd.transport.timers import Timer
from chatd.transport.worker import Worker

WAIT = 10.0  # seconds any one event may take on a busy machine


class FakeConnection:
    """What the worker drives; every event it gets goes to `events` as (id, what)."""

    def __init__(self, worker: Worker, sock: socket.socket, conn_id: int, events: queue.Queue[tuple[int, str]]) -> None:
        self.worker = worker
        self.sock = sock
        self.id = conn_id
        self.peer = f"127.0.0.1:{conn_id}"
        self.fd = sock.fileno()
        self.interest = 0
        self.timer_at = math.inf
        self.timer: Timer | None = None
        self.events = events
        self.crash_on_read = False
        self.finished: str | None = None
        self.on_step: Callable[[], None] = lambda: None  # what its handshake step does besides

    def start(self) -> None:
        self.worker.set_interest(self, read=True, write=False)
        self.events.put((self.id, "started"))

    def on_readable(self) -> None:
        data = self.sock.recv(4096)
        if self.crash_on_read:
            raise RuntimeError("a bug in one connection's handling")
        self.events.put((self.id, f"read {data.decode()}"))

    def handshake_step(self) -> None:
        self.events.put((self.id, "handshake step"))
        self.on_step()

    def handshake_answered(self, error: ssl.SSLError | None) -> None:
        self.events.put((self.id, f"answered {error!r}"))

    def on_writable(self) -> None:
        pass

    def on_timer(self, now: float) -> None:
        self.events.put((self.id, "timer"))

    def flush(self) -> None:
        self.events.put((self.id, "flushed"))

    def begin_close(self, reason: str, text: str = "") -> None:
        self.finish(reason)

    def finish(self, reason: str, detail: str = "", quiet: bool = False) -> None:
        if self.finished is None:
            self.finished = reason
            self.worker.forget(self)
            self.sock.close()
            self.events.put((self.id, f"finished {reason}"))

    def limits_changed(self) -> None:
        pass


class FakeServer:
    """The worker's `Service`: makes FakeConnections; accepting is not tested here.
    Keeps the peers' ends of the socketpairs, closed at the end of the test."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[int, str]] = queue.Queue()
        self.peers: list[socket.socket] = []
        self.released: list[str] = []
        self.refuse_with: Exception | None = None

    def accept_from(self, acceptor: Worker, listener: int) -> bool:
        self.events.put((0, "asked to accept"))  # and leaves the client waiting: asked again
        return False

    def open_endpoint(
        self, worker: Worker, sock: socket.socket, peer: tuple[str, int], conn_id: int, reject: str | None, kind: str
    ) -> FakeConnection:
        if self.refuse_with is not None:
            raise self.refuse_with
        return FakeConnection(worker, sock, conn_id, self.events)

    def release(self, ip: str, reject: str | None) -> None:
        self.released.append(ip)


@pytest.fixture
def sleepy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that, unless woken, sleeps for an hour between turns: what
    ends a wait in these tests is the wake-up under test, not a tick."""
    monkeypatch.setattr(worker_module, "_MAX_SELECT_WAIT", 3600.0)
    monkeypatch.setattr(worker_module, "LAG_TICK", 3600.0)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    for peer in server.peers:
        peer.close()


@pytest.fixture
def worker(sleepy: None, server: FakeServer) -> Iterator[Worker]:
    worker = Worker(server, 0)  # type: ignore[arg-type]
    worker.start()
    yield worker
    worker.stop()
    assert worker.join(WAIT)


def connect(worker: Worker, server: FakeServer, conn_id: int) -> socket.socket:
    """A connection on `worker`, started; returns the peer's end of its socketpair."""
    ours, theirs = socket.socketpair()
    server.peers.append(theirs)
    ours.setblocking(False)
    assert worker.adopt(ours, ("127.0.0.1", conn_id), conn_id, None)
    assert server.events.get(timeout=WAIT) == (conn_id, "started")
    return theirs


def on_worker(worker: Worker, call: Callable[[], None]) -> None:
    """Run `call` on the worker's thread and wait until it has run."""
    done = threading.Event()

    def run() -> None:
        call()
        done.set()

    assert worker.call_soon(run)
    assert done.wait(WAIT)


def test_call_soon_from_another_thread_wakes_the_worker(worker: Worker) -> None:
    ran_on: list[str] = []
    done = threading.Event()

    def call() -> None:
        ran_on.append(threading.current_thread().name)
        done.set()

    assert worker.call_soon(call)  # the worker takes work only after its wait, an hour unless woken
    assert done.wait(WAIT), "call_soon did not wake the worker"
    assert ran_on == ["chatd-io-0"]


def test_call_soon_for_a_connection_runs_under_its_guard(worker: Worker, server: FakeServer) -> None:
    peer = connect(worker, server, 1)
    conn = next(iter(worker.connections))

    def bug() -> None:
        raise RuntimeError("a bug in a kick")

    with capture_logs() as logs:
        assert worker.call_soon(bug, conn)  # type: ignore[arg-type]
        assert server.events.get(timeout=WAIT) == (1, "finished internal_error")
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["session_crashed"]
    assert peer.recv(10) == b""  # closed: the worker goes on (the fixture stops it)
    on_worker(worker, lambda: None)


def test_a_callback_of_no_connection_that_fails_is_logged_and_the_worker_goes_on(worker: Worker) -> None:
    def bug() -> None:
        raise RuntimeError("a bug")

    with capture_logs() as logs:
        assert worker.call_soon(bug)
        on_worker(worker, lambda: None)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["callback_crashed"]


def test_a_crash_in_one_connections_callback_closes_that_one_only(worker: Worker, server: FakeServer) -> None:
    first, second = connect(worker, server, 1), connect(worker, server, 2)
    crashing = next(conn for conn in worker.connections if conn.id == 1)
    crashing.crash_on_read = True  # type: ignore[attr-defined]
    with capture_logs() as logs:
        first.sendall(b"boom")
        assert server.events.get(timeout=WAIT) == (1, "finished internal_error")
        second.sendall(b"hello")
        assert server.events.get(timeout=WAIT) == (2, "read hello")
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["session_crashed"]
    assert [conn.id for conn in worker.connections] == [2]


def test_output_marked_from_another_thread_is_flushed_on_the_worker(worker: Worker, server: FakeServer) -> None:
    connect(worker, server, 1)
    (conn,) = worker.connections
    worker.mark_dirty(conn)
    assert server.events.get(timeout=WAIT) == (1, "flushed")


def test_timers_fire_in_the_order_of_their_deadlines(worker: Worker, server: FakeServer) -> None:
    for conn_id in (1, 2, 3):
        connect(worker, server, conn_id)
    by_id = {conn.id: conn for conn in worker.connections}

    def arm() -> None:
        now = time.monotonic()
        worker.arm_timer(by_id[2], now + 0.02)
        worker.arm_timer(by_id[3], now + 0.03)
        worker.arm_timer(by_id[1], now + 0.01)
        worker.arm_timer(by_id[3], now + 0.5)  # later than its deadline: changes nothing

    on_worker(worker, arm)
    assert [server.events.get(timeout=WAIT) for _ in range(3)] == [(1, "timer"), (2, "timer"), (3, "timer")]
    assert all(conn.timer is None and conn.timer_at == math.inf for conn in by_id.values())


def test_a_connection_that_fails_to_open_is_logged_with_its_peer_written_as_everywhere(
    worker: Worker, server: FakeServer
) -> None:
    server.refuse_with = OSError(107, "Transport endpoint is not connected")
    ours, theirs = socket.socketpair()
    server.peers.append(theirs)
    with capture_logs() as logs:
        assert worker.adopt(ours, ("::1", 50000, 0, 0), 9, None)  # type: ignore[arg-type]  # as accept() gives it
        assert theirs.recv(10) == b""  # the worker closed its end
        on_worker(worker, lambda: None)
    (failed,) = [e for e in logs if e["event"] == "tls_handshake_failed"]
    assert failed["peer"] == "[::1]:50000"
    assert server.released == ["::1"] and not worker.connections


def test_a_stopped_worker_closes_its_connections_and_refuses_work(sleepy: None, server: FakeServer) -> None:
    worker = Worker(server, 0)  # type: ignore[arg-type]
    worker.start()
    peer = connect(worker, server, 1)
    worker.stop()
    assert worker.join(WAIT)
    assert server.events.get(timeout=WAIT) == (1, "finished shutdown")
    assert peer.recv(10) == b""
    assert not worker.running
    assert not worker.call_soon(lambda: None)
    assert not worker.for_each_connection(lambda conn: None)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert not worker.adopt(ours, ("127.0.0.1", 2), 2, None)  # still the caller's to close
        worker.mark_dirty(FakeConnection(worker, theirs, 3, server.events))  # a late deliver: harmless


# -- the write interval, on a fake clock ---------------------------------------------------


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def corked(sleepy: None, server: FakeServer, clock: FakeClock) -> Iterator[Worker]:
    """A worker with a 5 ms write interval on the fake clock."""
    worker = Worker(server, 0, write_interval=0.005, clock=clock, work_clock=clock)  # type: ignore[arg-type]
    worker.start()
    yield worker
    worker.stop()
    assert worker.join(WAIT)


def settle(worker: Worker) -> None:
    """Let the worker finish the turn in progress and one more, whole: what
    the turn before decided (a flush or not) has happened."""
    on_worker(worker, lambda: None)
    on_worker(worker, lambda: None)


def flushes(server: FakeServer) -> list[int]:
    out = []
    while not server.events.empty():
        conn_id, what = server.events.get_nowait()
        if what == "flushed":
            out.append(conn_id)
    return out


def test_output_goes_at_once_then_at_most_once_per_interval(
    corked: Worker, server: FakeServer, clock: FakeClock
) -> None:
    for conn_id in (1, 2):
        connect(corked, server, conn_id)
    by_id = {conn.id: conn for conn in corked.connections}
    on_worker(corked, lambda: corked.mark_dirty(by_id[1]))  # at 1000.000: nothing flushed for long
    settle(corked)
    assert flushes(server) == [1]  # at the end of its turn, as with no interval
    clock.now = 1000.001
    on_worker(corked, lambda: corked.mark_dirty(by_id[1]))
    clock.now = 1000.003
    on_worker(corked, lambda: corked.mark_dirty(by_id[2]))
    clock.now = 1000.0049
    settle(corked)
    assert flushes(server) == []  # both wait for the interval since the last flush
    clock.now = 1000.005
    corked.call_soon(lambda: None)  # a turn that sees the new time
    assert [server.events.get(timeout=WAIT) for _ in range(2)] == [(1, "flushed"), (2, "flushed")]
    settle(corked)
    assert flushes(server) == []  # once each


def test_held_output_wakes_the_worker_when_the_interval_ends(
    corked: Worker, server: FakeServer, clock: FakeClock
) -> None:
    """The worker sleeps an hour unless woken (`sleepy`): what flushes here is
    the wait that held output shortens to the interval's end."""
    connect(corked, server, 1)
    (conn,) = corked.connections
    on_worker(corked, lambda: corked.mark_dirty(conn))
    on_worker(corked, lambda: corked.mark_dirty(conn))
    settle(corked)
    assert flushes(server) == [1]
    clock.now += 0.005  # no wake-up follows: the worker's own timeout must end its wait
    assert server.events.get(timeout=WAIT) == (1, "flushed")


def test_output_marked_from_another_thread_waits_the_interval_too(
    corked: Worker, server: FakeServer, clock: FakeClock
) -> None:
    connect(corked, server, 1)
    (conn,) = corked.connections
    corked.mark_dirty(conn)  # from this thread: through the waker
    assert server.events.get(timeout=WAIT) == (1, "flushed")
    corked.mark_dirty(conn)
    settle(corked)
    assert flushes(server) == []
    clock.now += 0.005
    settle(corked)
    assert flushes(server) == [1]


def test_a_write_interval_of_zero_flushes_at_the_end_of_every_turn(
    sleepy: None, server: FakeServer, clock: FakeClock
) -> None:
    worker = Worker(server, 0, write_interval=0.0, clock=clock, work_clock=clock)  # type: ignore[arg-type]
    worker.start()
    try:
        connect(worker, server, 1)
        (conn,) = worker.connections
        for _ in range(3):
            on_worker(worker, lambda: worker.mark_dirty(conn))
            settle(worker)
            assert flushes(server) == [1]  # the fake clock never moves
    finally:
        worker.stop()
        assert worker.join(WAIT)


def test_a_reload_to_zero_flushes_what_waits_and_then_at_once(
    corked: Worker, server: FakeServer, clock: FakeClock
) -> None:
    connect(corked, server, 1)
    (conn,) = corked.connections
    on_worker(corked, lambda: corked.mark_dirty(conn))
    on_worker(corked, lambda: corked.mark_dirty(conn))
    settle(corked)
    assert flushes(server) == [1]  # the first; the second waits
    corked.set_write_interval(0.0)
    settle(corked)
    assert flushes(server) == [1]  # without the clock moving
    on_worker(corked, lambda: corked.mark_dirty(conn))
    settle(corked)
    assert flushes(server) == [1]


def test_a_turn_that_worked_long_per_client_flushes_without_waiting(
    corked: Worker, server: FakeServer, clock: FakeClock
) -> None:
    """A flood's turn: its clients already get many lines each; holding them
    would add latency (and keep a sender's acknowledgements) for little."""
    connect(corked, server, 1)
    (conn,) = corked.connections
    on_worker(corked, lambda: corked.mark_dirty(conn))
    settle(corked)
    assert flushes(server) == [1]  # the first, at once

    def long_turn() -> None:
        corked.mark_dirty(conn)
        clock.now += 0.0001  # 100 µs of work in this turn, for its one client

    on_worker(corked, long_turn)
    settle(corked)
    assert flushes(server) == [1]  # 0.1 ms after the last flush, not 5


def test_handshake_steps_wait_for_the_turns_reads_and_take_a_slice_of_each_turn(
    sleepy: None, server: FakeServer, clock: FakeClock
) -> None:
    """Each step here costs 1 ms of the fake clock, more than the slice: one
    step per turn, and a client that is talking is read between them, not
    after the whole burst."""
    worker = Worker(server, 0, clock=clock, work_clock=clock)  # type: ignore[arg-type]
    worker.start()
    try:
        talking = connect(worker, server, 1)
        for conn_id in range(2, 6):
            connect(worker, server, conn_id)
        by_id = {conn.id: conn for conn in worker.connections}

        def step_costs_a_millisecond() -> None:
            clock.now += 0.001

        for conn_id in range(2, 6):
            by_id[conn_id].on_step = step_costs_a_millisecond  # type: ignore[attr-defined]
        by_id[2].on_step = lambda: (step_costs_a_millisecond(), talking.sendall(b"ping"))  # type: ignore[attr-defined]

        def burst() -> None:
            for conn_id in (2, 3, 4, 5, 3):  # 3 again: its step is owed once
                worker.queue_handshake(by_id[conn_id])

        assert worker.call_soon(burst)
        events = [server.events.get(timeout=WAIT) for _ in range(5)]
        assert events == [
            (2, "handshake step"),
            (1, "read ping"),  # the ping came in during 2's step: read before 3's
            (3, "handshake step"),
            (4, "handshake step"),
            (5, "handshake step"),
        ]
        settle(worker)
        assert server.events.empty()
    finally:
        worker.stop()
        assert worker.join(WAIT)


def test_a_connection_closed_while_its_handshake_step_waits_is_not_stepped(worker: Worker, server: FakeServer) -> None:
    connect(worker, server, 1)
    (conn,) = worker.connections

    def queued_then_closed() -> None:
        worker.queue_handshake(conn)
        conn.finish("tls_handshake_failed")

    on_worker(worker, queued_then_closed)
    settle(worker)
    assert server.events.get_nowait() == (1, "finished tls_handshake_failed")
    assert server.events.empty()


def test_a_worker_that_owes_its_backlog_of_handshake_steps_accepts_no_more(
    worker: Worker, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handshakes_module, "BACKLOG", 1)
    connect(worker, server, 1)
    (conn,) = worker.connections
    owing = threading.Event()
    owing.set()

    def step_owes_another() -> None:
        if owing.is_set():
            worker.queue_handshake(conn)

    conn.on_step = step_owes_another  # type: ignore[attr-defined]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        waiting = socket.create_connection(listener.getsockname())
        try:
            assert worker.call_soon(lambda: worker.queue_handshake(conn))
            worker.watch_listener(listener)  # taken after the step is owed: the worker is full by then
            steps = [server.events.get(timeout=WAIT) for _ in range(5)]
            assert steps == [(1, "handshake step")] * 5  # turns go by; the listener is not served
            owing.clear()
            while server.events.get(timeout=WAIT) != (0, "asked to accept"):
                pass  # the step owed last is taken, then nothing is owed: accepting again
        finally:
            worker.unwatch_listener(threading.Event())
            settle(worker)
            waiting.close()


@pytest.fixture
def handing_over(sleepy: None, server: FakeServer) -> Iterator[Worker]:
    """A worker that hands the answer to a ClientHello to a handshake thread."""
    threads = JobThreads("chatd-handshake", 1)
    threads.start()
    worker = Worker(server, 0, handshake_threads=threads)  # type: ignore[arg-type]
    worker.start()
    yield worker
    worker.stop()
    assert worker.join(WAIT)
    threads.stop()


def hand_over_held(worker: Worker, conn_id: int, gate: threading.Event) -> None:
    """`conn_id`'s handshake step hands over an OpenSSL part that waits for `gate`."""
    (conn,) = [c for c in worker.connections if c.id == conn_id]

    def openssl_part() -> ssl.SSLError | None:
        assert gate.wait(WAIT)
        return None

    conn.on_step = lambda: worker.hand_over(conn, openssl_part)  # type: ignore[attr-defined]
    assert worker.call_soon(lambda: worker.queue_handshake(conn))


def test_a_client_is_served_while_a_handshake_step_is_at_the_handshake_thread(
    handing_over: Worker, server: FakeServer
) -> None:
    talking = connect(handing_over, server, 1)
    connect(handing_over, server, 2)
    gate = threading.Event()
    hand_over_held(handing_over, 2, gate)
    assert server.events.get(timeout=WAIT) == (2, "handshake step")
    talking.sendall(b"ping")
    assert server.events.get(timeout=WAIT) == (1, "read ping")  # the worker did not wait for the step
    gate.set()
    assert server.events.get(timeout=WAIT) == (2, "answered None")  # on the worker's thread, guarded


class CountingEpoll:
    """The worker's epoll, counting its waits."""

    def __init__(self, epoll: select.epoll) -> None:
        self._epoll = epoll
        self.polls = 0

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        self.polls += 1
        return self._epoll.poll(timeout)

    def __getattr__(self, name: str) -> object:
        return getattr(self._epoll, name)


def test_steps_at_the_handshake_thread_count_towards_the_backlog_and_leave_the_listener_unwatched(
    sleepy: None, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handshakes_module, "BACKLOG", 1)
    threads = JobThreads("chatd-handshake", 1)
    threads.start()
    worker = Worker(server, 0, handshake_threads=threads)  # type: ignore[arg-type]
    counting = CountingEpoll(worker._poller.epoll)
    worker._poller.epoll = counting  # type: ignore[assignment]
    worker.start()
    gate = threading.Event()
    try:
        connect(worker, server, 1)
        hand_over_held(worker, 1, gate)
        assert server.events.get(timeout=WAIT) == (1, "handshake step")
        with socket.create_server(("127.0.0.1", 0)) as listener:
            waiting = socket.create_connection(listener.getsockname())
            try:
                worker.watch_listener(listener)
                settle(worker)
                before = counting.polls
                settle(worker)  # two wake-ups: a few turns, not a loop over a readable listener
                assert counting.polls - before <= 6
                assert server.events.empty()  # owed one step: the listener is not served
                gate.set()
                assert server.events.get(timeout=WAIT) == (1, "answered None")
                assert server.events.get(timeout=WAIT) == (0, "asked to accept")  # watched again
            finally:
                worker.unwatch_listener(threading.Event())
                settle(worker)
                waiting.close()
    finally:
        gate.set()
        worker.stop()
        assert worker.join(WAIT)
        threads.stop()
