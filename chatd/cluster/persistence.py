"""Persistence: whether the Redis server keeps what it acknowledged, checked at
start-up.

With `appendonly no` (Debian's default) a restart of redis-server forgets the
log, every nickname and the id counter: ids repeat and acknowledged lines are
gone. chatd refuses to start clustered against such a server unless
`cluster.require_appendonly: false` says the operator accepts that. With
`appendfsync everysec` a crash of the Redis *host* loses up to a second, and
Redis 7.0 was seen to lose an answered write when killed right after an idle
pause (the cluster research note, §3.10); only `always` closes both, so
anything else is logged as a warning naming the risk.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import structlog

from chatd.cluster.link import Link
from chatd.cluster.scripts import pack
from chatd.config_cluster import ClusterConfig
from chatd.errors import ConfigError

log = structlog.get_logger(__name__)

EVERYSEC_RISK = (
    "a crash of the Redis host loses up to about a second of acknowledged lines, and Redis 7.0 can lose "
    "an answered write when killed right after an idle pause; set appendfsync always where nothing "
    "acknowledged may be lost"
)


@dataclass(frozen=True)
class Persistence:
    appendonly: str  # yes, no, or "" when CONFIG GET was refused
    appendfsync: str  # always, everysec, no, or ""


def redacted(url: str) -> str:
    """`url` without a password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def check_persistence(link: Link, cluster: ClusterConfig, path: Path) -> Persistence:
    """Read `appendonly` and `appendfsync`; log what they risk.

    Raises:
        ConfigError: on `cluster.redis`, when the server does not run with
            `appendonly yes` (or will not say) and `cluster.require_appendonly`.
        Unavailable, Interrupted: Redis cannot be reached.
    """
    where = redacted(cluster.redis)
    persistence = _read(link)
    if persistence.appendonly != "yes":
        found = (
            f"runs with appendonly {persistence.appendonly}"
            if persistence.appendonly
            else "refused CONFIG GET appendonly"
        )
        risk = "a restart of Redis would forget the log, every nickname and the ids (ids would repeat)"
        if cluster.require_appendonly:
            raise ConfigError(
                f"{path}: cluster.redis: the Redis server at {where} {found}: {risk}. Set `appendonly yes` "
                f"and `appendfsync always` in its redis.conf, or set cluster.require_appendonly: false "
                f"to accept that (got {where!r})"
            )
        log.warning("cluster_redis_not_durable", redis=where, appendonly=persistence.appendonly, risk=risk)
    elif persistence.appendfsync != "always":
        log.warning("cluster_redis_fsync_relaxed", redis=where, appendfsync=persistence.appendfsync, risk=EVERYSEC_RISK)
    else:
        log.info("cluster_redis_durable", redis=where, appendonly="yes", appendfsync="always")
    return persistence


def _read(link: Link) -> Persistence:
    values = []
    for reply in link.execute([pack(b"CONFIG", b"GET", b"appendonly"), pack(b"CONFIG", b"GET", b"appendfsync")]):
        # [name, value]; an error reply where CONFIG is renamed or forbidden (managed Redis, ACLs)
        value = reply[1] if isinstance(reply, list) and len(reply) == 2 else None
        values.append(value.decode() if isinstance(value, bytes) else "")
    return Persistence(*values)
