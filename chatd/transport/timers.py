"""Timers: one worker's deadlines, a heap of cancellable handles.

Each target (a connection) has at most one live deadline, the earliest it
was armed for; its handle and that deadline live on the target itself
(`timer`, `timer_at`), so arming a later deadline costs a comparison and
arming an earlier one cancels the handle in the heap. The heap holds a
small `Timer` handle, never the target: cancelling the handle (arming
earlier, firing, or closing the connection) lets go of the target at once,
so a closed connection, its SSL object and its buffers are never kept alive
until an old deadline. Before issue 10 the heap held each connection until
then (10 s for a handshake, 60 s for registration), and 40 clients sending
garbage in a loop grew chatd to about a gigabyte.

Cancelled handles stay in the heap (deleting from the middle of a heap is
O(n)) until they outnumber the live ones by `slack`; then the heap is
rebuilt without them, which is O(1) per arm or cancel, amortised. Both
look: clients that register cancel their registration deadline and arm
nothing more.

What a deadline means is the target's (`on_timer`); when to look is the
worker's (worker.py). Only the owning worker's thread uses a `Timers`.

`WriteInterval` is the write interval's deadline (`server.write_interval_ms`):
a worker flushes its connections' output at most once per interval, so
that the lines that reach a client meanwhile leave in one TLS record and one
`send()`. One deadline per worker, never one per connection or per line.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Generic, Protocol, TypeVar, cast

SLACK = 256  # cancelled handles the heap may hold beyond one per live one


class Timed(Protocol):
    """What a target carries for the heap (chatd.transport.endpoint.Endpoint)."""

    timer_at: float  # its live deadline (monotonic); inf: none
    timer: Timer | None  # the handle in the heap for it


class Timer:
    """A heap entry's handle; `target` is None once cancelled."""

    __slots__ = ("target",)

    def __init__(self, target: Timed) -> None:
        self.target: Timed | None = target


T = TypeVar("T", bound=Timed)


class Timers(Generic[T]):
    """The deadlines of targets of one kind (a worker's connections)."""

    def __init__(self, slack: int = SLACK) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()  # ties in time leave in the order they were armed
        self._live = 0  # handles in the heap not cancelled
        self._slack = slack

    def __len__(self) -> int:
        """Entries in the heap, cancelled ones included."""
        return len(self._heap)

    def arm(self, target: T, when: float) -> None:
        """`target` is due at `when`, unless it already is earlier; at `inf` it
        has no deadline any more, and its handle goes at once."""
        if when >= target.timer_at:
            if when == math.inf:
                # NOTE: not left to fire: a client that registered would keep its
                # registration deadline's handle in the heap for register_timeout.
                self.cancel(target)
            return
        self.cancel(target)
        timer = target.timer = Timer(target)
        target.timer_at = when
        heapq.heappush(self._heap, (when, next(self._sequence), timer))
        self._live += 1
        if len(self._heap) > 2 * self._live + self._slack:
            self._compact()

    def cancel(self, target: T) -> None:
        """`target` has no deadline any more; the heap lets go of it now."""
        timer = target.timer
        if timer is not None:
            timer.target = None
            target.timer = None
            self._live -= 1
            if len(self._heap) > 2 * self._live + self._slack:
                # NOTE: here too, not only when arming: thousands of clients that
                # register arm nothing more, and each left its registration
                # deadline's entry (about 170 bytes) behind an earlier live one,
                # for register_timeout (docs/architecture.md, "Memory per connection").
                self._compact()
        target.timer_at = math.inf

    def next_at(self) -> float | None:
        """The earliest live deadline, or None."""
        heap = self._heap
        while heap and heap[0][2].target is None:
            heapq.heappop(heap)  # cancelled: nothing to wake up for
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> T | None:
        """A target whose deadline is `now` or earlier, its deadline cancelled
        (it arms again if it wants another); None when none is due. Targets
        leave in the order of their deadlines, ties in the order armed."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            target = heapq.heappop(heap)[2].target
            if target is not None:
                due = cast(T, target)  # only a T is ever armed here
                self.cancel(due)
                return due
        return None

    def _compact(self) -> None:
        # Cancelled entries are dead weight; dropping them costs the heap's size,
        # at least `slack` + the live count arms since the last time.
        self._heap = [entry for entry in self._heap if entry[2].target is not None]
        heapq.heapify(self._heap)


# A turn that worked this long per client it has output for flushes at once:
# its clients already get many lines each (some 80 at fan-out's ~0.6 µs per
# delivered line), which share their records without waiting; a flush costs
# about 4 µs (docs/architecture.md, "The write interval").
AMORTIZED = 50e-6


class WriteInterval:
    """When a worker may flush output: at most once per `interval` seconds,
    unless a flush now would carry many lines to each client anyway.

    Output that finds the last flush an interval ago or longer leaves at the
    end of its turn, as with no interval; output that comes sooner waits for
    the interval to end, and with it everything that reaches the worker's
    clients meanwhile, each client's in one write. So a line waits at most
    one interval, a quiet server adds no latency at all, and one with lines
    spread out in time writes to each client at most once per interval
    however many lines it gets. A turn that did `AMORTIZED` of work or more
    per client with output (a flood: a turn holds many lines for each) flushes
    at its end, as before: waiting would save little, and would keep the
    answers some clients wait for before sending more (a window of
    unacknowledged lines, a ping) and leave the worker idle meanwhile. Time is
    passed in; nothing here reads a clock.
    """

    __slots__ = ("interval", "next_at")

    def __init__(self, interval: float = 0.0) -> None:
        self.interval = interval  # seconds; 0: flush at the end of every turn
        self.next_at = -math.inf  # no flush before this (monotonic)

    def open(self, now: float, worked: float = 0.0, clients: int = 1) -> bool:
        """Whether the output of `clients` clients may be flushed at `now`,
        after a turn that worked `worked` seconds; if so, the next flush waits
        an interval."""
        if now < self.next_at and worked < clients * AMORTIZED:
            return False
        self.next_at = now + self.interval
        return True
