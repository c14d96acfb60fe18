"""`chatd-cluster`: chatd as a one-node network (issue 24), beside `chatd` in
the same run, so that what the shared log adds per event is measured by the
scenarios that measure chatd (paced load: the server's CPU per line and the
latency; fan-out: lines per second).

The node gets config/chatd.yaml's values as `chatd` does (bench/targets.py),
plus a `cluster:` section on a private redis-server (Unix socket,
append-only, `appendfsync always`: what "nothing acknowledged lost" needs;
tests/support/redisserver.py), started for each run and stopped with the
node. Accounts are off (a node refuses them). redis-server runs on the
server's CPU (0), so the generator keeps its own; the server's CPU per line
is chatd's alone, and Redis's is recorded beside it (`redis_cpu_s`).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ircfanout
from bench.servers import Certs, Running, Target, TargetUnavailable, cpu_count
from bench.targets import ChatdTarget
from tests.support.redisserver import REDIS_SERVER, RedisServer

PREFIX = "bench:"
LOG_KEY = PREFIX + "log"


@dataclass
class ClusterRunning(Running):
    """A node and its redis-server, stopped together."""

    redis: RedisServer | None = None
    sockets: Path | None = None
    others: list[Running] = field(default_factory=list)  # the other nodes
    ports: list[int] = field(default_factory=list)  # every node's chat port, this one first
    closing: dict[str, float] = field(default_factory=dict)  # figures read at stop, for the record

    def stop(self, timeout: float = 15.0) -> int:
        self.closing.update(self.log_memory())
        code = super().stop(timeout)
        for other in self.others:
            other.stop(timeout)
        self.closing["redis_cpu_s"] = round(self.redis_cpu(), 3)
        if self.redis is not None:
            self.redis.stop()
        if self.sockets is not None:
            shutil.rmtree(self.sockets, ignore_errors=True)
        return code

    def log_memory(self) -> dict[str, float]:
        """Redis's memory per retained log entry (issue 24: ≤ 250 B): `MEMORY
        USAGE` of the log, every stream node counted (SAMPLES 0), over XLEN."""
        if self.redis is None:
            return {}
        import redis

        client = redis.Redis(unix_socket_path=str(self.redis.socket), socket_timeout=30)
        try:
            entries = int(client.xlen(LOG_KEY))
            used = int(client.execute_command("MEMORY", "USAGE", LOG_KEY, "SAMPLES", "0") or 0)
        except redis.RedisError:
            return {}
        finally:
            client.close()
        return {"log_entries": entries, "redis_bytes_per_entry": round(used / entries, 1)} if entries else {}

    def redis_cpu(self) -> float:
        process = self.redis.process if self.redis is not None else None
        if process is None:
            return 0.0
        try:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ChatdClusterTarget(ChatdTarget):
    """chatd as the one node of a network on a private Redis; or `nodes`
    nodes, each on its own port (the scenarios that deal clients over
    several ports: `cross-*`), then unpinned: three nodes, Redis and the
    generator share the machine; or, with `reuse_port`, `nodes` processes
    on one port (`server.reuse_port`: the kernel deals the connections),
    pinned with Redis to the server's CPU as `chatd` is."""

    def __init__(
        self,
        certs: Certs,
        name: str = "chatd-cluster",
        nodes: int = 1,
        fsync: str = "always",
        reuse_port: bool = False,
    ) -> None:
        keys = ("fanout-50", "fanout-200", "paced", "load") if nodes == 1 or reuse_port else ("cross",)
        super().__init__(certs, name=name, accounts=False, keys=keys)
        self.websocket = False
        self.nodes = nodes
        self.fsync = fsync  # Redis's appendfsync: `always` (nothing acknowledged lost) or `everysec`
        self.reuse_port = reuse_port
        if nodes > 1 and not reuse_port:
            self.placement = "shared"
        self._cluster: dict[str, str] = {}
        self._port = 0  # the port the next node listens on (reuse_port: the first node's)

    def check(self) -> None:
        if REDIS_SERVER is None:
            raise TargetUnavailable("redis-server is not installed (apt-get install redis-server)")
        try:
            import redis  # noqa: F401
        except ImportError as exc:
            raise TargetUnavailable("redis-py is not installed: pip install -e '.[cluster]'") from exc
        super().check()

    def start(self, workdir: Path, spec: dict[str, Any]) -> Running:
        sockets = Path(tempfile.mkdtemp(prefix="chatd-bench-"))  # AF_UNIX paths are short
        redis = RedisServer(workdir, sockets, "--appendfsync", self.fsync).start()
        if cpu_count() > 1 and redis.process is not None and self.placement == "pinned":
            os.sched_setaffinity(redis.process.pid, {0})  # the server's CPU: the generator keeps its own
        nodes: list[Running] = []
        try:
            for i in range(self.nodes):
                self._cluster = {"redis": redis.url, "node": f"bench-{i}", "prefix": PREFIX}
                home = workdir / f"node-{i}" if i else workdir  # each its own history store
                home.mkdir(exist_ok=True)
                nodes.append(super().start(home, spec))
                if self.reuse_port:
                    self._port = nodes[0].port
        except BaseException:
            for node in nodes:
                node.stop()
            redis.stop()
            shutil.rmtree(sockets, ignore_errors=True)
            raise
        self._port = 0
        running = nodes[0]
        running.notes["nodes"] = self.nodes
        return ClusterRunning(
            running.process,
            running.port,
            running.log,
            running.workdir,
            running.notes,
            running.scraper,
            redis=redis,
            sockets=sockets,
            others=nodes[1:],
            ports=[] if self.reuse_port else [node.port for node in nodes],
        )

    def _extra(self, config: dict[str, Any], changes: dict[str, Any]) -> None:
        config["cluster"] = dict(self._cluster)
        if self.reuse_port:
            config["server"].update(port=self._port, reuse_port=True)
            changes["reuse_port"] = True
        changes["accounts.enabled"] = False
        if (config.get("irc") or {}).get("listen"):  # a node runs no IRC listener (config.py)
            config["irc"]["listen"] = None
            changes["irc.listen"] = None


# Every target of the runner: bench/ircfanout.py's (targets.py's and chatd-irc) and this one.
TARGETS: dict[str, Callable[[Certs], Target]] = {
    **ircfanout.TARGETS,
    "chatd-cluster": ChatdClusterTarget,
    "chatd-cluster3": functools.partial(ChatdClusterTarget, name="chatd-cluster3", nodes=3),
    # Issue 24: "2 processes with reuse_port against 1 on this machine, the generator pinned apart".
    "chatd-cluster-rp2": functools.partial(ChatdClusterTarget, name="chatd-cluster-rp2", nodes=2, reuse_port=True),
    # What Redis's fsync on every write costs the latency (it may lose acknowledged lines: operations.md).
    "chatd-cluster3-everysec": functools.partial(
        ChatdClusterTarget, name="chatd-cluster3-everysec", nodes=3, fsync="everysec"
    ),
}
