"""LogReader against a real redis-server: entries in id order from a position,
a trimmed or rewound log detected, and a `kill -9` of redis-server survived
with no acknowledged append lost."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import structlog

from tests.support.redisserver import RedisServer, require_redis

require_redis()

from chatd.cluster.entry import Entry  # noqa: E402
from chatd.cluster.errors import Interrupted  # noqa: E402
from chatd.cluster.reader import LogReader, LogRewound, LogTrimmed  # noqa: E402
from chatd.cluster.scripts import Incarnation, Span  # noqa: E402
from chatd.cluster.writer import Writer  # noqa: E402
from tests.cluster.conftest import Cluster, new_prefix  # noqa: E402
from tests.conftest import wait_until  # noqa: E402


class Collector:
    """A reader on its own thread, collecting what it yields."""

    def __init__(self, reader: LogReader) -> None:
        self.reader = reader
        self.entries: list[Entry] = []
        self.batches = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="test-reader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for batch in self.reader.batches():
                self.entries.extend(batch)
                self.batches += 1
        except BaseException as exc:
            self.error = exc

    def ids(self) -> list[int]:
        return [e.id for e in self.entries]

    def stop(self) -> None:
        self.reader.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def collect(cluster: Cluster) -> Iterator[Callable[..., Collector]]:
    started: list[Collector] = []

    def start(position: int = 0, target: Cluster | None = None, **options: int) -> Collector:
        on = target or cluster
        link = on.link("reader", timeout=10)
        reader = LogReader(link, on.keys.log, on.keys.ids, position, block_ms=200, **options)
        started.append(Collector(reader))
        return started[-1]

    yield start
    for collector in started:
        collector.stop()


def speaker(cluster: Cluster) -> tuple[Incarnation, Callable[[bytes], Span]]:
    link = cluster.link("speaker")
    me = cluster.register(link, "a")
    link.run(cluster.calls.claim(me, 1, "alice"))
    link.run(cluster.calls.join(me, 1, "alice", "#room", True, 100, 10))

    def say(*texts: bytes) -> Span:
        return link.run(cluster.calls.say(me, 1, "alice", "msg", "#room", list(texts)))

    return me, say


def test_batches_in_id_order_from_the_position(cluster: Cluster, collect: Callable[..., Collector]) -> None:
    _me, say = speaker(cluster)
    first = say(b"one", b"two")
    reader = collect(position=first.first)  # applied up to "one" already
    say(b"three")
    wait_until(lambda: len(reader.entries) == 2, 10, "two entries")
    assert [e.text for e in reader.entries] == [b"two", b"three"]
    assert reader.reader.position == reader.entries[-1].id
    for i in range(50):
        say(b"%d" % i)
    wait_until(lambda: len(reader.entries) == 52, 10, "52 entries")
    ids = reader.ids()
    assert ids == list(range(ids[0], ids[0] + 52))
    assert reader.error is None


def test_a_reader_from_zero_replays_the_whole_log(cluster: Cluster, collect: Callable[..., Collector]) -> None:
    _me, say = speaker(cluster)
    say(b"hi")
    reader = collect(count=2)  # several XREADs
    wait_until(lambda: len(reader.entries) == 3, 10, "the whole log")
    assert [e.kind for e in reader.entries] == ["nick", "join", "msg"]
    assert reader.batches == 2


def test_a_raise_is_a_gap_the_reader_accepts(cluster: Cluster, collect: Callable[..., Collector]) -> None:
    me, say = speaker(cluster)
    reader = collect()
    link = cluster.link()
    link.run(cluster.calls.raise_ids(me, 1000))
    span = say(b"after the raise")
    wait_until(lambda: reader.entries and reader.entries[-1].id == span.last, 10, "the entry after the raise")
    assert [(e.id, e.kind) for e in reader.entries] == [(1, "nick"), (2, "join"), (1000, "raise"), (1001, "msg")]
    assert reader.error is None


def test_a_trimmed_log_needs_reseeding(redis_server: RedisServer, collect: Callable[..., Collector]) -> None:
    short = Cluster(redis_server.url, new_prefix(), log_max=100)
    try:
        link = short.link()
        me = short.register(link, "a")
        for _ in range(10):  # MAXLEN ~ trims whole stream nodes (100 entries each)
            link.execute([short.calls.info(me, b"x %d" % i).command for i in range(100)])
        behind = collect(position=5, target=short)
        wait_until(lambda: behind.error is not None, 10, "the reader to stop")
        assert isinstance(behind.error, LogTrimmed)
        assert behind.error.position == 5 and behind.error.first > 100
        assert behind.entries == []  # nothing applied past the hole
        near = collect(position=995, target=short)  # 1000 entries, the last ids kept
        wait_until(lambda: len(near.entries) == 5, 10, "the last five")
        assert near.error is None
    finally:
        short.close()


def test_a_rewound_redis_is_detected_before_reading(cluster: Cluster, collect: Callable[..., Collector]) -> None:
    me, say = speaker(cluster)
    say(b"hello")  # ids 1..3 handed out
    reader = collect(position=50)  # this node applied ids Redis no longer knows
    wait_until(lambda: reader.error is not None, 10, "the reader to stop")
    assert isinstance(reader.error, LogRewound)
    assert (reader.error.position, reader.error.head) == (50, 3)
    # what the node does then: raise the ids above its position, read on
    cluster.link().run(cluster.calls.raise_ids(me, 50 + 1_000))
    span = say(b"after")
    again = collect(position=50)
    wait_until(lambda: again.ids() == [1050, span.last], 10, "the raise and the entry after it")


def test_the_reader_survives_kill_9_of_redis_and_no_acknowledged_append_is_lost(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis()
    cluster = Cluster(server.url, new_prefix())
    try:
        with structlog.testing.capture_logs() as events:
            _kill_redis_under_load(server, cluster)
    finally:
        cluster.close()
    seen = [e["event"] for e in events if e["event"].startswith("cluster_reader")]
    assert seen == ["cluster_reader_connected", "cluster_reader_disconnected", "cluster_reader_connected"]


def _kill_redis_under_load(server: RedisServer, cluster: Cluster) -> None:
    setup = cluster.link()
    me = cluster.register(setup, "a", lease_ms=600_000)
    setup.run(cluster.calls.claim(me, 1, "alice"))
    setup.run(cluster.calls.join(me, 1, "alice", "#room", True, 100, 10))
    start = setup.run(cluster.calls.heartbeat(me, 600_000))
    setup.close()
    reader = Collector(LogReader(cluster.link("reader", 10), cluster.keys.log, cluster.keys.ids, start, block_ms=200))
    writer = Writer(cluster.link("writer", 5))
    writer_thread = threading.Thread(target=writer.run, name="test-writer", daemon=True)
    writer_thread.start()
    acknowledged: dict[int, bytes] = {}  # id -> text: what a sender saw echoed
    unknown: list[bytes] = []  # sent, no reply: may or may not be in the log
    stop = threading.Event()
    failures: list[object] = []

    def produce() -> None:
        serial = 0
        while not stop.is_set():
            done = threading.Semaphore(0)
            burst = []
            for _ in range(10):  # a burst, as several I/O workers would hand over
                serial += 1
                text = b"line %d" % serial
                burst.append(text)

                def record(outcome: object, text: bytes = text) -> None:
                    if isinstance(outcome, Span):
                        acknowledged[outcome.first] = text
                    elif isinstance(outcome, Interrupted):
                        unknown.append(text)
                    else:
                        failures.append(outcome)
                    done.release()

                assert writer.submit(cluster.calls.say(me, 1, "alice", "msg", "#room", [text]), record)
            for _ in burst:
                assert done.acquire(timeout=60), "a call got no outcome"

    producer = threading.Thread(target=produce, name="test-producer", daemon=True)
    producer.start()
    try:
        wait_until(lambda: len(acknowledged) >= 200, 60, "200 acknowledged appends")
        server.kill()
        before_kill = len(acknowledged)
        wait_until(lambda: not writer.connected or len(acknowledged) > before_kill, 30, "the writer to notice")
        server.start()
        after_restart = len(acknowledged)
        wait_until(lambda: len(acknowledged) >= after_restart + 200, 60, "200 more after the restart")
    finally:
        stop.set()
        producer.join(60)
        writer.stop()
        writer_thread.join(30)
    assert failures == []
    last = max(acknowledged)
    wait_until(lambda: reader.entries and reader.entries[-1].id >= last, 30, "the reader to catch up")
    reader.stop()
    assert reader.error is None
    read = {e.id: e.text for e in reader.entries}
    assert len(read) == len(reader.entries)  # nothing read twice
    ids = reader.ids()
    assert ids == sorted(ids) and ids == list(range(start + 1, start + 1 + len(ids)))  # no gap, in order
    lost = {i: text for i, text in acknowledged.items() if read.get(i) != text}
    assert lost == {}, f"{len(lost)} acknowledged appends lost"
    extra = set(read.values()) - set(acknowledged.values())
    assert extra <= set(unknown)  # anything else in the log was a call whose reply was lost


def test_stop_ends_the_iteration(cluster: Cluster, collect: Callable[..., Collector]) -> None:
    reader = collect()
    reader.stop()  # while blocked in XREAD (block 200 ms)
    assert reader.error is None


def test_an_unreachable_redis_is_waited_for_not_an_error(short_dir, cluster: Cluster) -> None:
    nowhere = Cluster(f"unix://{short_dir}/none.sock", new_prefix())
    reader = Collector(LogReader(nowhere.link("reader", 1), nowhere.keys.log, nowhere.keys.ids, 0, block_ms=200))
    wait_until(lambda: reader.reader._backoff._failures >= 2, 10, "two attempts")
    assert reader.error is None and not reader.reader.connected
    reader.stop()
