"""Node: this process as a node of a network of chatd processes on one Redis
(issue 24), what a `cluster:` section turns on.

Starting (`start`, before the chat port opens): Redis's persistence is
checked; the node registers (a new epoch: its fencing token, and its lease);
on a fresh Redis, ids are raised past those the history store handed out;
the network's state is taken at one id (`snapshot`) and loaded into the
replica; the log is read from the last id the history store holds, the
entries up to the state's id filling the history only. Once the reader has
caught up with the state's id, the node serves (`cluster_serving`).

Threads: `chatd-cluster-writer` (the `Writer`: every operation of every
session, batched), `chatd-cluster-reader` (the `LogReader` read by the
`Applier`, applier.py: every entry into the replica, core/replica.py) and
`chatd-cluster-lease` (the `Lease`s kept by the `Tenure`, tenure.py:
heartbeat and reaping of dead nodes every `LEASE_EVERY` seconds).

States (`state`): `starting`; `serving`; `fenced`, when the lease is lost
(Redis unreachable for `lease_s - 2` s, or a call refused as fenced): every
client is told `BYE shutdown`, new ones are refused, and the node registers
again with a new epoch as soon as Redis answers; `reseed`, when the log no
longer reaches back to this node's history (docs/operations.md, "Reseeding
a node"): it refuses clients until restarted with a copied history; and
`stopped`. `/healthz` is 200 only while serving and not lagging
(`LAG_MAX_S`).

What is not here: the chat (core/), the scripts (lua/, scripts.py), the
operations' side of them (engine.py), the reader thread's applying of the
log and the reader's lag (applier.py), the lease thread's registering and
heartbeats (tenure.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

import structlog

from chatd.cluster.applier import Applier, Lag
from chatd.cluster.engine import ClusterEngine
from chatd.cluster.errors import ClusterError, Interrupted, Unavailable
from chatd.cluster.keys import Keys
from chatd.cluster.lease import lease_link_timeout
from chatd.cluster.link import PARSER, Link
from chatd.cluster.persistence import check_persistence, redacted
from chatd.cluster.reader import LogReader
from chatd.cluster.scripts import Calls, Incarnation
from chatd.cluster.state import read_state
from chatd.cluster.tenure import Tenure
from chatd.cluster.writer import Writer
from chatd.config import Config
from chatd.config_cluster import ClusterConfig
from chatd.core.chat import Chat
from chatd.core.network import NetworkBus

log = structlog.get_logger(__name__)

LAG_MAX_S: Final = 5.0  # behind a head seen this long ago: /healthz says 503
START_TIMEOUT: Final = 60.0  # for catching up at start; a node still behind then refuses clients until it is
BLOCK_MS: Final = 1000  # the reader's XREAD BLOCK: how long stopping it may take
JOIN_TIMEOUT: Final = 5.0


class StartError(Exception):
    """The node cannot start for a reason outside the configuration (Redis unreachable)."""


class Node:
    def __init__(self, config: Config, chat: Chat) -> None:
        assert config.cluster is not None
        self.config: ClusterConfig = config.cluster
        self._path = config.path
        self._chat = chat
        cluster = self.config
        self.name = cluster.node
        self._calls = Calls(cluster.prefix, cluster.log_max)
        scripts = list(self._calls.scripts.values())
        self._keys = Keys(cluster.prefix)
        self._writer_link = Link(cluster.redis, name=f"chatd-{self.name}-writer", timeout=5.0, scripts=scripts)
        self._reader_link = Link(
            cluster.redis, name=f"chatd-{self.name}-reader", timeout=BLOCK_MS / 1000 + 5.0, scripts=scripts
        )
        self._lease_link = Link(
            cluster.redis, name=f"chatd-{self.name}-lease", timeout=lease_link_timeout(cluster.lease_s), scripts=scripts
        )
        self.writer = Writer(self._writer_link)
        self.engine = ClusterEngine(self.writer, self._calls, self._refused_as_fenced)
        self.bus = NetworkBus(chat, self.engine)
        self.me = Incarnation(self.name, 0)
        self.state = "starting"
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._caught_up = threading.Event()
        self._reader: LogReader | None = None
        self._applier: Applier | None = None
        self._threads: list[threading.Thread] = []
        self._lag = Lag()
        self._tenure = Tenure(
            self._lease_link,
            self._calls,
            cluster,
            config.path,
            config.rooms.permanent,
            self.engine,
            self._lag,
            self._stopping,
            lambda: self.position,
        )
        self.fenced = 0  # times this node fenced itself

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        """Register, load the network and catch up; returns when serving (or
        after START_TIMEOUT, or when the node needs reseeding: it then refuses
        clients, and says why).

        Raises:
            ConfigError: Redis without append-only persistence; the node name
                held by another live process.
            StartError: Redis cannot be reached.
        """
        where = redacted(self.config.redis)
        try:
            check_persistence(self._lease_link, self.config, self._path)
            self.me, registered_at = self._tenure.register(None, at_start=True)
            state = read_state(self._lease_link.run(self._calls.snapshot(self.me)))
            history = self._chat.history
            if state.head == 0 and self._chat.keeps_history and history.first_id > 1:
                # A fresh network from a server that was standalone: its ids go on.
                raised = self._lease_link.run(self._calls.raise_ids(self.me, history.first_id))
                log.info("cluster_ids_raised", to=raised.last)
        except (Unavailable, Interrupted) as exc:
            raise StartError(f"cannot reach Redis at {where} (cluster.redis): {exc}") from exc
        except ClusterError as exc:
            raise StartError(f"Redis at {where} (cluster.redis) answered unexpectedly: {exc}") from exc
        self.engine.me = self.me
        self.bus.origin = str(self.me)
        self.bus.replica.load(state)
        position = history.last_stored if self._chat.keeps_history else state.head
        self._reader = LogReader(self._reader_link, self._keys.log, self._keys.ids, position, block_ms=BLOCK_MS)
        self._applier = Applier(
            self._reader,
            self._reader_link,
            self._calls,
            self.bus,
            self.engine,
            state.head,
            self._lag,
            self._stopping,
            lambda: self.me,
            self._caught_up_at_start,
            self._reseed,
        )
        log.info(
            "cluster_registered",
            node=self.name,
            epoch=self.me.epoch,
            redis=where,
            parser=PARSER,
            nicks=len(state.nicks),
            rooms=len(state.rooms),
            head=state.head,
            position=position,
        )
        self._start_thread("chatd-cluster-writer", self.writer.run)
        self._start_thread("chatd-cluster-reader", self._applier.run)
        self._start_thread(
            "chatd-cluster-lease",
            lambda: self._tenure.run(
                self.me, registered_at, self._lease_lost, self._registered_again, lambda: self.state == "reseed"
            ),
        )
        if position >= state.head:
            self._serve()
        if not self._caught_up.wait(START_TIMEOUT):
            log.warning("cluster_catching_up", position=self._reader.position, head=state.head)

    def stop(self) -> None:
        """The sessions have left (their leaves queued): send what waits, give
        the lease back, stop the threads."""
        self._stopping.set()
        self._tenure.stop_lease()
        self.writer.stop()
        for thread in self._threads:
            if thread.name != "chatd-cluster-reader":
                thread.join(JOIN_TIMEOUT)
        if self.state == "serving":
            try:
                freed = self._lease_link.run(self._calls.retire(self.me))
                log.info("cluster_retired", node=self.name, epoch=self.me.epoch, nicks_freed=freed)
            except ClusterError as exc:  # its lease runs out by itself
                log.warning("cluster_retire_failed", node=self.name, error=str(exc))
        self.state = "stopped"
        if self._reader is not None:
            self._reader.stop()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)
        for link in (self._writer_link, self._reader_link, self._lease_link):
            link.close()

    @property
    def serving(self) -> bool:
        return self.state == "serving"

    def healthy(self) -> bool:
        """Serving, and the reader within LAG_MAX_S of the log's head."""
        return self.serving and self.lag_seconds() <= LAG_MAX_S

    def lag_seconds(self) -> float:
        return self._lag.seconds()

    @property
    def position(self) -> int:
        return self._reader.position if self._reader is not None else 0

    def _registered_again(self, me: Incarnation) -> None:
        """After fencing, a new epoch: this node serves again."""
        self.me = me
        self.engine.me = me
        self.bus.origin = str(me)
        log.info("cluster_registered", node=self.name, epoch=me.epoch, again=True)
        self._serve()

    # -- serving and fencing ------------------------------------------------------------

    def _serve(self) -> None:
        with self._lock:
            if self.state not in ("starting", "fenced") or self._stopping.is_set():
                return
            self.state = "serving"
        log.info("cluster_serving", node=self.name, epoch=self.me.epoch, position=self.position)
        self._caught_up.set()

    def _lease_lost(self, reason: str) -> None:
        self._fence(reason)

    def _refused_as_fenced(self, me: Incarnation) -> None:
        """A call of this incarnation was refused as fenced: its lease is gone."""
        if self._fence("lease_lost"):
            self._tenure.stop_lease()  # the lease thread registers again

    def _fence(self, reason: str) -> bool:
        with self._lock:
            if self.state != "serving":
                return False
            self.state = "fenced"
            self.fenced += 1
        log.error("cluster_node_fenced", node=self.name, epoch=self.me.epoch, reason=reason, clients=len(self.bus))
        self.bus.fence()
        return True

    def _caught_up_at_start(self) -> None:
        """The reader has reached the start-up state's id."""
        if self.state == "starting":
            self._serve()

    def _reseed(self, why: str) -> None:
        with self._lock:
            serving = self.state == "serving"
            self.state = "reseed"
        log.error(
            "cluster_reseed_needed",
            node=self.name,
            position=self.position,
            reason=why,
            hint="copy a peer's history database into history.path and restart (docs/operations.md)",
        )
        self._caught_up.set()
        if serving:
            self.bus.fence()
        self._tenure.stop_lease()

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except Exception:  # a thread's top: logged; the node stops serving
                log.exception("cluster_thread_crashed", thread=name)
                self._reseed(f"{name} crashed")

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- figures ------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """The metrics' figures (chatd_cluster_*: chatd/metrics.py, docs/operations.md)."""
        writer = self.writer
        tenure = self._tenure
        return {
            "serving": float(self.serving),
            "appends_total": writer.calls,
            "append_batches_total": writer.batches,
            "append_seconds_total": round(writer.seconds, 6),
            "writer_waiting": writer.waiting,
            "refusals_total": self.engine.refusals,
            "applied_entries_total": self._applier.applied if self._applier is not None else 0,
            "reader_position": self.position,
            "reader_lag_ids": max(0, tenure.head - self.position),
            "reader_lag_seconds": round(self.lag_seconds(), 3),
            "lease_failures_total": tenure.failures(),
            "fenced_total": self.fenced,
            "reaped_nodes_total": tenure.reaped_nodes,
            "reaped_nicks_total": tenure.reaped_nicks,
            "redis_up": float(writer.connected and (self._reader is None or self._reader.connected)),
        }

    def status(self) -> dict[str, object]:
        """`chatctl status`'s `cluster` field."""
        lease = self._tenure.lease
        return {
            "node": self.name,
            "epoch": self.me.epoch,
            "state": self.state,
            "redis": redacted(self.config.redis),
            "redis_reachable": bool(self.writer.connected and (self._reader is None or self._reader.connected)),
            "lease_s": self.config.lease_s,
            "lease_renewed_s_ago": round(time.monotonic() - lease.last_ok, 1) if lease is not None else None,
            "log_position": self.position,
            "log_head": self._tenure.head,
            "reader_lag_s": round(self.lag_seconds(), 3),
            "clients_here": len(self.bus),
            "writer_waiting": self.writer.waiting,
        }
