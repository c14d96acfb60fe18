"""chatd/transport/flushing.py on fake clocks: what is marked is flushed in
order under the guard it was given, until nothing more is marked; with a
write interval, output that comes sooner than an interval after the last
flush waits, unless the turn worked long per client. (test_worker.py has the
same through a running worker.)"""

from __future__ import annotations

from collections.abc import Callable

from chatd.transport.flushing import Flusher


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Conn:
    def __init__(self, name: str, flushed: list[str]) -> None:
        self.name = name
        self.flushed = flushed
        self.then: Callable[[], None] | None = None

    def flush(self) -> None:
        self.flushed.append(self.name)
        if self.then is not None:
            then, self.then = self.then, None
            then()


def test_everything_marked_is_flushed_under_the_guard_until_quiet() -> None:
    flushed: list[str] = []
    guarded: list[str] = []

    def guard(conn: Conn, call: Callable[[], None]) -> None:
        guarded.append(conn.name)
        call()

    clock = Clock()
    flusher: Flusher[Conn] = Flusher(guard, 0.0, clock, clock)
    alice, bob = Conn("alice", flushed), Conn("bob", flushed)
    alice.then = lambda: flusher.dirty.append(bob)  # a closing client's LEAVE queues more
    flusher.dirty += [alice, bob]
    assert flusher.due_now()
    flusher.flush()
    assert flushed == guarded == ["alice", "bob", "bob"]
    assert not flusher.dirty and not flusher.due_now()


def test_with_an_interval_output_waits_for_it_unless_the_turn_worked_long() -> None:
    flushed: list[str] = []
    clock = Clock()
    flusher: Flusher[Conn] = Flusher(lambda conn, call: call(), 0.005, clock, clock)
    alice = Conn("alice", flushed)
    flusher.turn_began()
    flusher.dirty.append(alice)
    assert not flusher.due_now()  # it depends on the clock
    flusher.flush()
    assert flushed == ["alice"]  # nothing flushed for long: at once

    clock.now += 0.001
    flusher.turn_began()
    flusher.dirty.append(alice)
    flusher.flush()
    assert flushed == ["alice"] and flusher.dirty == [alice]  # waits for the interval
    assert flusher.gate.next_at == 1000.005

    flusher.turn_began()
    clock.now += 0.001  # a turn that worked 1 ms for its one client: a flood
    flusher.flush()
    assert flushed == ["alice", "alice"] and not flusher.dirty
