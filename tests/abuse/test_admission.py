"""Admission against the real daemon from thousands of source addresses (all of
127.0.0.0/8 is local on Linux): the per-IP limit and the throttle still hold
after 10,000 distinct addresses within a minute, and an accept costs the daemon
as much CPU after the first 4,000 addresses as before them (chatd/admission.py;
it used to rebuild its address table on every connect past 4,096 addresses).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

from tests.conftest import Daemon, assert_healthy, wait_until
from tests.support.proc import cpu_seconds

PER_IP = 2
PER_MINUTE = 3
EARLY = 4_000  # addresses before the old code's 4,096
LATE = 6_000  # addresses after them
PACE = 400  # connects the test gets ahead of the daemon's handshakes, at most


def _addresses(first: int, count: int) -> Iterator[str]:
    """Distinct loopback addresses, none in 127.0.0.0/16 (where the test's own clients are)."""
    for i in range(first, first + count):
        yield f"127.{i // 62500 + 10}.{i // 250 % 250 + 1}.{i % 250 + 1}"


def _knock(port: int, source: str) -> None:
    """Connect from `source` and hang up at once: admitted (or refused) at accept, then
    a failed handshake for the daemon."""
    with socket.socket() as sock:
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))


def _handshake_failures(daemon: Daemon) -> int:
    return daemon.log_path.read_bytes().count(b'"event": "tls_handshake_failed"')


def _flood(daemon: Daemon, addresses: Iterator[str]) -> float:
    """One connect from each address, paced by the daemon's handshake failures;
    returns the daemon's CPU seconds from the first connect until the last is handled."""
    assert daemon.process is not None
    before = _handshake_failures(daemon)
    start = cpu_seconds(daemon.pid)
    sent = 0
    for sent, source in enumerate(addresses, 1):
        _knock(daemon.port, source)
        if sent % PACE == 0:
            wait_until(lambda: _handshake_failures(daemon) - before >= sent - PACE, 30, f"{sent - PACE} handled")
    wait_until(lambda: _handshake_failures(daemon) - before >= sent, 30, f"all {sent} handled")
    return cpu_seconds(daemon.pid) - start


def test_limits_hold_and_cost_stays_flat_across_10000_addresses(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(
        limits={"max_clients_per_ip": PER_IP, "connects_per_ip_per_minute": PER_MINUTE, "max_clients": 10_000}
    )
    # One address uses up its minute before the flood, one connection after
    # another: each seen closed before the next comes, or the next would meet
    # the per-IP limit instead (which does not count as a connect).
    early = "127.0.5.1"
    for knocked in range(1, PER_MINUTE + 1):
        _knock(daemon.port, early)
        wait_until(lambda: _handshake_failures(daemon) >= knocked, 10, f"knock {knocked} handled")
    early_cpu = _flood(daemon, _addresses(0, EARLY))
    late_cpu = _flood(daemon, _addresses(EARLY, LATE))
    early_each, late_each = early_cpu / EARLY, late_cpu / LATE
    print(f"daemon CPU per connect: {early_each * 1e6:.0f} µs early, {late_each * 1e6:.0f} µs late")
    # CPU time, not wall time: a busy machine slows both phases alike. Measured
    # about 1.0x here; the old table rebuild made it about 3x.
    assert late_each < 2 * early_each, (early_each, late_each)
    assert not daemon.find_events("rejected")  # every address of the flood was new

    # The throttle remembers the address from before the flood...
    daemon.client(source=early).expect_refused("throttled")
    # ...and still counts a new one.
    fresh = "127.0.6.1"
    for i in range(PER_MINUTE):
        daemon.client(f"f{i}", source=fresh).close()
        daemon.wait_for_event("disconnect", timeout=10, nick=f"f{i}")  # its slot given back
    daemon.client(source=fresh).expect_refused("throttled")
    # The per-IP limit holds too, and one address's limit is not another's.
    crowded = "127.0.7.1"
    kept = [daemon.client(f"c{i}", source=crowded) for i in range(PER_IP)]
    daemon.client(source=crowded).expect_refused("too_many_connections")
    assert len(kept) == PER_IP
    assert_healthy(daemon, source="127.0.8.1")
