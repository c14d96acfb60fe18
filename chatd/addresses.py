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
from typing import Final

# What a listening address in the config must look like, for its errors.
LISTEN_EXPECTED: Final = "must be host:port or [IPv6]:port, e.g. 127.0.0.1:9464, or null for off"
_DOTTED = re.compile(r"[0-9.]+")
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
