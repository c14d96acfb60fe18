"""The write interval (`server.write_interval_ms`) against a real daemon, seen
as TLS records by a client that counts them (tests/support/records.py): the
worker writes at most once per interval, so three lines that reach a client
within less than an interval, each in a turn of its own, leave in at most
two writes (one record each): at most one write falls among them. With an
interval of 0 each turn's output leaves at its end, as before: three records.

Alice sends a line, the test waits until the server has taken it (the
`chatd_messages_received_total` counter, served by another thread and so not
held by the interval), then sends the next: each is read in a turn of its
own. Whether the last came within the interval of the first is read from the
server's own `time` tags, not from the test's clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from tests.conftest import Daemon, scrape, wait_until
from tests.support.chatclient import ChatClient, Tags
from tests.support.records import RecordClient

INTERVAL_MS = 100  # the longest allowed: room for a busy machine between the lines
CLOSE_ENOUGH_MS = 50  # the third line this soon after the first (server time): within the interval
ATTEMPTS = 10


def _received(daemon: Daemon) -> float:
    return scrape(daemon)("chatd_messages_received_total")


def _ms(tags: Tags) -> float:
    when = datetime.datetime.strptime(tags["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.timestamp() * 1000


def _three_lines(daemon: Daemon, alice: ChatClient, bob: RecordClient, attempt: int) -> tuple[float, list[bytes]]:
    """Alice's three lines, each read in a turn of its own; returns the server's
    time from the first to the last, and bob's records that carry them."""
    bob.stream.records.clear()
    for n in range(3):
        before = _received(daemon)
        alice.send(f"line {n} of {attempt}")
        wait_until(lambda: _received(daemon) > before, 10, f"the server to take line {n}")
    events = [bob.read_event(10) for _ in range(3)]
    assert [line for _tags, line in events] == [f"MSG #lobby alice line {n} of {attempt}" for n in range(3)]
    carrying = [r for r in bob.stream.records if f" of {attempt}\n".encode() in r]
    return _ms(events[2][0]) - _ms(events[0][0]), carrying


LISTENERS = 10  # more clients in the room: a turn's work per client stays far below AMORTIZED


def _clients(daemon: Daemon) -> tuple[ChatClient, RecordClient]:
    bob = RecordClient.registered(daemon.port, daemon.pki.ca, "bob")
    daemon.clients.append(bob)
    for n in range(LISTENERS):
        daemon.client(f"listener{n}")
        bob.expect(f"JOIN #lobby listener{n}")
    alice = daemon.client("alice")
    bob.expect("JOIN #lobby alice")
    # A first message does work once (the history writer starting, and the
    # like): let it happen before the lines that are measured.
    alice.send("warm-up")
    bob.expect("MSG #lobby alice warm-up", 10)
    return alice, bob


def test_lines_within_the_write_interval_leave_in_one_record(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(server={"write_interval_ms": INTERVAL_MS})
    alice, bob = _clients(daemon)
    within = 0
    for attempt in range(ATTEMPTS):
        gap, carrying = _three_lines(daemon, alice, bob, attempt)
        if gap > CLOSE_ENOUGH_MS:
            continue  # a busy machine took long between the lines: not this test's case
        within += 1
        # Writes are an interval apart: at most one of them fell among the three lines.
        assert sorted(record.count(b"\n") for record in carrying) in ([3], [1, 2]), f"{gap} ms apart: {carrying}"
    assert within, f"in none of {ATTEMPTS} attempts did the lines come within {CLOSE_ENOUGH_MS} ms"


def test_with_no_write_interval_each_turn_leaves_at_its_end(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(server={"write_interval_ms": 0})
    alice, bob = _clients(daemon)
    for attempt in range(3):
        _gap, carrying = _three_lines(daemon, alice, bob, attempt)
        assert [record.count(b"\n") for record in carrying] == [1, 1, 1], carrying
