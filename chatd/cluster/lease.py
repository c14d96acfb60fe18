"""Lease: the node's hold on its name in Redis, renewed, lost, and the reaping
of other nodes whose leases ran out.

Every `lease_s / 3` the lease thread sends `heartbeat` and `reap` in one
write: the first renews this incarnation's lease (Redis expires it `lease_s`
after), the second frees the nicknames of every node whose lease is gone,
with a `leave` entry for each (idempotent: each node reaps, only one finds
anything). The node **fences itself** — `on_fenced` is called once and the
thread ends — when:

* a heartbeat is refused (`lease_lost`): the lease expired, or another
  process registered this node name; its nicknames may be someone else's;
* no heartbeat has succeeded for `lease_s - 2` seconds (`lease_s * 0.8` for
  leases under 10 s, so that a few tries fit) (`redis_unreachable`),
  counted from when the last good one was *sent*, so the node stops serving
  before Redis can have let its lease go. An attempt lasts at most the link's
  timeout, so the call can come that much later (`lease_link_timeout`).

When the heartbeat fails, it is tried again soon (backoff from 0.2 s),
not only at the next period. The policy is a value with the clock passed in
(`LeaseClock`); the thread only asks it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import structlog

from chatd.cluster.backoff import Backoff
from chatd.cluster.errors import ClusterError, Fenced, Interrupted, Unavailable
from chatd.cluster.link import Link
from chatd.cluster.scripts import Calls, Incarnation, Reaped

log = structlog.get_logger(__name__)

MARGIN_S: Final = 2.0  # stop serving this long before Redis may let the lease go (a fifth of shorter leases)


def lease_link_timeout(lease_s: float) -> float:
    """The read and connect timeout for the lease thread's own link."""
    return min(1.0, lease_s / 6)


@dataclass
class LeaseClock:
    """When to beat and when to give up, from the times of good heartbeats."""

    lease_s: float
    last_ok: float  # monotonic time the last good heartbeat (or the registration) was sent
    every: float | None = None  # beat this often instead of every lease_s / 3

    @property
    def period(self) -> float:
        return self.every if self.every is not None else self.lease_s / 3

    @property
    def deadline(self) -> float:
        """Without a good heartbeat sent before this time, the node fences itself."""
        return self.last_ok + self.lease_s - min(MARGIN_S, self.lease_s / 5)

    def beat_ok(self, sent_at: float) -> None:
        self.last_ok = max(self.last_ok, sent_at)

    def next_beat(self) -> float:
        return self.last_ok + self.period

    def expired(self, now: float) -> bool:
        return now >= self.deadline


@dataclass(frozen=True)
class Beat:
    head: int  # the last id Redis handed out (the reader's lag is head - position)
    reaped: Reaped  # by this beat's reap


class Lease:
    def __init__(
        self,
        link: Link,
        calls: Calls,
        me: Incarnation,
        lease_s: float,
        registered_at: float,
        *,
        on_fenced: Callable[[str], None],
        on_beat: Callable[[Beat], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        every: float | None = None,
    ) -> None:
        """`registered_at`: the clock's time when `register` was sent; the
        lease runs from then. `on_fenced(reason)`: `lease_lost` or
        `redis_unreachable`, once, on the lease thread. `every`: the period of
        heartbeat and reap, if not `lease_s / 3` (a node reaps more often, so
        that a dead node's clients are announced soon after its lease ends)."""
        self.me = me
        self._link = link
        self._calls = calls
        self._lease_ms = round(lease_s * 1000)
        self._policy = LeaseClock(lease_s, registered_at, min(every, lease_s / 3) if every else None)
        self._on_fenced = on_fenced
        self._on_beat = on_beat
        self._clock = clock
        self._retry = Backoff(0.2, 1.0)
        self._stopping = threading.Event()
        self.fenced: str | None = None  # the reason, once fenced
        self.failures = 0  # heartbeats that failed (Redis unreachable or no reply), for the metrics
        self.last_ok = registered_at  # the clock's time of the last good heartbeat (sent)

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        """The lease thread's body, until `stop()` or fencing."""
        wake = self._policy.next_beat()
        while not self._stopping.wait(max(0.0, min(wake, self._policy.deadline) - self._clock())):
            if self._policy.expired(self._clock()):
                self._fence("redis_unreachable")
                return
            try:
                beat = self._beat()
            except Fenced:
                self._fence("lease_lost")
                return
            except (Unavailable, Interrupted) as exc:
                self.failures += 1
                log.warning("cluster_heartbeat_failed", node=str(self.me), error=str(exc))
                wake = self._clock() + self._retry.next()
                continue
            self._retry.reset()
            wake = self._policy.next_beat()
            if beat.reaped.nodes:
                log.info("cluster_nodes_reaped", nodes=beat.reaped.nodes, nicks=beat.reaped.nicks)
            if self._on_beat is not None:
                self._on_beat(beat)

    def _beat(self) -> Beat:
        sent_at = self._clock()
        heartbeat, reap = self._calls.heartbeat(self.me, self._lease_ms), self._calls.reap(self.me)
        replies = self._link.execute([heartbeat.command, reap.command])
        head = heartbeat.decode(replies[0])
        self._policy.beat_ok(sent_at)
        self.last_ok = self._policy.last_ok
        try:
            reaped = reap.decode(replies[1])
        except Fenced:  # renewed a moment ago: only a takeover in between can do this
            raise
        except ClusterError as exc:
            log.warning("cluster_reap_failed", error=str(exc))
            reaped = Reaped(0, 0)
        return Beat(head, reaped)

    def _fence(self, reason: str) -> None:
        self.fenced = reason
        log.error("cluster_fenced", node=str(self.me), reason=reason)
        self._on_fenced(reason)
