"""The reader thread's work (`chatd-cluster-reader`): the log read in batches
and applied, entries up to the start-up state's id filling the history only
(`remember`) and the rest changing the replica (`apply`); the engine told how
far the log is settled; a log that Redis rewound answered by raising ids
past this node's position. And `Lag`: how long the reader has been behind a
head of the log a heartbeat saw, for /healthz.

What does not live here: reading from Redis (reader.py), what an entry does
to the chat (core/replica.py), the node's states and when it serves or needs
reseeding (node.py, which this calls back).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from chatd.cluster.engine import ClusterEngine
from chatd.cluster.entry import Entry, EntryError
from chatd.cluster.errors import ClusterError
from chatd.cluster.link import Link
from chatd.cluster.reader import LogReader, LogRewound, LogTrimmed
from chatd.cluster.scripts import Calls, Incarnation
from chatd.core.network import NetworkBus

log = structlog.get_logger(__name__)


class Lag:
    """Since when the reader has been behind a head of the log it has not reached."""

    def __init__(self) -> None:
        self._behind: tuple[int, float] | None = None  # (a head not reached yet, when it was seen)

    def seen(self, head: int, position: int) -> None:
        """A heartbeat saw `head` with the reader at `position`."""
        if position < head and self._behind is None:
            self._behind = (head, time.monotonic())

    def reached(self, position: int) -> None:
        behind = self._behind
        if behind is not None and position >= behind[0]:
            self._behind = None

    def seconds(self) -> float:
        behind = self._behind
        return 0.0 if behind is None else max(0.0, time.monotonic() - behind[1])


class Applier:
    """The log, read and applied on the reader thread (`run`)."""

    def __init__(
        self,
        reader: LogReader,
        link: Link,
        calls: Calls,
        bus: NetworkBus,
        engine: ClusterEngine,
        until: int,
        lag: Lag,
        stopping: threading.Event,
        me: Callable[[], Incarnation],
        on_caught_up: Callable[[], None],
        on_lost: Callable[[str], None],
    ) -> None:
        """`until`: the start-up state's id; `me`: the node's incarnation now;
        `on_caught_up`: the reader has reached `until`; `on_lost`: the log no
        longer reaches this node's position, or cannot be read (why)."""
        self._reader = reader
        self._link = link
        self._calls = calls
        self._bus = bus
        self._engine = engine
        self._until = until  # entries up to it fill the history only
        self._lag = lag
        self._stopping = stopping
        self._me = me
        self._on_caught_up = on_caught_up
        self._on_lost = on_lost
        self.applied = 0  # entries read and applied

    def run(self) -> None:
        reader = self._reader
        while not self._stopping.is_set():
            try:
                for batch in reader.batches():
                    self._apply(batch)
                return
            except LogRewound as exc:
                self._rewound(exc)
            except LogTrimmed as exc:
                self._on_lost(str(exc))
                return
            except (EntryError, ClusterError) as exc:
                log.error("cluster_reader_failed", position=reader.position, error=str(exc))
                self._on_lost(str(exc))
                return

    def _apply(self, batch: list[Entry]) -> None:
        until = self._until
        old = batch if batch[-1].id <= until else [entry for entry in batch if entry.id <= until]
        replica = self._bus.replica
        try:
            if old:
                replica.remember(old)
            if len(old) < len(batch):
                replica.apply(batch[len(old) :])
        except Exception:  # a bug here must not stop this node's reading: logged, and it goes on
            log.exception("cluster_apply_crashed", first=batch[0].id, last=batch[-1].id)
        self.applied += len(batch)
        position = batch[-1].id
        self._lag.reached(position)
        self._engine.settled(position)
        if position >= until:
            self._on_caught_up()

    def _rewound(self, exc: LogRewound) -> None:
        """Redis hands out ids at or below what this node has applied (it lost
        writes): ids go on above them, so none repeats."""
        log.error("cluster_log_rewound", position=exc.position, head=exc.head)
        try:
            self._link.run(self._calls.raise_ids(self._me(), exc.position + 1))
        except ClusterError as error:
            log.warning("cluster_raise_failed", error=str(error))
            self._stopping.wait(1.0)
