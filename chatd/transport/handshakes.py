"""Handshakes: the TLS handshake steps an I/O worker owes, run a slice per
turn after the turn's reads and writes, so that a burst of new clients
shares the worker with the clients already talking.

A handshake step is the dearest thing a worker does for one client: the
step that answers a ClientHello makes a key share and signs it, 0.3-0.8 ms
of CPU here, a hundred times a chat line. Run as they came, the 48 clients
of a login flood that connect at once made one turn of 30 ms, and a `/ping`
that arrived then waited for all of it (docs/architecture.md, "Latency
under a flood"). Queued here and run until `SLICE` of a turn has gone on
them, they delay a line by one slice at most, and the burst is served at
the same total cost, oldest first. The worker accepts no more clients
while `BACKLOG` steps are owed: a client that connects, sends its garbage
and goes costs a queued endpoint until its step, so a flood of them must
wait in the kernel's backlog instead (tests/integration/test_churn.py).

A connection waits here out of its worker's epoll: its socket, readable
again and again while its step waits, must not wake the worker each turn.
The step itself watches what the handshake needs next (`pump.handshake`).
A step whose dear part a handshake thread computes (chatd/jobthreads.py)
is owed until its answer is back: those count towards `BACKLOG` too.

What is not here: the handshake itself (pump.py, tlsstream.py), and the
turn that runs the slice (worker.py). Only the owning worker's thread uses
a `Handshakes`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Generic, Protocol, TypeVar

SLICE: Final = 0.0005  # seconds of a turn for handshake steps, after the first step
# Steps owed beyond which the worker accepts no more clients: they wait in the
# kernel's listen backlog, which costs chatd nothing, not here as endpoints.
BACKLOG: Final = 64


class Handshaking(Protocol):
    """A connection whose handshake goes on (chatd.transport.endpoint.Endpoint)."""

    def handshake_step(self) -> None: ...


C = TypeVar("C", bound=Handshaking)


class Handshakes(Generic[C]):
    __slots__ = ("_clock", "_waiting", "away")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock  # monotonic seconds
        self._waiting: dict[C, None] = {}  # in the order they came; each once
        self.away = 0  # steps at the handshake threads (chatd/jobthreads.py), owed all the same

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def full(self) -> bool:
        """As many steps are owed as the worker should hold: accept no more for now."""
        return len(self._waiting) + self.away >= BACKLOG

    def add(self, conn: C) -> None:
        """`conn` has a handshake step to take (again: still once)."""
        self._waiting[conn] = None

    def discard(self, conn: C) -> None:
        """`conn` has closed: its step is not owed any more."""
        self._waiting.pop(conn, None)

    def run(self, guard: Callable[[C, Callable[[], None]], None]) -> None:
        """Take the waiting steps, oldest first, through `guard` (the worker's),
        until `SLICE` has passed since the first began; a step owed during the
        run waits for the next."""
        waiting = self._waiting
        if not waiting:
            return
        until = self._clock() + SLICE
        for _ in range(len(waiting)):
            if not waiting:
                return
            conn = next(iter(waiting))
            del waiting[conn]
            guard(conn, conn.handshake_step)
            if self._clock() >= until:
                return
