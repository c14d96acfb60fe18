"""Admission: whether a new connection is served, decided as it is accepted.

Three limits (config `limits`): `max_clients` connections in all, and per
*source* at most `max_clients_per_ip` open connections and
`connects_per_ip_per_minute` connects in the last minute. A source is an IPv4
address, or the `ipv6_prefix` network (a /64 by default) of an IPv6 address:
a host is usually given a whole /64, so per-address limits on IPv6 would let
one host be 2^64 "clients". An IPv4 client of a dual-stack listener
(`::ffff:a.b.c.d`) is its IPv4 address. Addresses in `exempt` skip the
per-source limits, never `max_clients`.

What is here: the policy and its tables, with the clock passed in (`now`,
monotonic seconds) so that tests drive it with a fake one, in the manner of
Ergo's irc/connection_limits/. What is not: sockets, threads, telling a
refused client why, and counting refusals for the metrics (all in
chatd/server.py). Not thread-safe: the server calls it under its own lock,
the one that guards the counters that go with it.

Cost. The connect history is kept in one-second buckets: a deque of
(second, {source: connects in that second}), oldest first, and beside it each
source's total over the deque. `admit` first drops the buckets that left the
window, subtracting them from the totals. Each (source, second) pair is added
once and dropped once, so expiry costs O(1) amortised per connect however many
sources there are, a source is looked up in O(1), and one source connecting as
fast as it can holds at most 60 entries. The window is a minute to within a
second: a connect counts for between 59 and 60 seconds. (Before this module,
each address had a deque of times and, past 4,096 addresses in a minute, every
connect rebuilt the whole table: quadratic in the number of sources.)
"""

from __future__ import annotations

import collections
from typing import Final

from chatd.addresses import parse_ip, source_of
from chatd.config import LimitsConfig
from chatd.core import protocol

WINDOW: Final = 60  # seconds of connects that connects_per_ip_per_minute counts


class Admission:
    def __init__(self, limits: LimitsConfig) -> None:
        self._limits = limits
        self._exempt = _networks(limits)
        self.admitted = 0  # connections admitted and not yet released
        # Open connections by exact address (exempt ones too): what `release`
        # gives back, and what `apply` recounts the sources from.
        self._open: collections.Counter[str] = collections.Counter()
        self._per_source: collections.Counter[str] = collections.Counter()  # open, not exempt
        self._seconds: collections.deque[tuple[int, collections.Counter[str]]] = collections.deque()
        self._recent: collections.Counter[str] = collections.Counter()  # connects in the window

    def admit(self, ip: str, now: float) -> str | None:
        """Take a slot for a connection from `ip` (an IP literal, as accept()
        gives it) at `now`; returns None, or the reason it is refused
        (`server_full`, `too_many_connections`, `throttled`), in which case
        no slot is taken (a throttled attempt still counts as a connect)."""
        self._expire(int(now))
        limits = self._limits
        if self.admitted >= limits.max_clients:
            return protocol.SERVER_FULL
        source = self.source(ip)
        if source is not None:
            if limits.max_clients_per_ip and self._per_source[source] >= limits.max_clients_per_ip:
                return protocol.TOO_MANY_CONNECTIONS
            # A throttled attempt counts too: a client that keeps hammering stays throttled.
            per_minute = limits.connects_per_ip_per_minute
            if per_minute and self._connect(source, int(now)) > per_minute:
                return protocol.THROTTLED
            self._per_source[source] += 1
        self._open[ip] += 1
        self.admitted += 1
        return None

    def release(self, ip: str) -> None:
        """Give back the slot `admit` took for a connection from `ip`."""
        if not self._open[ip]:
            return  # nothing open from there: nothing to give back
        _decrement(self._open, ip)
        self.admitted -= 1
        source = self.source(ip)
        if source is not None:
            _decrement(self._per_source, source)

    def apply(self, limits: LimitsConfig) -> None:
        """New limits (a reload), for the next `admit`. Connections already open
        stay, and are counted again by source if `exempt` or `ipv6_prefix`
        changed; the connect history stays too (after a new `ipv6_prefix`,
        IPv6 sources start a fresh minute)."""
        old, self._limits, self._exempt = self._limits, limits, _networks(limits)
        if (old.exempt, old.ipv6_prefix) != (limits.exempt, limits.ipv6_prefix):
            self._per_source = collections.Counter()
            for ip, count in self._open.items():
                source = self.source(ip)
                if source is not None:
                    self._per_source[source] += count

    def source(self, ip: str) -> str | None:
        """What the per-source limits count `ip` as: an IPv4 address, or an
        IPv6 network such as `2001:db8:1:2::/64`; None if `ip` is exempt."""
        if ":" not in ip and not self._exempt:
            return ip  # the usual case, without parsing: accept() writes IPv4 in its one spelling
        parsed = parse_ip(ip)
        if parsed is None:
            return ip  # not an address (accept() never gives one): counted as itself, never exempt
        bits, value = parsed
        if any(bits == b and value >> shift == network for b, shift, network in self._exempt):
            return None
        return source_of(ip, self._limits.ipv6_prefix, parsed)

    def _connect(self, source: str, second: int) -> int:
        """Note a connect from `source`; returns its connects in the window."""
        seconds = self._seconds
        if not seconds or seconds[-1][0] < second:
            seconds.append((second, collections.Counter()))
        seconds[-1][1][source] += 1
        self._recent[source] += 1
        return self._recent[source]

    def _expire(self, second: int) -> None:
        seconds, recent = self._seconds, self._recent
        while seconds and seconds[0][0] <= second - WINDOW:
            for source, count in seconds.popleft()[1].items():
                _decrement(recent, source, count)


def _decrement(counter: collections.Counter[str], key: str, by: int = 1) -> None:
    """Take `by` off `key`, removing it at zero: the tables hold only what counts."""
    left = counter[key] - by
    if left > 0:
        counter[key] = left
    else:
        counter.pop(key, None)


def _networks(limits: LimitsConfig) -> tuple[tuple[int, int, int], ...]:
    """`limits.exempt` as (bits, shift, network >> shift), for `source`'s test."""
    exempt = []
    for network in limits.exempt:
        bits = network.max_prefixlen
        shift = bits - network.prefixlen
        exempt.append((bits, shift, int(network.network_address) >> shift))
    return tuple(exempt)
