"""A network of real chatd nodes when things fail (issue 24): a node killed
with kill -9, redis-server killed and restarted, a node cut off from Redis,
a node back after the log has moved past it.

Waits are on lines and log events, each with a timeout; where a time is
measured (LEAVE after kill -9), it is the client's monotonic clock, reported,
and bounded only by the wait's generous timeout.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

from tests.support.redisserver import RedisServer, require_redis

require_redis()

from tests.conftest import Daemon, http_get, wait_until  # noqa: E402
from tests.support.chatclient import ChatClient, event_id  # noqa: E402
from tests.support.forwarder import Forwarder  # noqa: E402

LEASE_S = 3.0


class Talker:
    """A client that says numbered lines at a steady pace on its own thread,
    keeping the ids of those it saw echoed (acknowledged) and checking that
    every event it receives has a greater id than the one before."""

    def __init__(self, client: ChatClient, every: float = 0.02) -> None:
        self.client = client
        self.every = every
        self.echoed: list[int] = []
        self.received: list[int] = []
        self.ended = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"talker-{client.nick}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        count, due = 0, time.monotonic()
        try:
            while not self._stop.is_set():
                if time.monotonic() >= due:
                    self.client.send(f"line {count}")
                    count, due = count + 1, due + self.every
                try:
                    tags, line = self.client.read_event(max(0.001, due - time.monotonic()))
                except TimeoutError:
                    continue
                if "id" in tags:
                    id_ = event_id(tags)
                    assert not self.received or id_ > self.received[-1], (id_, self.received[-5:])
                    self.received.append(id_)
                    if line.startswith(f"MSG #lobby {self.client.nick} "):
                        self.echoed.append(id_)
        except (EOFError, OSError) as exc:
            self.ended = str(exc) or type(exc).__name__

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(20)
        assert not self._thread.is_alive()


def history_ids(client: ChatClient, room: str = "#lobby") -> list[int]:
    """Every event id of `room` in the node's history, paging `after`."""
    ids: list[int] = []
    while True:
        client.send(f"/history {room} after {ids[-1] if ids else 0} 500")
        while True:
            tags, line = client.read_event(20)
            if line.startswith(f"HISTORY {room} "):
                break
            if "history" in tags:
                ids.append(event_id(tags))
        if line.endswith(" end"):
            return ids


def wait_for_line(client: ChatClient, wanted: str, timeout: float) -> float:
    """Read until the line `wanted`; how long it took, on the client's clock."""
    started = time.monotonic()
    client.expect_eventually(wanted, timeout)
    return time.monotonic() - started


def test_a_node_killed_loses_nothing_acknowledged_and_its_users_come_back_elsewhere(
    start_node: Callable[..., Daemon],
) -> None:
    a, b, c = (start_node(name, lease_s=LEASE_S) for name in ("a", "b", "c"))
    alice, bob, carol = a.client("alice"), b.client("bob"), c.client("carol")
    watcher = a.client("watcher")  # reads lines only
    talkers = [Talker(client) for client in (alice, bob, carol)]
    for talker in talkers:  # a few acknowledged lines each before the kill
        wait_for(lambda talker=talker: len(talker.echoed) >= 20, 30, "echoes")
    c.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    c.process.wait(10)  # type: ignore[union-attr]
    killed_at = time.monotonic()
    took = wait_for_line(watcher, "LEAVE carol connection_lost node c lost", 4 * (LEASE_S + 1))
    print(f"LEAVE after kill -9: {time.monotonic() - killed_at:.2f} s (lease {LEASE_S} s; the line {took:.2f} s)")
    for talker in talkers:
        talker.stop()
    assert talkers[2].ended  # carol's connection went with its node
    again = a.client("carol")  # back, on another node, with its nickname
    assert again.nick == "carol"
    acknowledged = sorted(id_ for talker in talkers for id_ in talker.echoed)
    for node in (a, b):
        kept = set(history_ids(node.client(f"check{node.config['cluster']['node']}")))
        missing = [id_ for id_ in acknowledged if id_ not in kept]
        assert not missing, f"{len(missing)} acknowledged ids missing from node {node.config['cluster']['node']}"
    for client in c.clients:
        client.close()
    c.process = None  # killed on purpose: nothing to stop at teardown


