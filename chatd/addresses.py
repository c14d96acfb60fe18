"""Host and port written as one string: `host:port`, or `[IPv6]:port` with the
IPv6 address in brackets (RFC 3986's authority, as in a URL).

`split_host_port` reads what the config file says (`metrics.listen`);
`format_host_port` writes an address for a log line, `chatctl status` or a
message, the one way every part of chatd and chatctl writes it. Imports
nothing from chatd.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Final

# What a listening address in the config must look like, for its errors.
LISTEN_EXPECTED: Final = "must be host:port or [IPv6]:port, e.g. 127.0.0.1:9464, or null for off"
_DOTTED = re.compile(r"[0-9.]+")
_MAPPED: Final = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96, IPv4 clients of an IPv6 socket
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def format_host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets: `[::1]:7443`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(text: str) -> tuple[str, int]:
    """`host:port` or `[IPv6]:port` as (host, port); the host is an IP address
    or a host name, the port 0..65535 (0: any free port).

    Raises:
        ValueError: the text is neither, with what is expected.
    """
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]:")
        if not bracket:
            raise ValueError(LISTEN_EXPECTED)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address; {LISTEN_EXPECTED}") from None
    else:
        host, colon, port = text.rpartition(":")
        if not colon or not host:
            raise ValueError(LISTEN_EXPECTED)
        if ":" in host:
            raise ValueError(f"an IPv6 address goes in brackets, as in [::1]:9464; {LISTEN_EXPECTED}")
        if _DOTTED.fullmatch(host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not an IPv4 address; {LISTEN_EXPECTED}") from None
        elif not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{host!r} is not an IP address or host name; {LISTEN_EXPECTED}")
    if not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"the port must be 0..65535; {LISTEN_EXPECTED}")
    return host, int(port)


def host_of(peer: str) -> str:
    """The host of a `host:port` or `[IPv6]:port` that `format_host_port` wrote."""
    if peer.startswith("["):
        return peer[1:].partition("]")[0]
    return peer.rpartition(":")[0] or peer


def parse_ip(ip: str) -> tuple[int, int] | None:
    """`ip` as (32, its integer) for IPv4, an IPv4-mapped IPv6 address
    included, or (128, its integer) for IPv6 (a link-local scope left out);
    None if it is neither. inet_pton, not ipaddress: a tenth of the cost."""
    try:
        if ":" not in ip:
            return 32, int.from_bytes(socket.inet_pton(socket.AF_INET, ip))
        packed = socket.inet_pton(socket.AF_INET6, ip.partition("%")[0])
    except (OSError, ValueError):  # OSError: not an address; ValueError: a NUL in it
        return None
    if packed.startswith(_MAPPED):
        return 32, int.from_bytes(packed[12:])
    return 128, int.from_bytes(packed)


def source_of(ip: str, ipv6_prefix: int, parsed: tuple[int, int] | None = None) -> str:
    """What per-address limits count `ip` as (chatd/admission.py, the login
    throttles): an IPv4 address, or the IPv6 network of `ipv6_prefix` bits it is
    in (`2001:db8:1:2::/64`): a host is usually given a whole /64. Something
    that is not an address counts as itself."""
    parsed = parsed if parsed is not None else parse_ip(ip)
    if parsed is None:
        return ip
    bits, value = parsed
    if bits == 32:
        return ip if ":" not in ip else socket.inet_ntop(socket.AF_INET, value.to_bytes(4))
    network = (value >> (128 - ipv6_prefix) << (128 - ipv6_prefix)).to_bytes(16)
    return f"{socket.inet_ntop(socket.AF_INET6, network)}/{ipv6_prefix}"
