"""Link against real redis-servers: TCP and Unix URLs, scripts reloaded after
SCRIPT FLUSH, and failures sorted into "not sent" and "no reply"."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.redisserver import RedisServer, require_redis

require_redis()

from chatd.cluster.errors import Interrupted, Unavailable  # noqa: E402
from chatd.cluster.link import Link  # noqa: E402
from chatd.cluster.scripts import ReplyError, pack  # noqa: E402
from tests.cluster.conftest import SCRIPTS, Cluster, new_prefix  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_redis_url_over_tcp_with_a_database(private_redis: Callable[..., RedisServer]) -> None:
    port = free_port()
    server = private_redis("--port", str(port), "--bind", "127.0.0.1")
    cluster = Cluster(f"redis://127.0.0.1:{port}/3", new_prefix())
    try:
        link = cluster.link()
        me = cluster.register(link, "a")
        assert link.run(cluster.calls.claim(me, 1, "alice")) == 1
        # the keys went to database 3, not 0
        unix = Link(server.url, name="check", timeout=10)
        assert unix.execute([pack(b"EXISTS", cluster.keys.ids.encode())]) == [0]
        assert unix.execute([pack(b"SELECT", b"3"), pack(b"EXISTS", cluster.keys.ids.encode())]) == [b"OK", 1]
        unix.close()
    finally:
        cluster.close()


def test_scripts_flushed_from_redis_are_loaded_again(cluster: Cluster) -> None:
    link = cluster.link()
    me = cluster.register(link, "a")
    link.execute([pack(b"SCRIPT", b"FLUSH")])  # as after a restart: Redis keeps no scripts
    calls = [cluster.calls.claim(me, conn, f"n{conn}") for conn in range(1, 4)]
    replies = link.execute([call.command for call in calls])
    assert [call.decode(reply) for call, reply in zip(calls, replies, strict=True)] == [1, 2, 3]


def test_an_error_reply_is_a_value_and_the_batch_goes_on(cluster: Cluster) -> None:
    link = cluster.link()
    replies = link.execute([pack(b"PING"), pack(b"NO-SUCH-COMMAND"), pack(b"ECHO", b"still here")])
    assert replies[0] == b"PONG" and replies[2] == b"still here"
    assert isinstance(replies[1], ReplyError) and "unknown command" in replies[1].message


def test_nothing_sent_is_unavailable_and_a_lost_reply_is_interrupted(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis()
    link = Link(server.url, name="test", timeout=10, scripts=SCRIPTS.values())
    try:
        assert link.execute([pack(b"PING")]) == [b"PONG"]
        server.kill()
        with pytest.raises(Unavailable):  # the dead idle connection is noticed before sending
            link.execute([pack(b"PING")])
        server.start()
        assert link.execute([pack(b"PING")]) == [b"PONG"]
        with pytest.raises(Interrupted) as info:  # Redis goes away while the batch is out
            link.execute([pack(b"PING"), pack(b"SHUTDOWN", b"NOSAVE"), pack(b"PING")])
        assert info.value.replies in ([], [b"PONG"])  # Redis may exit before writing the first reply
        assert not link.connected
        assert server.process is not None and server.process.wait(30) == 0
    finally:
        link.close()


def test_a_link_reconnects_for_as_long_as_redis_is_away(tmp_path: Path, redis_server: RedisServer) -> None:
    """redis-py's pool refuses a 101st connection it ever made: a link must not
    go through it, or its thread dies after about three minutes of an outage."""
    away = Link(f"unix://{tmp_path}/nothing.sock", name="away", timeout=1)
    for _ in range(150):
        with pytest.raises(Unavailable):
            away.connect()
    back = Link(redis_server.url, name="back", timeout=5)
    for _ in range(150):
        back.connect()
        back.close()
    assert back.execute([pack(b"PING")]) == [b"PONG"]
    back.close()


def test_replies_larger_than_a_read_and_many_in_one_batch(cluster: Cluster) -> None:
    link = cluster.link()
    big = bytes(range(256)) * 1200  # 300 KiB: several reads of the link's buffer
    commands = [pack(b"ECHO", big), *[pack(b"INCR", b"%scount" % cluster.prefix.encode()) for _ in range(3000)]]
    replies = link.execute(commands)
    assert replies[0] == big and replies[1:] == list(range(1, 3001))
    assert link.execute([pack(b"ECHO", b"")]) == [b""]  # nothing left over from the batch before