def test_redis_killed_and_restarted_loses_nothing_acknowledged(
    private_redis: Callable[..., RedisServer], start_node: Callable[..., Daemon]
) -> None:
    redis = private_redis()
    a, b = (start_node(name, redis=redis.url, lease_s=LEASE_S) for name in ("a", "b"))
    alice, bob = a.client("alice"), b.client("bob")
    talkers = [Talker(alice), Talker(bob)]
    wait_for(lambda: all(len(t.echoed) >= 20 for t in talkers), 30, "echoes before the kill")
    redis.kill()
    redis.start()
    before = [len(t.echoed) for t in talkers]
    wait_for(lambda: all(len(t.echoed) >= n + 20 for t, n in zip(talkers, before, strict=True)), 30, "echoes after")
    for talker in talkers:
        talker.stop()
        assert not talker.ended, talker.ended
    acknowledged = sorted(id_ for talker in talkers for id_ in talker.echoed)
    assert len(set(acknowledged)) == len(acknowledged)  # no id handed out twice
    for node, name in ((a, "a"), (b, "b")):
        kept = set(history_ids(node.client(f"check{name}")))
        assert not [id_ for id_ in acknowledged if id_ not in kept], name
    for talker in talkers:  # every receiver saw each id once, increasing (checked as they came)
        assert len(set(talker.received)) == len(talker.received)


def test_a_node_cut_off_from_redis_fences_itself(start_node: Callable[..., Daemon], redis_server: RedisServer) -> None:
    forwarder = Forwarder(redis_server.socket).start()
    try:
        a = start_node("a", lease_s=LEASE_S)
        c = start_node("c", redis=forwarder.url, lease_s=LEASE_S)
        alice, carol = a.client("alice"), c.client("carol")
        assert alice.readline() == "JOIN #lobby carol"
        assert health(c) == 200
        forwarder.stop()  # the partition
        assert carol.expect_eventually("BYE shutdown", 4 * LEASE_S) == "BYE shutdown"
        c.wait_for_event("cluster_node_fenced", timeout=10, node="c")
        assert health(c) == 503
        refused = c.client()  # a fenced node takes no clients: they try another
        assert refused.readline() == "ERR server_full The server is full; try again later."
        alice.expect_eventually("LEAVE carol connection_lost node c lost", 4 * (LEASE_S + 1))
        assert a.client("carol").nick == "carol"  # its nickname is free for the network
        forwarder.start()  # the network heals: the node registers again and serves
        c.wait_for_event("cluster_registered", timeout=4 * LEASE_S, again=True)
        assert c.client("dave").nick == "dave"
        assert alice.expect_eventually("JOIN #lobby dave", 10)
        assert health(c) == 200
    finally:
        forwarder.stop()


def test_a_node_back_after_the_log_moved_on_refuses_to_serve(start_node: Callable[..., Daemon]) -> None:
    a = start_node("a", lease_s=LEASE_S, log_max=1000)
    b = start_node("b", lease_s=LEASE_S, log_max=1000)
    alice = a.client("alice")
    bob = b.client("bob")
    alice.send("before")
    assert bob.expect_eventually("MSG #lobby alice before", 10)
    assert b.stop() == 0
    for start in range(0, 3000, 100):  # in steps the live node's reader keeps up with
        alice.send("\n".join(f"filler {i}" for i in range(start, start + 100)))
        alice.expect_eventually(f"MSG #lobby alice filler {start + 99}", 30)
    b.log_path.rename(b.workdir / "chatd.before.log")  # the events of this start only
    b.start()  # with its history, whose last id the log no longer reaches
    b.wait_for_event("cluster_reseed_needed", timeout=30, node="b")
    assert health(b) == 503
    assert b.client().readline() == "ERR server_full The server is full; try again later."


def health(daemon: Daemon) -> int:
    return http_get(daemon.metrics_address(), "/healthz")[0]


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    wait_until(predicate, timeout, what)
