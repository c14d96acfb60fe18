"""chatd/transport/idle.py: each connection is visited once per round, a tenth
of them per tick, and a round in which any gave something back ends with the
freed memory handed to the system."""

from __future__ import annotations

import pytest

from chatd.transport import idle
from chatd.transport.idle import CLOSED_TRIM_SHARE, ROUND_SLICES, TRIM_AFTER, IdleSweep


class Conn:
    def __init__(self, releases: bool) -> None:
        self.releases = releases
        self.visits = 0

    def release_idle(self) -> bool:
        self.visits += 1
        return self.releases


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(idle, "trim_heap", lambda: calls.append(1) or True)
    return calls


def test_every_connection_is_visited_once_per_round_a_tenth_at_a_time(trims: list[int]) -> None:
    sweep = IdleSweep()
    by_fd = {fd: Conn(False) for fd in range(100, 125)}
    slices = [sweep.next_slice(by_fd) for _ in range(ROUND_SLICES - 1)]
    assert [len(s) for s in slices] == [3] * 8 + [1]  # ceil(25 / 10) per tick
    assert sorted(fd for s in slices for fd in s) == sorted(by_fd)
    assert len(sweep.next_slice(by_fd)) == 3  # the next round


def test_a_round_is_the_connections_at_its_start(trims: list[int]) -> None:
    sweep = IdleSweep()
    assert sweep.next_slice({1: Conn(False)}) == [1]
    assert sweep.next_slice({2: Conn(False), 3: Conn(False)}) == [3]  # a new round: 2 and 3, one per tick
    # 2 closed meanwhile: its descriptor still comes, and the worker finds no connection for it.
    assert sweep.next_slice({3: Conn(False)}) == [2]
    assert sweep.next_slice({3: Conn(False)}) == [3]


def _round(sweep: IdleSweep, by_fd: dict[int, Conn]) -> None:
    for _ in range(ROUND_SLICES):
        for fd in sweep.next_slice(by_fd):
            sweep.visit(by_fd[fd])


def test_a_round_that_released_much_ends_with_a_trim(trims: list[int]) -> None:
    sweep = IdleSweep()
    by_fd = {fd: Conn(fd < TRIM_AFTER) for fd in range(2 * TRIM_AFTER)}  # half of them release
    for fd in sweep.next_slice(by_fd):
        sweep.visit(by_fd[fd])
    assert trims == []  # not in the middle of a round
    for _ in range(ROUND_SLICES - 1):
        for fd in sweep.next_slice(by_fd):
            sweep.visit(by_fd[fd])
    assert all(conn.visits == 1 for conn in by_fd.values())
    sweep.next_slice({})  # the next round starts: the last one released TRIM_AFTER
    assert trims == [1]


def test_a_round_that_released_little_costs_no_trim(trims: list[int]) -> None:
    sweep = IdleSweep()
    by_fd = {fd: Conn(fd < TRIM_AFTER - 1) for fd in range(2 * TRIM_AFTER)}
    _round(sweep, by_fd)
    sweep.next_slice({})
    assert trims == []  # a few freed buffers are used again; the heap is not walked for them
    _round(sweep, {})
    sweep.next_slice({})
    assert trims == []


def test_no_connections_no_visits(trims: list[int]) -> None:
    sweep = IdleSweep()
    assert [sweep.next_slice({}) for _ in range(3)] == [[], [], []]
    assert trims == []


def test_many_connections_closed_call_for_a_trim_at_the_next_tick(trims: list[int]) -> None:
    sweep = IdleSweep()
    by_fd = {fd: Conn(False) for fd in range(10)}
    sweep.closed = TRIM_AFTER - 1
    sweep.next_slice(by_fd)
    assert trims == []  # a few closed: their memory is used again
    sweep.closed += 1
    sweep.next_slice(by_fd)  # mid-round: a burst of closes does not wait for its end
    assert trims == [1] and sweep.closed == 0


def test_on_a_big_server_closes_call_for_a_trim_only_beyond_a_share_of_those_open(trims: list[int]) -> None:
    sweep = IdleSweep()
    by_fd = {fd: Conn(False) for fd in range(20 * TRIM_AFTER)}
    sweep.closed = int(CLOSED_TRIM_SHARE * len(by_fd)) - 1
    sweep.next_slice(by_fd)
    assert trims == []
    sweep.closed += 1
    sweep.next_slice(by_fd)
    assert trims == [1]
