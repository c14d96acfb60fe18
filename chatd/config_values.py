"""The checks of single configuration values, for config.py's schema.

Each check takes a value as YAML gave it and returns it converted, or raises
`ValueError` whose message says what was expected; config.py adds the file
and the key. Checks that look at several keys at once stay in config.py.
"""

from __future__ import annotations

import ipaddress
import math
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from chatd.addresses import LISTEN_EXPECTED, split_host_port
from chatd.names import is_room_name, room_key
from chatd.origin import parse_origin

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The key-exchange groups of Mozilla's server profiles, in their order: X25519
# first, the share modern clients send, so that they need no HelloRetryRequest.
Group = Literal["X25519", "prime256v1", "secp384r1"]
GROUPS: tuple[Group, ...] = ("X25519", "prime256v1", "secp384r1")

# Per key: a check that returns the converted value or raises ValueError whose
# message says what was expected.
Check = Any


@dataclass(frozen=True)
class Section:
    """A key whose value is a mapping of keys of its own (`accounts.argon2`):
    config.py loads it into `cls` with `checks`, as it loads a section."""

    cls: type
    checks: dict[str, Check]


def integer(low: int, high: int) -> Check:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be an integer {low}..{high}")
        return value

    return check


def number(low: float, high: float) -> Check:
    def check(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number {low:g}..{high:g}")
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"must be a number {low:g}..{high:g}")
        return float(value)

    return check


def text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def choice(*choices: str) -> Check:
    def check(value: object) -> str:
        if value not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return str(value)

    return check


def networks(value: object) -> tuple[IPNetwork, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of IP addresses or CIDR networks")
    try:
        return tuple(ipaddress.ip_network(str(item), strict=False) for item in value)
    except ValueError as exc:
        raise ValueError(f"must be a list of IP addresses or CIDR networks ({exc})") from None


def room_names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of room names such as '#lobby'")
    for name in value:
        if not is_room_name(name):
            raise ValueError(f"{name!r} is not a room name: # and 1-32 of A-Z a-z 0-9 _ -")
    keys = [room_key(name) for name in value]
    if len(set(keys)) != len(keys):
        raise ValueError("lists a room twice (names are case-insensitive)")
    return tuple(value)


def origin(item: object) -> str:
    expected = "must be a list of origins such as 'https://chat.example.org' or 'https://example.org:8443'"
    if not isinstance(item, str):
        raise ValueError(expected)
    try:
        # A trailing `/` is forgiven here, where an operator may paste a URL,
        # and nowhere else: a browser's `Origin` never has one.
        return parse_origin(item.removesuffix("/"))
    except ValueError as exc:
        raise ValueError(f"{item!r} {exc}; {expected}") from None


def origins(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of origins such as 'https://chat.example.org'")
    return tuple(origin(item) for item in value)


def listen_address(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(LISTEN_EXPECTED)
    split_host_port(value)
    return value


_SERVER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62}[A-Za-z0-9])?")


def server_name(value: object) -> str | None:
    """An IRC server name (the source of its lines): a host name's letters,
    digits, dots and hyphens, up to 64; None for the machine's host name."""
    if value is None:
        return None
    if not isinstance(value, str) or not _SERVER_NAME.fullmatch(value):
        raise ValueError("must be a host name such as irc.example.org (letters, digits, '.' and '-') or null")
    return value


REDIS_EXPECTED = "must be redis://host[:port][/db], rediss://host[:port][/db] or unix:///path/to/redis.sock[?db=N]"
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def redis_url(value: object) -> str:
    """A URL redis-py reads, checked here so that config.py needs no Redis client."""
    if not isinstance(value, str):
        raise ValueError(REDIS_EXPECTED)
    url = urllib.parse.urlsplit(value)
    try:
        port = url.port  # raises on a port that is not a number 0..65535
    except ValueError:
        raise ValueError(f"the port must be 1..65535; {REDIS_EXPECTED}") from None
    if url.scheme == "unix":
        query = urllib.parse.parse_qs(url.query)
        if url.netloc or not url.path.startswith("/") or set(query) - {"db"}:
            raise ValueError(f"a Unix socket URL has an absolute path and at most ?db=N; {REDIS_EXPECTED}")
        databases = query.get("db", ["0"])
    elif url.scheme in ("redis", "rediss"):
        if not url.hostname or port == 0 or url.query:
            raise ValueError(REDIS_EXPECTED)
        databases = [url.path.strip("/") or "0"]
    else:
        raise ValueError(REDIS_EXPECTED)
    if len(databases) != 1 or not databases[0].isascii() or not databases[0].isdigit():
        raise ValueError(f"the database is a number; {REDIS_EXPECTED}")
    return value


def node_name(value: object) -> str:
    if not isinstance(value, str) or not _NODE.fullmatch(value):
        raise ValueError("must be 1-63 characters of A-Z a-z 0-9 _ . -, unique in the network, e.g. chat-a")
    return value


def key_prefix(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not value.isprintable() or " " in value:
        raise ValueError("must be 1-64 printable characters without spaces, e.g. 'chatd:'")
    return value


# Names people write for the profile's groups (OpenSSL's own aliases among them),
# so that the error can say which spelling chatd expects.
_GROUP_SPELLINGS = {
    "x25519": "X25519",
    "P-256": "prime256v1",
    "secp256r1": "prime256v1",
    "P-384": "secp384r1",
}


def groups(value: object) -> tuple[Group, ...]:
    expected = f"must be a list of one or more of {', '.join(GROUPS)}, each at most once"
    if not isinstance(value, list) or not value:
        raise ValueError(expected)
    for item in value:
        if item not in GROUPS:
            known = isinstance(item, str) and item in _GROUP_SPELLINGS
            hint = f" (chatd calls it {_GROUP_SPELLINGS[item]})" if known else ""
            raise ValueError(f"unknown group {item!r}{hint}; {expected}")
        if value.count(item) > 1:
            raise ValueError(f"{item!r} is listed twice; {expected}")
    return tuple(value)
