"""chatd/transport/timers.py: one live deadline per target, in order, cancelled
handles that let go of their target, and compaction that stays O(1) per arm."""

from __future__ import annotations

import gc
import math
import weakref

import pytest

from chatd.transport.timers import SLACK, Timer, Timers, WriteInterval


class Target:
    def __init__(self, name: str = "") -> None:
        self.name = name
        self.timer_at = math.inf
        self.timer: Timer | None = None


def due(timers: Timers[Target], now: float) -> list[Target]:
    out = []
    while (target := timers.pop_due(now)) is not None:
        out.append(target)
    return out


def test_arming_earlier_cancels_the_later_deadline() -> None:
    timers: Timers[Target] = Timers()
    target = Target()
    timers.arm(target, 10.0)
    timers.arm(target, 5.0)
    assert target.timer_at == 5.0 and len(timers) == 2  # the later entry is cancelled, not removed
    assert due(timers, 4.9) == []
    assert due(timers, 5.0) == [target]
    assert due(timers, 100.0) == []  # the cancelled 10.0 does not fire
    assert target.timer_at == math.inf and target.timer is None


def test_arming_later_than_the_live_deadline_changes_nothing() -> None:
    timers: Timers[Target] = Timers()
    target = Target()
    timers.arm(target, 5.0)
    timers.arm(target, 10.0)
    assert len(timers) == 1 and target.timer_at == 5.0
    assert due(timers, 100.0) == [target]


def test_targets_are_due_in_the_order_of_their_deadlines_ties_in_the_order_armed() -> None:
    timers: Timers[Target] = Timers()
    targets = {name: Target(name) for name in "abcde"}
    for name, when in [("c", 3.0), ("a", 1.0), ("d", 2.0), ("b", 1.0), ("e", 9.0)]:
        timers.arm(targets[name], when)
    assert timers.next_at() == 1.0
    assert [t.name for t in due(timers, 3.0)] == ["a", "b", "d", "c"]
    assert timers.next_at() == 9.0


def test_a_due_target_may_arm_again() -> None:
    timers: Timers[Target] = Timers()
    target = Target()
    timers.arm(target, 1.0)
    (fired,) = due(timers, 1.0)
    timers.arm(fired, 2.0)
    assert timers.next_at() == 2.0 and due(timers, 2.0) == [target]


def test_next_at_skips_cancelled_entries() -> None:
    timers: Timers[Target] = Timers()
    early, late = Target(), Target()
    timers.arm(early, 1.0)
    timers.arm(late, 5.0)
    timers.cancel(early)
    assert timers.next_at() == 5.0
    timers.cancel(late)
    assert timers.next_at() is None


def test_a_cancelled_handle_lets_go_of_its_target() -> None:
    timers: Timers[Target] = Timers()
    target = Target()
    timers.arm(target, 60.0)  # a registration deadline a minute away
    gone = weakref.ref(target)
    timers.cancel(target)  # the connection closes
    del target
    gc.collect()
    assert gone() is None
    assert len(timers) == 1  # the heap still holds the handle, not the target


def test_arming_earlier_lets_go_of_the_target_from_the_later_entry() -> None:
    timers: Timers[Target] = Timers()
    target = Target()
    timers.arm(target, 60.0)
    timers.arm(target, 1.0)
    gone = weakref.ref(target)
    assert due(timers, 1.0) == [target]
    del target
    gc.collect()
    assert gone() is None  # the cancelled 60.0 entry remains, without the target


def test_compaction_is_amortised_constant_per_arm() -> None:
    timers: Timers[Target] = Timers()
    live = [Target() for _ in range(1000)]
    for index, target in enumerate(live):
        timers.arm(target, 1000.0 + index)
    compacted: list[int] = []  # the heap's size at each compaction: the work it does
    compact = timers._compact

    def counting() -> None:
        compacted.append(len(timers))
        compact()

    timers._compact = counting  # type: ignore[method-assign]
    arms = 0
    for round_ in range(50):
        for index, target in enumerate(live):
            timers.arm(target, 999.0 - round_ - index / 1000)  # earlier each time: cancels the last
            arms += 1
            assert len(timers) <= 2 * len(live) + SLACK + 1
    assert compacted, "cancelled entries were never dropped"
    assert sum(compacted) <= 3 * arms
    assert len(due(timers, math.inf)) == len(live)


# -- WriteInterval: at most one flush per interval ----------------------------------------


def test_the_first_flush_goes_at_once_the_next_waits_an_interval() -> None:
    gate = WriteInterval(0.005)
    assert gate.open(100.0)  # nothing flushed for an interval: no wait
    assert gate.next_at == pytest.approx(100.005)
    assert not gate.open(100.001)
    assert not gate.open(100.0049)
    assert gate.open(100.005)
    assert gate.next_at == pytest.approx(100.01)


def test_after_a_quiet_spell_output_goes_at_once() -> None:
    gate = WriteInterval(0.005)
    assert gate.open(100.0)
    assert gate.open(100.5)  # long after the interval: no added latency
    assert not gate.open(100.5001)


def test_with_no_interval_every_flush_may_go() -> None:
    gate = WriteInterval(0.0)
    assert gate.open(5.0) and gate.open(5.0) and gate.open(5.0)


def test_a_changed_interval_applies_from_the_next_flush() -> None:
    gate = WriteInterval(0.1)
    assert gate.open(10.0)
    gate.interval = 0.001  # a reload: the flush already promised stays as it was
    assert not gate.open(10.05)
    assert gate.open(10.1)
    assert gate.next_at == pytest.approx(10.101)


def test_a_turn_that_worked_long_per_client_flushes_at_once() -> None:
    gate = WriteInterval(0.010)
    assert gate.open(100.0)
    # 50 clients, 1 ms of work: 20 µs each, a few lines each: they wait.
    assert not gate.open(100.001, worked=0.001, clients=50)
    # 50 clients, 9 ms of work (a flood's turn): many lines each, they go now.
    assert gate.open(100.009, worked=0.009, clients=50)
    assert gate.next_at == pytest.approx(100.019)


def test_no_deadline_at_all_lets_go_of_the_handle_at_once() -> None:
    # A client that registers has no deadline left; its registration deadline's
    # handle, later than nothing, used to stay in the heap until it passed.
    timers: Timers[Target] = Timers()
    target, other = Target(), Target()
    timers.arm(target, 60.0)
    timers.arm(other, 90.0)
    timers.arm(target, math.inf)
    assert target.timer is None and target.timer_at == math.inf
    assert timers.next_at() == 90.0  # the cancelled handle at the top went with it
    assert len(timers) == 1
    assert due(timers, 100.0) == [other]


def test_cancelled_entries_go_even_when_nothing_is_armed_any_more() -> None:
    # Thousands of clients register (their registration deadline cancelled)
    # and arm nothing more; one live deadline ahead of their entries kept
    # them all in the heap, about 170 bytes each, for register_timeout.
    timers: Timers[Target] = Timers()
    first = Target("first")
    timers.arm(first, 50.0)
    clients = [Target() for _ in range(4 * SLACK)]
    for index, target in enumerate(clients):
        timers.arm(target, 100.0 + index)
    for target in clients:
        timers.arm(target, math.inf)
    assert timers.next_at() == 50.0
    assert len(timers) <= 2 + SLACK
    assert due(timers, math.inf) == [first]
