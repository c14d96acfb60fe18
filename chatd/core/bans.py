"""Bans: addresses and networks (CIDR) an operator has refused, each with a
reason and an optional expiry (wall-clock milliseconds, as stored).

The server asks `match` as it admits a connection (`ERR banned`, then
`BYE banned`, as a full server is told) and a sign-in asks it again; adding
a ban closes the connections it matches (chatd/operations.py does, for it
knows every connection). An IPv4 client of a dual-stack listener
(`::ffff:a.b.c.d`) is matched as its IPv4 address. With no ban the check is
one length test: the accept path pays nothing for the feature.

The table is replaced whole on each change (a tuple swapped under the
owner's lock), so `match` reads it on any thread without a lock.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Ban:
    network: str  # as ipaddress writes it: 203.0.113.7/32, 2001:db8::/48
    reason: str
    created_ms: int
    expires_ms: int | None  # None: until removed


def parse_network(text: str) -> Network:
    """An address or a CIDR network, host bits allowed (`10.1.2.3/8` is 10.0.0.0/8).

    Raises:
        ValueError: neither, with what is expected.
    """
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address or a CIDR network such as 203.0.113.7, 198.51.100.0/24 or 2001:db8::/48"
        ) from None


class Bans:
    def __init__(self, bans: list[Ban]) -> None:
        self._table: tuple[tuple[Network, Ban], ...] = tuple((parse_network(b.network), b) for b in bans)

    def __len__(self) -> int:
        return len(self._table)

    def all(self, now_ms: int) -> list[Ban]:
        """The bans in force, most specific network first."""
        live = [(net, ban) for net, ban in self._table if not _expired(ban, now_ms)]
        return [ban for _, ban in sorted(live, key=lambda item: (-item[0].prefixlen, str(item[0])))]

    def match(self, ip: str, now_ms: int) -> Ban | None:
        """The ban in force that covers `ip` (an address as accept() gives it), or None."""
        table = self._table
        if not table:
            return None
        address = _address(ip)
        if address is None:
            return None
        found = [ban for net, ban in table if address in net and not _expired(ban, now_ms)]
        return found[0] if found else None

    def put(self, ban: Ban) -> None:
        """Add `ban`, replacing one for the same network. Callers serialise changes."""
        network = parse_network(ban.network)
        self._table = (*((n, b) for n, b in self._table if n != network), (network, ban))

    def remove(self, text: str) -> Ban | None:
        """Remove the ban of exactly this network; the ban removed, or None."""
        network = parse_network(text)
        removed = [b for n, b in self._table if n == network]
        self._table = tuple((n, b) for n, b in self._table if n != network)
        return removed[0] if removed else None


def covers(network: str, ip: str) -> bool:
    """Whether `network` (a ban's) covers the address `ip`."""
    address = _address(ip)
    return address is not None and address in parse_network(network)


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(ip.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _expired(ban: Ban, now_ms: int) -> bool:
    return ban.expires_ms is not None and ban.expires_ms <= now_ms
