"""Flusher: which of one I/O worker's connections have output waiting, and
when the worker flushes them (docs/architecture.md, "The write interval").

A connection's send queue schedules it once per turn at most
(`Worker.mark_dirty`, through its `schedule`); the worker appends it to
`dirty` on its own thread, or takes it from its inbox (inbox.py). Without
a write interval, everything marked in a turn is flushed at the end of that
turn, each connection's output in one write. With one
(`server.write_interval_ms`), timers.py's `WriteInterval` decides: output
that finds the last flush an interval ago leaves at once, later output
waits for the interval to end (the worker's wait is shortened to it), and
a turn that worked long per client flushes at once anyway. `turn_began`
notes this thread's CPU time, which is how a turn's work is measured.

# NOTE: `dirty` is on the fan-out path (every recipient, once per turn):
# the worker appends to it directly, without a call, and each connection's
# `flush` runs straight under the worker's guard.

What is not here: what a flush writes (the endpoint's, endpoint.py and
sendqueue.py), and the guard that turns a bug into one client's
`session_crashed` (the worker's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from chatd.transport.timers import WriteInterval


class Flushable(Protocol):
    def flush(self) -> None:
        """Move queued output to the socket, as far as it takes it."""


C = TypeVar("C", bound=Flushable)


class Flusher(Generic[C]):
    __slots__ = ("_clock", "_guard", "_turn_work", "_work_clock", "dirty", "gate")

    def __init__(
        self,
        guard: Callable[[C, Callable[[], None]], None],
        interval: float,
        clock: Callable[[], float],
        work_clock: Callable[[], float],
    ) -> None:
        """`guard(conn, call)`: run `call` for `conn` as the worker runs all its work."""
        self._guard = guard
        self._clock = clock  # monotonic seconds
        self._work_clock = work_clock  # the worker thread's CPU seconds
        self.dirty: list[C] = []  # connections with output, in the order they were marked
        self.gate = WriteInterval(interval)  # `dirty` waits for it
        self._turn_work = 0.0  # the thread's CPU time when this turn's work began (with a write interval)

    def turn_began(self) -> None:
        if self.gate.interval:
            self._turn_work = self._work_clock()

    def due_now(self) -> bool:
        """Whether output waits that the end of this turn will flush whatever
        the clock says (there is no write interval)."""
        return bool(self.dirty) and not self.gate.interval

    def flush(self) -> None:
        """Flush what is marked, if the write interval lets it go now."""
        gate = self.gate
        if self.dirty and gate.interval:
            worked = self._work_clock() - self._turn_work
            if not gate.open(self._clock(), worked, len(self.dirty)):
                return  # flushed once the interval since the last flush has passed
        guard = self._guard
        # Flushing can queue more (a closing client's LEAVE), so loop until quiet.
        while self.dirty:
            dirty, self.dirty = self.dirty, []
            for conn in dirty:
                guard(conn, conn.flush)
