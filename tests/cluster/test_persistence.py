"""The start-up check of Redis's append-only settings, against real servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from tests.support.redisserver import RedisServer, require_redis

require_redis()

from chatd.cluster.link import Link  # noqa: E402
from chatd.cluster.persistence import Persistence, check_persistence, redacted  # noqa: E402
from chatd.cluster.scripts import pack  # noqa: E402
from chatd.config import ClusterConfig  # noqa: E402
from chatd.errors import ConfigError  # noqa: E402

PATH = Path("/etc/chatd/chatd.yaml")


def check(server: RedisServer, **options: object) -> tuple[Persistence, list[dict[str, object]]]:
    link = Link(server.url, name="check", timeout=10)
    try:
        with structlog.testing.capture_logs() as events:
            persistence = check_persistence(link, ClusterConfig(redis=server.url, **options), PATH)  # type: ignore[arg-type]
    finally:
        link.close()
    return persistence, events


def test_append_only_with_fsync_always_is_durable(redis_server: RedisServer) -> None:
    persistence, events = check(redis_server)
    assert persistence == Persistence("yes", "always")
    assert [(e["event"], e["log_level"]) for e in events] == [("cluster_redis_durable", "info")]


def test_everysec_is_accepted_with_a_warning_that_names_the_risk(
    private_redis: Callable[..., RedisServer],
) -> None:
    server = private_redis("--appendfsync", "everysec")
    persistence, events = check(server)
    assert persistence == Persistence("yes", "everysec")
    (event,) = events
    assert (event["event"], event["log_level"], event["appendfsync"]) == (
        "cluster_redis_fsync_relaxed",
        "warning",
        "everysec",
    )
    assert "appendfsync always" in str(event["risk"])


def test_without_append_only_chatd_refuses_unless_told(private_redis: Callable[..., RedisServer]) -> None:
    server = private_redis("--appendonly", "no")
    with pytest.raises(ConfigError) as info:
        check(server)
    message = str(info.value)
    assert message.startswith(f"{PATH}: cluster.redis: the Redis server at {server.url} runs with appendonly no")
    assert "appendonly yes" in message and "cluster.require_appendonly: false" in message
    persistence, events = check(server, require_appendonly=False)
    assert persistence.appendonly == "no"
    assert [(e["event"], e["log_level"]) for e in events] == [("cluster_redis_not_durable", "warning")]


def test_a_redis_that_will_not_say_is_refused_too(private_redis: Callable[..., RedisServer]) -> None:
    server = private_redis("--rename-command", "CONFIG", "")  # as managed Redis services do
    link = Link(server.url, name="check", timeout=10)
    assert "unknown command" in str(link.execute([pack(b"CONFIG", b"GET", b"appendonly")])[0])
    link.close()
    with pytest.raises(ConfigError, match="refused CONFIG GET appendonly"):
        check(server)
    assert check(server, require_appendonly=False)[0] == Persistence("", "")


def test_passwords_stay_out_of_messages() -> None:
    assert redacted("redis://chatd:s3cret@10.0.0.5:6379/0") == "redis://chatd:***@10.0.0.5:6379/0"
    assert redacted("redis://:s3cret@redis.example.org") == "redis://:***@redis.example.org"
    assert redacted("unix:///run/redis/redis.sock") == "unix:///run/redis/redis.sock"
