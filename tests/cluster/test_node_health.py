"""chatd/cluster/node.py's health, without Redis: what /healthz says of a node
(docs/operations.md, "What happens when"): 200 only while it serves and its
reader is within LAG_MAX_S of a head of the log it has seen."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.redisserver import require_redis

require_redis()

from chatd.cluster.lease import Beat  # noqa: E402
from chatd.cluster.node import LAG_MAX_S, Node  # noqa: E402
from chatd.cluster.scripts import Reaped  # noqa: E402
from chatd.config import ClusterConfig, Config, HistoryConfig  # noqa: E402
from chatd.core.chat import Chat  # noqa: E402


def node(tmp_path: Path) -> Node:
    config = Config(
        path=tmp_path / "chatd.yaml",
        history=HistoryConfig(enabled=False),
        cluster=ClusterConfig(redis=f"unix://{tmp_path}/none.sock", node="a"),
    )
    return Node(config, Chat(config))


def test_healthy_only_while_serving(tmp_path: Path) -> None:
    a = node(tmp_path)
    assert not a.healthy()  # starting
    for state, healthy in (("serving", True), ("fenced", False), ("reseed", False), ("stopped", False)):
        a.state = state
        assert a.healthy() is healthy, state


def test_a_reader_behind_a_head_seen_long_ago_is_unhealthy(tmp_path: Path) -> None:
    a = node(tmp_path)
    a.state = "serving"
    a._tenure._beat(Beat(head=10, reaped=Reaped(0, 0)))  # the reader is at 0: behind, since now
    assert a.stats()["reader_lag_ids"] == 10
    assert a.healthy() and a.lag_seconds() < LAG_MAX_S
    head, _ = a._lag._behind  # type: ignore[misc]
    a._lag._behind = (head, time.monotonic() - LAG_MAX_S - 1)  # seen long ago, still not reached
    assert not a.healthy()
    assert a.status()["reader_lag_s"] > LAG_MAX_S
