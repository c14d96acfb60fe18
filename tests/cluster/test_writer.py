"""Writer against a real redis-server: calls from many threads in few writes,
every outcome to its callback, and calls that were never sent kept, in order,
until Redis is back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import pytest
import structlog

from tests.support.redisserver import RedisServer, require_redis

require_redis()

from chatd.cluster.errors import Refused, Unavailable  # noqa: E402
from chatd.cluster.link import Link  # noqa: E402
from chatd.cluster.scripts import Incarnation, Span  # noqa: E402
from chatd.cluster.writer import Writer  # noqa: E402
from tests.cluster.conftest import SCRIPTS, Cluster, new_prefix  # noqa: E402
from tests.conftest import wait_until  # noqa: E402


class CountingLink(Link):
    """A real link that counts its writes."""

    writes = 0

    def execute(self, commands: Sequence[bytes], reconnect: bool = True) -> list[object]:
        self.writes += 1
        return super().execute(commands, reconnect)


@pytest.fixture
def running() -> Iterator[Callable[[Writer], Writer]]:
    threads: list[tuple[Writer, threading.Thread]] = []

    def run(writer: Writer) -> Writer:
        thread = threading.Thread(target=writer.run, name="test-writer", daemon=True)
        thread.start()
        threads.append((writer, thread))
        return writer

    yield run
    for writer, thread in threads:
        writer.stop()
        thread.join(30)
        assert not thread.is_alive()


def member(cluster: Cluster) -> Incarnation:
    link = cluster.link()
    me = cluster.register(link, "a")
    for conn in range(1, 5):
        link.run(cluster.calls.claim(me, conn, f"n{conn}"))
        link.run(cluster.calls.join(me, conn, f"n{conn}", "#room", True, 100, 10))
    return me


def test_calls_from_many_threads_go_out_in_few_writes(cluster: Cluster, running: Callable[[Writer], Writer]) -> None:
    me = member(cluster)
    link = CountingLink(cluster.url, name="writer", timeout=10, scripts=SCRIPTS.values())
    cluster.links.append(link)
    writer = Writer(link)
    outcomes: dict[tuple[int, int], object] = {}
    done = threading.Semaphore(0)
    go = threading.Barrier(4)

    def submit(conn: int) -> None:
        go.wait(10)
        for i in range(250):

            def record(outcome: object, key: tuple[int, int] = (conn, i)) -> None:
                outcomes[key] = outcome
                done.release()

            assert writer.submit(cluster.calls.say(me, conn, f"n{conn}", "msg", "#room", [b"%d" % i]), record)

    threads = [threading.Thread(target=submit, args=(conn,)) for conn in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    running(writer)  # 1,000 calls waiting: about two writes of 512
    for _ in range(1000):
        assert done.acquire(timeout=30)
    assert all(isinstance(o, Span) for o in outcomes.values())
    for conn in range(1, 5):  # each thread's calls in its order
        ids = [outcomes[conn, i].first for i in range(250)]  # type: ignore[union-attr]
        assert ids == sorted(ids)
    assert link.writes <= 4


def test_refusals_reach_their_callback_and_a_failing_callback_stops_nothing(
    cluster: Cluster, running: Callable[[Writer], Writer]
) -> None:
    me = member(cluster)
    writer = running(Writer(cluster.link("writer")))
    outcomes: list[object] = []
    done = threading.Semaphore(0)

    def record(outcome: object) -> None:
        outcomes.append(outcome)
        done.release()

    def broken(outcome: object) -> None:
        done.release()
        raise RuntimeError("a bug in a callback")

    with structlog.testing.capture_logs() as events:
        writer.submit(cluster.calls.claim(me, 9, "n1"), record)
        writer.submit(cluster.calls.claim(me, 9, "n9"), broken)
        writer.submit(cluster.calls.say(me, 9, "n9", "msg", "#room", [b"not in it"]), record)
        writer.submit(cluster.calls.say(me, 1, "n1", "msg", "#room", [b"fine"]), record)
        for _ in range(4):
            assert done.acquire(timeout=30)
    assert [getattr(o, "code", None) for o in outcomes] == ["nick_taken", "not_in_room", None]
    assert isinstance(outcomes[0], Refused) and isinstance(outcomes[2], Span)
    assert [e["call"] for e in events if e["event"] == "cluster_callback_failed"] == ["claim"]


def test_a_full_queue_refuses_without_blocking(cluster: Cluster) -> None:
    me = Incarnation("a", 1)
    writer = Writer(cluster.link("writer"), max_waiting=5)  # not running
    call = cluster.calls.info(me, b"x")
    assert [writer.submit(call, lambda _outcome: None) for _ in range(6)] == [True] * 5 + [False]
    assert writer.waiting == 5


def test_calls_made_while_redis_is_down_are_sent_in_order_when_it_is_back(
    private_redis: Callable[..., RedisServer], running: Callable[[Writer], Writer]
) -> None:
    server = private_redis()
    cluster = Cluster(server.url, new_prefix())
    try:
        me = member(cluster)
        writer = running(Writer(cluster.link("writer", 5), max_batch=7))  # the 20 below in three writes
        first: list[object] = []
        writer.submit(cluster.calls.say(me, 1, "n1", "msg", "#room", [b"before"]), first.append)
        wait_until(lambda: first, 30, "the first call's outcome")
        server.kill()  # the writer's connection is dead, and it has not sent anything on it since
        outcomes: dict[int, object] = {}
        for i in range(20):
            writer.submit(cluster.calls.say(me, 1, "n1", "msg", "#room", [b"%d" % i]), partial(outcomes.__setitem__, i))
        wait_until(lambda: not writer.connected, 30, "the writer to find Redis gone")
        assert outcomes == {}  # kept, not failed
        server.start()
        wait_until(lambda: len(outcomes) == 20, 30, "the 20 calls")
        assert all(isinstance(o, Span) for o in outcomes.values()), outcomes  # none Interrupted: none sent blind
        ids = [outcomes[i].first for i in range(20)]  # type: ignore[attr-defined]
        assert ids == list(range(ids[0], ids[0] + 20))  # in the order they were submitted
    finally:
        cluster.close()


def test_stopping_without_redis_fails_what_waits(short_dir, cluster: Cluster) -> None:
    nowhere = Cluster(f"unix://{short_dir}/none.sock", new_prefix())
    writer = Writer(nowhere.link("writer", 1))
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    outcomes: list[object] = []
    for _ in range(3):
        writer.submit(nowhere.calls.info(Incarnation("a", 1), b"x"), outcomes.append)
    wait_until(lambda: not writer.connected, 10, "a failed attempt")
    writer.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert len(outcomes) == 3 and all(isinstance(o, Unavailable) for o in outcomes)
