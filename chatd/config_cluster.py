"""The `cluster:` section of the configuration (issue 24, docs/architecture.md,
"Cluster"): the Redis a node shares with the others, the node's name, its
lease, the shared log's length and the keys' prefix.

config.py loads it as the one optional section (`load_cluster`: absent, chatd
runs standalone) and asks `check_cluster` whether the rest of the file asks
for what a node does not run yet. The node itself: chatd/cluster/.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatd import config_values as values
from chatd.config_loader import load_mapping
from chatd.errors import ConfigError


@dataclass(frozen=True)
class ClusterConfig:
    """`cluster:` (docs/architecture.md, "Cluster"): this process is a node of a
    network of chatd processes sharing one Redis. Absent (None): standalone."""

    redis: str  # redis://host[:port][/db], rediss://…, or unix:///path/redis.sock[?db=N]
    node: str = field(default_factory=socket.gethostname)
    lease_s: float = 10.0  # a dead node's nicknames are freed this long after it stopped renewing
    log_max: int = 1_000_000  # entries kept in the shared log
    prefix: str = "chatd:"  # of every Redis key
    require_appendonly: bool = True  # refuse a Redis without append-only persistence


SCHEMA: tuple[type, dict[str, Any]] = (
    ClusterConfig,
    {
        "redis": values.redis_url,
        "node": values.node_name,
        "lease_s": values.number(3, 3600),
        "log_max": values.integer(1000, 1 << 40),
        "prefix": values.key_prefix,
        "require_appendonly": values.boolean,
    },
)


def load_cluster(path: Path, value: object) -> ClusterConfig | None:
    """The one optional section: absent or empty, chatd runs standalone.

    Raises:
        ConfigError: no `redis`, a bad key, or a host name that is no node name.
    """
    if value is None:
        return None
    keys = value if isinstance(value, dict) else {}
    if isinstance(value, dict) and "redis" not in value:
        raise ConfigError(f"{path}: cluster.redis: required in a cluster section; {values.REDIS_EXPECTED} (got none)")
    cluster = load_mapping(path, "cluster", *SCHEMA, value)  # refuses what is not a mapping
    assert isinstance(cluster, ClusterConfig)
    if "node" not in keys:
        try:  # the default, the host name, must be a node name too
            values.node_name(cluster.node)
        except ValueError as exc:
            raise ConfigError(
                f"{path}: cluster.node: the host name is no node name; set one: {exc} (got {cluster.node!r})"
            ) from None
    return cluster


def check_cluster(cluster: ClusterConfig | None, accounts_enabled: bool, irc_listen: str | None) -> str | None:
    """What a node of a cluster does not run yet (docs/operations.md, "Cluster"):
    the problem as `key: what to do (got ...)`, or None."""
    if cluster is None:
        return None
    if accounts_enabled:
        return (
            "accounts.enabled: accounts are not shared between the nodes of a cluster yet; "
            "set accounts.enabled: false beside a cluster section (got true)"
        )
    if irc_listen is not None:
        return (
            "irc.listen: the IRC listener does not run on the nodes of a cluster yet; "
            f"set irc.listen: null beside a cluster section (got {irc_listen!r})"
        )
    return None
