"""chatd.admission with a fake clock: each limit, the minute's expiry, IPv6
sources by prefix, IPv4-mapped addresses, exemptions, reloads, and what a
connect costs with many distinct sources."""

from __future__ import annotations

import dataclasses
import ipaddress
import time

import pytest

from chatd.admission import Admission
from chatd.config import LimitsConfig

OPEN = dict(max_clients=1_000_000, max_clients_per_ip=0, connects_per_ip_per_minute=0)


def limits(**changes: object) -> LimitsConfig:
    """Every admission limit off unless given."""
    exempt = tuple(ipaddress.ip_network(n) for n in changes.pop("exempt", ()))  # type: ignore[attr-defined]
    return dataclasses.replace(LimitsConfig(), **{**OPEN, **changes}, exempt=exempt)  # type: ignore[arg-type]


def test_max_clients_counts_every_connection_and_a_release_frees_a_slot() -> None:
    admission = Admission(limits(max_clients=2, exempt=["192.0.2.0/24"]))
    assert admission.admit("192.0.2.1", 0) is None  # exempt: still one of max_clients
    assert admission.admit("198.51.100.1", 0) is None
    assert admission.admit("198.51.100.2", 0) == "server_full"
    assert admission.admitted == 2
    admission.release("192.0.2.1")
    assert admission.admit("198.51.100.2", 0) is None


def test_max_clients_per_ip_counts_open_connections_per_address() -> None:
    admission = Admission(limits(max_clients_per_ip=2))
    assert admission.admit("198.51.100.1", 0) is None
    assert admission.admit("198.51.100.1", 0) is None
    assert admission.admit("198.51.100.1", 0) == "too_many_connections"
    assert admission.admit("198.51.100.2", 0) is None  # another address is another count
    admission.release("198.51.100.1")
    assert admission.admit("198.51.100.1", 0) is None
    assert admission.admitted == 3  # the refusals took nothing


def test_connects_per_minute_counts_the_last_minute() -> None:
    admission = Admission(limits(connects_per_ip_per_minute=2))
    for now in (100.0, 100.7):
        assert admission.admit("198.51.100.1", now) is None
        admission.release("198.51.100.1")  # connected and gone: the connect still counts
    assert admission.admit("198.51.100.2", 130.0) is None  # another address has its own minute
    # A connect counts until its second is a minute old (59 to 60 s), and a
    # refused one counts too.
    assert admission.admit("198.51.100.1", 159.9) == "throttled"
    assert admission.admit("198.51.100.1", 160.0) is None  # second 100 left; 159's is one
    assert admission.admit("198.51.100.1", 160.5) == "throttled"
    assert admission.admit("198.51.100.1", 220.0) is None  # seconds 159 and 160 left


def test_a_client_that_keeps_hammering_stays_throttled() -> None:
    admission = Admission(limits(connects_per_ip_per_minute=2))
    assert admission.admit("198.51.100.1", 0.0) is None
    assert admission.admit("198.51.100.1", 0.1) is None
    for now in range(1, 300, 20):  # every 20 s for five minutes: always two in the last minute
        assert admission.admit("198.51.100.1", float(now)) == "throttled", now


def test_the_connect_history_is_forgotten_after_a_minute() -> None:
    admission = Admission(limits(connects_per_ip_per_minute=5))
    for i in range(5000):
        address = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        assert admission.admit(address, i / 100) is None
        admission.release(address)
    assert admission.admit("192.0.2.1", 200.0) is None
    # Peeking inside: only the last connect is remembered, and nothing is open.
    assert dict(admission._recent) == {"192.0.2.1": 1}
    assert len(admission._seconds) == 1
    admission.release("192.0.2.1")
    assert not admission._open and not admission._per_source and admission.admitted == 0


def test_one_fast_source_holds_one_entry_per_second() -> None:
    admission = Admission(limits(connects_per_ip_per_minute=1_000_000))
    for i in range(100_000):
        admission.admit("198.51.100.1", 1000 + i / 2000)  # 2,000 a second for 50 s
        admission.release("198.51.100.1")
    assert len(admission._seconds) == 50
    assert admission._recent["198.51.100.1"] == 100_000


