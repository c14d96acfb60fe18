"""The lease: its clock as a value, and the lease thread against a real
redis-server — renewing, fencing itself when refused or cut off, reaping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.redisserver import RedisServer, require_redis

require_redis()

from chatd.cluster.lease import MARGIN_S, Beat, Lease, LeaseClock, lease_link_timeout  # noqa: E402
from chatd.cluster.scripts import Incarnation, Reaped, pack  # noqa: E402
from tests.cluster.conftest import Cluster, new_prefix  # noqa: E402
from tests.conftest import wait_until  # noqa: E402


def test_the_lease_clock() -> None:
    clock = LeaseClock(lease_s=9.0, last_ok=100.0)
    assert clock.period == 3.0
    assert clock.next_beat() == 103.0
    assert clock.deadline == 100.0 + 9.0 - 9.0 / 5  # a short lease: a fifth of it as the margin
    assert not clock.expired(107.1) and clock.expired(107.2)
    clock.beat_ok(104.0)
    assert clock.next_beat() == 107.0 and not clock.expired(111.0)
    assert LeaseClock(lease_s=30.0, last_ok=0.0).deadline == 30.0 - MARGIN_S
    clock.beat_ok(101.0)  # an older attempt's success never moves it back
    assert clock.last_ok == 104.0
    assert lease_link_timeout(10.0) == 1.0 and lease_link_timeout(3.0) == 0.5


class Running:
    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.fenced: list[str] = []
        self.beats: list[Beat] = []
        self.thread = threading.Thread(target=lease.run, name="test-lease", daemon=True)


@pytest.fixture
def start_lease() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(cluster: Cluster, node: str, lease_s: float) -> Running:
        link = cluster.link(f"lease-{node}", timeout=lease_link_timeout(lease_s))
        sent = time.monotonic()
        me = cluster.register(link, node, lease_ms=round(lease_s * 1000))
        holder: list[Running] = []
        lease = Lease(
            link,
            cluster.calls,
            me,
            lease_s,
            sent,
            on_fenced=lambda reason: holder[0].fenced.append(reason),
            on_beat=lambda beat: holder[0].beats.append(beat),
        )
        holder.append(Running(lease))
        holder[0].thread.start()
        started.append(holder[0])
        return holder[0]

    yield start
    for running in started:
        running.lease.stop()
        running.thread.join(30)
        assert not running.thread.is_alive()


def pttl(cluster: Cluster, node: str) -> int:
    reply = cluster.link().execute([pack(b"PTTL", cluster.keys.node(node).encode())])[0]
    assert isinstance(reply, int)
    return reply


def test_heartbeats_keep_the_lease_past_its_length(cluster: Cluster, start_lease: Callable[..., Running]) -> None:
    running = start_lease(cluster, "a", 3.0)  # a beat a second
    wait_until(lambda: len(running.beats) >= 5, 30, "five heartbeats")  # more than 3 s
    assert running.fenced == []
    assert pttl(cluster, "a") > 0  # still held, renewed
    assert all(beat.head == 0 for beat in running.beats)  # no id handed out yet


def test_a_refused_heartbeat_fences_the_node_once(cluster: Cluster, start_lease: Callable[..., Running]) -> None:
    running = start_lease(cluster, "a", 3.0)
    cluster.link().execute([pack(b"DEL", cluster.keys.node("a").encode())])  # gone, as if expired
    wait_until(lambda: running.fenced, 30, "the node to fence itself")
    running.thread.join(30)
    assert running.fenced == ["lease_lost"] and running.lease.fenced == "lease_lost"


def test_a_node_cut_off_from_redis_fences_itself_before_its_lease_ends(
    private_redis: Callable[..., RedisServer], start_lease: Callable[..., Running]
) -> None:
    server = private_redis()
    cluster = Cluster(server.url, new_prefix())
    try:
        running = start_lease(cluster, "a", 3.0)
        wait_until(lambda: running.beats, 30, "a heartbeat")
        server.kill()
        wait_until(lambda: running.fenced, 30, "the node to fence itself")
        running.thread.join(30)
        assert running.fenced == ["redis_unreachable"]
    finally:
        cluster.close()


def test_the_lease_thread_reaps_a_dead_node(cluster: Cluster, start_lease: Callable[..., Running]) -> None:
    link = cluster.link()
    dead = cluster.register(link, "dead")
    link.run(cluster.calls.claim(dead, 1, "alice"))
    running = start_lease(cluster, "alive", 3.0)
    wait_until(lambda: running.beats, 30, "a heartbeat")
    link.execute([pack(b"DEL", cluster.keys.node("dead").encode())])
    wait_until(lambda: any(b.reaped.nodes for b in running.beats), 30, "a beat that reaped")
    reaped = [b.reaped for b in running.beats if b.reaped.nodes]
    assert reaped == [Reaped(1, 1)]  # once, however many beats since
    # the head a beat reports is from before its reap: the next one counts the leave
    wait_until(lambda: running.beats[-1].head == 2, 30, "a beat after the leave")
    assert link.execute([pack(b"EXISTS", cluster.keys.nick("alice").encode())])[0] == 0
    assert running.fenced == []
    assert isinstance(running.lease.me, Incarnation)
