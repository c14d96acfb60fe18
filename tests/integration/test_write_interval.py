"""The write interval (`server.write_interval_ms`) against a real daemon, seen
as TLS records by a client that counts them (tests/support/records.py): two
lines that reach a client within the interval leave in one record; with an
interval of 0 each turn's output leaves at its end, as before.

Alice sends a line, the test waits until the server has taken it (the
`chatd_messages_received_total` counter, served by another thread and so not
held by the interval), then sends a second: the two are read in different
turns of the worker. Whether the second came within the interval of the
first is read from the server's own `time` tags, not from the test's clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from tests.conftest import Daemon, scrape, wait_until
from tests.support.chatclient import ChatClient, Tags
from tests.support.records import RecordClient

INTERVAL_MS = 100  # the longest allowed: room for a busy machine between the two lines
CLOSE_ENOUGH_MS = 50  # second line this soon after the first (server time): within the interval
ATTEMPTS = 10


def _received(daemon: Daemon) -> float:
    return scrape(daemon)("chatd_messages_received_total")


def _ms(tags: Tags) -> float:
    when = datetime.datetime.strptime(tags["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.timestamp() * 1000


def _two_lines(daemon: Daemon, alice: ChatClient, bob: RecordClient, attempt: int) -> tuple[float, list[bytes]]:
    """Alice's two lines, in two turns; returns the server's time between them
    and bob's records that carry them."""
    before = _received(daemon)
    bob.stream.records.clear()
    alice.send(f"first {attempt}")
    wait_until(lambda: _received(daemon) > before, 10, "the server to take the first line")
    alice.send(f"second {attempt}")
    first_tags, first = bob.read_event(10)
    second_tags, second = bob.read_event(10)
    assert (first, second) == (f"MSG #lobby alice first {attempt}", f"MSG #lobby alice second {attempt}")
    carrying = [r for r in bob.stream.records if f" {attempt}\n".encode() in r]
    return _ms(second_tags) - _ms(first_tags), carrying


def _clients(daemon: Daemon) -> tuple[ChatClient, RecordClient]:
    bob = RecordClient.registered(daemon.port, daemon.pki.ca, "bob")
    daemon.clients.append(bob)
    alice = daemon.client("alice")
    bob.expect("JOIN #lobby alice")
    return alice, bob


def test_lines_within_the_write_interval_leave_in_one_record(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(server={"write_interval_ms": INTERVAL_MS})
    alice, bob = _clients(daemon)
    within = 0
    for attempt in range(ATTEMPTS):
        gap, carrying = _two_lines(daemon, alice, bob, attempt)
        if gap > CLOSE_ENOUGH_MS:
            continue  # a busy machine took long between the two: not this test's case
        within += 1
        assert len(carrying) == 1, f"two lines {gap} ms apart, in records {carrying}"
        assert carrying[0].count(b"\n") == 2
    assert within, f"in none of {ATTEMPTS} attempts did the second line come within {CLOSE_ENOUGH_MS} ms"


def test_with_no_write_interval_each_turn_leaves_at_its_end(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(server={"write_interval_ms": 0})
    alice, bob = _clients(daemon)
    for attempt in range(3):
        _gap, carrying = _two_lines(daemon, alice, bob, attempt)
        assert len(carrying) == 2, carrying  # the first left before the second was read
