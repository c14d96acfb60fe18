"""The lease thread's work (`chatd-cluster-lease`): registering (a new epoch,
the node's fencing token), keeping the lease with heartbeats (`Lease`), what
each heartbeat brings back (the log's head, dead nodes reaped), and, after
the lease was lost, registering again as soon as Redis answers.

What does not live here: one lease's heartbeats and when it is lost
(lease.py), the register script's call and its refusals (registration.py),
what fencing does to the clients and the node's states (node.py, which this
calls back).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from chatd.cluster.applier import Lag
from chatd.cluster.engine import ClusterEngine
from chatd.cluster.errors import Unavailable
from chatd.cluster.lease import Beat, Lease
from chatd.cluster.link import Link
from chatd.cluster.registration import register
from chatd.cluster.scripts import Calls, Incarnation
from chatd.config_cluster import ClusterConfig

LEASE_EVERY: Final = 0.5  # seconds between heartbeats (and reaps): a dead node's LEAVE within lease_s + this


class Tenure:
    """This node's registrations and leases, one after the other (`run`)."""

    def __init__(
        self,
        link: Link,
        calls: Calls,
        config: ClusterConfig,
        path: Path,
        permanent: tuple[str, ...],
        engine: ClusterEngine,
        lag: Lag,
        stopping: threading.Event,
        position: Callable[[], int],
    ) -> None:
        """`path`: the config file, for errors; `permanent`: the rooms that
        stand without members; `position`: the reader's, now."""
        self._link = link
        self._calls = calls
        self._config = config
        self._path = path
        self._permanent = permanent
        self._engine = engine
        self._lag = lag
        self._stopping = stopping
        self._position = position
        self.lease: Lease | None = None  # the one being kept
        self.head = 0  # the last id handed out, as of the last heartbeat
        self.reaped_nodes = 0  # dead nodes this node reaped
        self.reaped_nicks = 0
        self._failures = 0  # heartbeats that failed, over every lease but the current one

    def register(self, previous: int | None, at_start: bool) -> tuple[Incarnation, float]:
        return register(
            self._link, self._calls, self._config, self._path, self._permanent, previous, at_start, self._stopping
        )

    def run(
        self,
        me: Incarnation,
        registered_at: float,
        on_fenced: Callable[[str], None],
        on_registered: Callable[[Incarnation], None],
        reseeding: Callable[[], bool],
    ) -> None:
        """Heartbeats; after fencing (`on_fenced`), register again and say so
        (`on_registered`), unless stopping or the node needs reseeding."""
        while not self._stopping.is_set():
            lease = Lease(
                self._link,
                self._calls,
                me,
                self._config.lease_s,
                registered_at,
                on_fenced=on_fenced,
                on_beat=self._beat,
                every=LEASE_EVERY,
            )
            self.lease = lease
            if self._stopping.is_set():
                return
            lease.run()
            self._failures += lease.failures
            if self._stopping.is_set() or reseeding():
                return
            try:
                me, registered_at = self.register(me.epoch, at_start=False)
            except Unavailable:
                return  # stopping
            on_registered(me)

    def stop_lease(self) -> None:
        """The lease being kept ends (the thread then registers again, or returns)."""
        if self.lease is not None:
            self.lease.stop()

    def failures(self) -> int:
        """Heartbeats that failed, over every lease so far."""
        return self._failures + (self.lease.failures if self.lease is not None else 0)

    def _beat(self, beat: Beat) -> None:
        self.head = beat.head
        if self.lease is not None:
            self._engine.settle_after(beat.head, self.lease.last_ok)
        self._lag.seen(beat.head, self._position())
        self.reaped_nodes += beat.reaped.nodes
        self.reaped_nicks += beat.reaped.nicks