def test_ipv6_clients_are_counted_by_their_64() -> None:
    admission = Admission(limits(max_clients_per_ip=2, connects_per_ip_per_minute=3))
    assert admission.source("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert admission.admit("2001:db8:1:2::1", 0) is None
    assert admission.admit("2001:db8:1:2:ffff:ffff:ffff:ffff", 0) is None
    assert admission.admit("2001:db8:1:2:abcd::9", 0) == "too_many_connections"
    assert admission.admit("2001:db8:1:3::1", 0) is None  # the next /64
    admission.release("2001:db8:1:2::1")
    assert admission.admit("2001:db8:1:2::77", 0) is None  # the third connect of the /64
    admission.release("2001:db8:1:2::77")
    assert admission.admit("2001:db8:1:2::78", 0) == "throttled"  # the fourth
    # A link-local address's scope is not part of it.
    assert admission.source("fe80::1:2%eth0") == "fe80::/64"


@pytest.mark.parametrize(
    ("prefix", "source"),
    [(128, "2001:db8:1:2:3:4:5:6/128"), (48, "2001:db8:1::/48"), (1, "::/1"), (64, "2001:db8:1:2::/64")],
)
def test_ipv6_prefix_sets_the_length_counted(prefix: int, source: str) -> None:
    assert Admission(limits(ipv6_prefix=prefix)).source("2001:db8:1:2:3:4:5:6") == source


def test_ipv4_mapped_addresses_count_as_their_ipv4_address() -> None:
    # With server.host "::", an IPv4 client's address is ::ffff:a.b.c.d.
    admission = Admission(limits(max_clients_per_ip=2))
    assert admission.source("::ffff:192.0.2.1") == "192.0.2.1"
    assert admission.admit("::ffff:192.0.2.1", 0) is None
    assert admission.admit("192.0.2.1", 0) is None
    assert admission.admit("::ffff:192.0.2.1", 0) == "too_many_connections"
    assert admission.admit("::ffff:192.0.2.2", 0) is None
    # Not the /64 they share (::ffff:0:0/96 is all of IPv4).
    assert admission.source("::ffff:198.51.100.7") == "198.51.100.7"


def test_exempt_addresses_skip_the_per_source_limits() -> None:
    admission = Admission(
        limits(max_clients_per_ip=1, connects_per_ip_per_minute=1, exempt=["192.0.2.0/24", "2001:db8::1/128"])
    )
    for _ in range(5):
        assert admission.admit("192.0.2.7", 0) is None
        assert admission.admit("::ffff:192.0.2.8", 0) is None  # mapped: exempt as IPv4
        assert admission.admit("2001:db8::1", 0) is None
    assert admission.source("2001:db8::1") is None
    # The rest of that /64 is counted as usual, without the exempt address.
    assert admission.admit("2001:db8::2", 0) is None
    assert admission.admit("2001:db8::3", 0) == "too_many_connections"
    assert admission.admitted == 16


@pytest.mark.parametrize(
    ("address", "exempt"),
    [
        ("10.1.2.3", True),
        ("10.255.255.255", True),
        ("11.0.0.1", False),
        ("203.0.113.7", True),
        ("203.0.113.8", False),
        ("::ffff:10.1.2.3", True),
        ("::ffff:11.0.0.1", False),
        ("2001:db8::1", True),
        ("2001:db8:ffff::1", True),
        ("2001:db9::1", False),
        ("fe80::1%eth0", True),
        ("fe80::1", True),
        ("::1", False),
        ("127.0.0.1", False),
        # Not addresses (accept() never gives these): never exempt.
        ("", False),
        ("not-an-ip", False),
        ("10.0.0.0/8", False),
        ("10.1.2.3:443", False),
        ("[2001:db8::1]", False),
        ("%eth0", False),
        ("10.1.2.3\x00", False),
    ],
)
def test_which_addresses_are_exempt(address: str, exempt: bool) -> None:
    admission = Admission(limits(exempt=["10.0.0.0/8", "203.0.113.7", "2001:db8::/32", "fe80::/10"]))
    assert (admission.source(address) is None) is exempt


def test_nothing_is_exempt_by_default() -> None:
    admission = Admission(LimitsConfig())
    assert admission.source("127.0.0.1") == "127.0.0.1"
    assert admission.source("::1") == "::/64"


def test_apply_changes_the_limits_for_the_next_connect() -> None:
    admission = Admission(limits(max_clients_per_ip=1))
    assert admission.admit("198.51.100.1", 0) is None
    assert admission.admit("198.51.100.1", 0) == "too_many_connections"
    admission.apply(limits(max_clients_per_ip=3, max_clients=2))
    assert admission.admit("198.51.100.1", 0) is None
    assert admission.admit("198.51.100.1", 0) == "server_full"


def test_apply_recounts_open_connections_by_the_new_prefix_and_exemptions() -> None:
    admission = Admission(limits(max_clients_per_ip=2))
    for ip in ("2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.1"):
        assert admission.admit(ip, 0) is None
    assert admission.admit("2001:db8::3", 0) == "too_many_connections"
    admission.apply(limits(max_clients_per_ip=2, ipv6_prefix=128, exempt=["192.0.2.1"]))
    assert admission.admit("2001:db8::3", 0) is None  # an address of its own now
    assert admission.admit("192.0.2.1", 0) is None  # exempt now
    admission.apply(limits(max_clients_per_ip=2))  # and back: the /64 holds three
    assert admission.admit("2001:db8::4", 0) == "too_many_connections"
    assert admission.admit("192.0.2.1", 0) == "too_many_connections"  # three open
    for ip in ("2001:db8::1", "2001:db8::2", "2001:db8::3", "192.0.2.1", "192.0.2.1", "192.0.2.1"):
        admission.release(ip)
    # Every slot given back, whatever the limits were when it was taken.
    assert admission.admitted == 0
    assert not admission._open and not admission._per_source


def test_a_release_without_an_admit_takes_nothing() -> None:
    admission = Admission(limits(max_clients_per_ip=1))
    assert admission.admit("192.0.2.1", 0) is None
    admission.release("192.0.2.2")
    assert admission.admitted == 1
    assert admission.admit("192.0.2.1", 0) == "too_many_connections"


SOURCES = 20_000
BUDGET = 50e-6  # CPU seconds per admit; measured about 3 µs (IPv4) to 9 µs (IPv6, exempt list)


def _addresses(kind: str) -> list[str]:
    if kind == "ipv4":
        return [f"127.{i // 62500 + 1}.{i // 250 % 250 + 1}.{i % 250 + 1}" for i in range(SOURCES)]
    return [f"2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::1" for i in range(SOURCES)]  # one per /64


@pytest.mark.parametrize("exempt", [[], ["10.0.0.0/8", "2001:db8:ffff::/48"]], ids=["no_exempt", "exempt_list"])
@pytest.mark.parametrize("kind", ["ipv4", "ipv6"])
def test_20000_distinct_sources_cost_little_per_connect(kind: str, exempt: list[str]) -> None:
    # Every limit on, as shipped; 20,000 sources within the minute, each
    # connecting twice and staying connected once. CPU time of this thread,
    # not wall time: a busy machine makes it slower, not costlier.
    admission = Admission(
        limits(max_clients=1_000_000, max_clients_per_ip=16, connects_per_ip_per_minute=30, exempt=exempt)
    )
    addresses = _addresses(kind)
    start = time.thread_time()
    for n, address in enumerate(addresses * 2):
        assert admission.admit(address, 1000 + n / 1000) is None
    for address in addresses:
        admission.release(address)
    spent = time.thread_time() - start
    per_connect = spent / (len(addresses) * 2)
    assert per_connect < BUDGET, f"{per_connect * 1e6:.1f} µs per connect"
    assert admission.admitted == SOURCES
