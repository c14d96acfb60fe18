"""chatd/transport/handshakes.py: the handshake steps a worker owes, oldest
first, each once, a slice of a turn at a time (at least one step)."""

from __future__ import annotations

from collections.abc import Callable

from chatd.transport.handshakes import SLICE, Handshakes
from tests.support.sessions import FakeClock as Clock


class Conn:
    def __init__(self, name: str, clock: Clock, cost: float, taken: list[str]) -> None:
        self.name, self.clock, self.cost, self.taken = name, clock, cost, taken

    def handshake_step(self) -> None:
        self.taken.append(self.name)
        self.clock.now += self.cost


def guard(conn: Conn, call: Callable[[], None]) -> None:
    call()


def test_steps_are_taken_oldest_first_until_the_slice_has_passed() -> None:
    clock, taken = Clock(), []
    queue: Handshakes[Conn] = Handshakes(clock)
    conns = [Conn(f"c{i}", clock, SLICE * 0.4, taken) for i in range(7)]
    for conn in conns:
        queue.add(conn)
    queue.run(guard)
    assert taken == ["c0", "c1", "c2"]  # the third ends past the slice
    assert queue
    queue.run(guard)
    queue.run(guard)
    assert taken == [f"c{i}" for i in range(7)]
    assert not queue


def test_a_step_dearer_than_the_slice_is_taken_alone() -> None:
    clock, taken = Clock(), []
    queue: Handshakes[Conn] = Handshakes(clock)
    for name in ("a", "b"):
        queue.add(Conn(name, clock, SLICE * 2, taken))
    queue.run(guard)
    assert taken == ["a"]


def test_a_step_owed_twice_is_taken_once_and_a_discarded_one_not_at_all() -> None:
    clock, taken = Clock(), []
    queue: Handshakes[Conn] = Handshakes(clock)
    a, b, c = (Conn(name, clock, 0.0, taken) for name in "abc")
    for conn in (a, b, a, c):
        queue.add(conn)
    queue.discard(b)
    queue.discard(b)
    queue.run(guard)
    assert taken == ["a", "c"]
    assert not queue


def test_a_step_that_owes_another_is_taken_on_a_later_run() -> None:
    clock, taken = Clock(), []
    queue: Handshakes[Conn] = Handshakes(clock)
    again = Conn("again", clock, 0.0, taken)
    again.handshake_step = lambda: (taken.append("again"), queue.add(again))  # type: ignore[method-assign]
    queue.add(again)
    queue.run(guard)  # would loop for ever if a step owed during the run were taken in it
    assert taken == ["again"]
