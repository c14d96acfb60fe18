"""IdleSweep: what a worker's idle connections give back, and when.

At every tick of its loop (worker.py, `LAG_TICK`) a worker visits one slice
of its connections, so that each is visited once per round of
`ROUND_SLICES` ticks (10 s) however many there are, a tenth at a time
rather than all in one turn. A connection that neither read nor wrote
between two visits gives back its TLS memory BIOs' buffers
(`Endpoint.release_idle`, `TLSStream.release_buffers`): about 21 KiB for a
client that was once sent a 16 KiB record, for as long as it stays quiet.
After a round in which many did (`TRIM_AFTER`), the freed memory goes back
to the system (`trim_heap`): glibc keeps freed pages in the middle of its
heaps otherwise, and RSS would not move (docs/architecture.md, "Memory per
connection"); a few freed buffers are simply used again. So does a tick
after which many connections have closed since the last trim
(`closed`, `CLOSED_TRIM_SHARE`): a burst of short connections (garbage
churn, a reconnect storm) frees all their memory at once, and with the
handshake threads part of it lies in the middle of another thread's heap.

A round is a list of descriptors, not of connections, so that nothing here
keeps a closed connection (its SSL object, its buffers) alive; a descriptor
reused meanwhile by a new connection costs that one an early visit, which
finds it busy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

import structlog

from chatd.openssl import trim_heap

log = structlog.get_logger(__name__)

ROUND_SLICES: Final = 10  # ticks per round: an idle connection gives back its buffers within two rounds
# Connections that must have given back their buffers in a round (~22 KiB each)
# for the heap to be trimmed after it: a trim walks the whole heap, 13 ms of
# CPU at 500 MB with nothing to hand back, 80 ms after 20,000 buffers were
# freed, and the worker waits for it.
TRIM_AFTER: Final = 100
# Connections closed since the last trim that call for one at the next tick: at
# least TRIM_AFTER, and at least this share of those open, so that ordinary
# turnover on a big server does not walk its heap every second.
CLOSED_TRIM_SHARE: Final = 0.1


class Idle(Protocol):
    def release_idle(self) -> bool:
        """Give back what an idle connection need not hold; whether anything was."""


class IdleSweep:
    __slots__ = ("_released", "_round", "_slice", "closed")

    def __init__(self) -> None:
        self._round: list[int] = []  # descriptors not yet visited this round
        self._slice = 0  # how many to visit per tick in this round
        self._released = 0  # connections that gave something back this round
        self.closed = 0  # connections the worker closed since the last trim

    def next_slice(self, by_fd: Mapping[int, object]) -> list[int]:
        """The descriptors to visit at this tick; a round over, the next one
        starts with the connections of `by_fd` as they are now."""
        if self.closed >= max(TRIM_AFTER, CLOSED_TRIM_SHARE * len(by_fd)):
            self._trim()
        if not self._round:
            if self._released:
                log.debug("tls_buffers_released", connections=self._released)
                if self._released >= TRIM_AFTER:
                    self._trim()
                self._released = 0
            self._round = list(by_fd)
            self._slice = -(-len(self._round) // ROUND_SLICES)
        visit = self._round[-self._slice :] if self._slice else []
        del self._round[len(self._round) - len(visit) :]
        return visit

    def _trim(self) -> None:
        trim_heap()
        self.closed = 0

    def visit(self, conn: Idle) -> None:
        if conn.release_idle():
            self._released += 1
