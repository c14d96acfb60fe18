"""Fixtures for the cluster engine's tests: one private redis-server for the
whole session (tests/support/redisserver.py), and per test its own key prefix, so
tests never see each other's keys. A test that kills or reconfigures Redis
starts its own (`private_redis`).

Each test module starts with `require_redis()` (tests/redisserver.py), which
skips it, with the reason, where redis-server or redis-py is missing; this
file then imports nothing of chatd.cluster either.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon
from tests.support.redisserver import RedisServer

try:
    from chatd.cluster.keys import Keys
    from chatd.cluster.link import Link
    from chatd.cluster.scripts import Calls, Incarnation, load_scripts

    SCRIPTS = load_scripts()
except ImportError:  # no redis-py: every test module here skips itself
    pass
_prefixes = itertools.count(1)


def _short_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="chatd-r", dir="/tmp"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    sockets = _short_dir()
    server = RedisServer(tmp_path_factory.mktemp("redis"), sockets).start()
    yield server
    server.stop()
    shutil.rmtree(sockets, ignore_errors=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start a redis-server of this test's own (extra options as arguments)."""
    started: list[RedisServer] = []
    folders: list[Path] = []

    def start(*extra: str) -> RedisServer:
        folders.append(_short_dir())
        data = tmp_path / f"redis{len(started)}"
        data.mkdir()
        server = RedisServer(data, folders[-1], *extra).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Cluster:
    """One test's view of a Redis: its prefix, calls and links."""

    url: str
    prefix: str
    log_max: int = 1_000_000
    links: list[Link] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys = Keys(self.prefix)
        self.calls = Calls(self.prefix, self.log_max, SCRIPTS)

    def link(self, name: str = "test", timeout: float = 10.0) -> Link:
        link = Link(self.url, name=name, timeout=timeout, scripts=SCRIPTS.values())
        self.links.append(link)
        return link

    def register(self, link: Link, node: str, lease_ms: int = 60_000, permanent: tuple[str, ...] = ()) -> Incarnation:
        return Incarnation(node, link.run(self.calls.register(node, lease_ms, None, permanent)))

    def close(self) -> None:
        for link in self.links:
            link.close()


def new_prefix() -> str:
    return f"t{next(_prefixes)}:"


@pytest.fixture
def cluster(redis_server: RedisServer) -> Iterator[Cluster]:
    cluster = Cluster(redis_server.url, new_prefix())
    yield cluster
    cluster.close()


@pytest.fixture
def start_node(start_daemon: Callable[..., Daemon], redis_server: RedisServer) -> Callable[..., Daemon]:
    """Factory: `start_node("a")` starts a real chatd as node `a` of this test's
    network (its own key prefix on the session's redis-server), with a short
    lease; `redis=` points it elsewhere (a forwarder), other keywords are
    config overrides. Every node of one test shares the prefix."""
    prefix = new_prefix()

    def start(
        name: str, redis: str | None = None, lease_s: float = 3, log_max: int = 1_000_000, **overrides: Any
    ) -> Daemon:
        cluster = {"redis": redis or redis_server.url, "node": name, "lease_s": lease_s, "prefix": prefix}
        cluster["log_max"] = log_max
        overrides.setdefault("accounts", {"enabled": False})
        return start_daemon(cluster=cluster, **overrides)

    return start
