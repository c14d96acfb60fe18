"""Registration: a node's new incarnation (its epoch and lease), asked for at
start and again after it fenced itself.

A name whose lease another process still holds is waited for: after a
`kill -9` the dead run's lease runs out within `lease_s`. At start that wait
is bounded (two leases): a name still held then belongs to a live process,
and the start is refused as a configuration error (`cluster.node`). After
fencing, the node keeps trying, with backoff, until Redis answers or the
node stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from chatd.cluster.backoff import Backoff
from chatd.cluster.errors import Interrupted, Refused, Unavailable
from chatd.cluster.link import Link
from chatd.cluster.scripts import Calls, Incarnation
from chatd.config_cluster import ClusterConfig
from chatd.errors import ConfigError

log = structlog.get_logger(__name__)


def register(
    link: Link,
    calls: Calls,
    cluster: ClusterConfig,
    path: Path,
    permanent: Sequence[str],
    previous: int | None,
    at_start: bool,
    stopping: threading.Event,
) -> tuple[Incarnation, float]:
    """A new incarnation of `cluster.node`, and the time.monotonic() when the
    call that made it was sent (its lease runs from then). `previous`: the
    epoch this process held before (after fencing), reaped at once.

    Raises:
        ConfigError: at start, the name is held by another live process.
        Unavailable, Interrupted: at start, Redis cannot be reached;
            `Unavailable` too when `stopping` is set meanwhile.
    """
    node, lease_s = cluster.node, cluster.lease_s
    deadline = time.monotonic() + 2 * lease_s + 1
    retry = Backoff(0.2, 2.0)
    told = False
    while True:
        sent = time.monotonic()
        try:
            epoch = link.run(calls.register(node, round(lease_s * 1000), previous, permanent))
            return Incarnation(node, epoch), sent
        except Refused as exc:
            if exc.code != "node_taken":
                raise
            if not told:
                log.warning("cluster_node_taken", node=node, detail=exc.detail, waiting_s=2 * lease_s)
                told = True
            if at_start and time.monotonic() > deadline:
                raise ConfigError(
                    f"{path}: cluster.node: another live chatd holds the node name {node!r} "
                    f"({exc.detail}); give each process its own node name (got {node!r})"
                ) from None
            stopping.wait(lease_s / 3)
        except (Unavailable, Interrupted):
            if at_start:
                raise
            stopping.wait(retry.next())
        if stopping.is_set():
            raise Unavailable("stopping")
