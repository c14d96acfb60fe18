"""Web origins (RFC 6454): `scheme://host[:port]`, parsed strictly, in one
place, for `web.allowed_origins` (config.py) and for the `Origin` and `Host`
headers of a WebSocket upgrade (transport/http.py).

An origin is compared as its key: lower case, without its scheme's default
port, so that two spellings of one origin compare equal. What is not
exactly an origin is refused, not read leniently: a browser sends
`https://host[:port]` and nothing else, so userinfo (`https://a@b`), a path,
a query or a fragment in an `Origin` can only come from something that is
not a browser page of that origin. No I/O, no configuration here.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

SCHEMES: Final = ("https", "http")
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_SHAPE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)
_AUTHORITY: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?)(?::([0-9]{1,5}))?")


def origin_key(scheme: str, host: str, port: int | None) -> str:
    """An origin as `scheme://host[:port]`, lower case, without its scheme's default port."""
    scheme, host = scheme.lower(), host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6, bracketed as in a URL
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_origin(text: str) -> str:
    """The key of the origin `text` (see `origin_key`).

    Raises:
        ValueError: `text` is not exactly `http(s)://host[:port]`; the message
            says what is wrong, to follow the text (`f"{text!r} {error}"`).
    """
    shape = _SHAPE.fullmatch(text)
    if shape is None or shape.group(1).lower() not in SCHEMES:
        raise ValueError("is not an origin (scheme http or https and a host)")
    scheme, authority, rest = shape.groups()
    if rest or "@" in authority:
        raise ValueError("has more than scheme, host and port")
    parts = _AUTHORITY.fullmatch(authority)
    if parts is None:
        raise ValueError("is not an origin (a host name, an IPv4 address or an [IPv6] address, then :port if any)")
    host, port_text = parts.groups()
    if host.startswith("["):
        try:
            host = f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            raise ValueError("is not an origin (not an IPv6 address between the brackets)") from None
    port = None if port_text is None else int(port_text)
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("is not an origin (the port must be 1-65535)")
    return origin_key(scheme, host, port)


def origin_or_none(text: str) -> str | None:
    """The key of the origin `text`, or None if it is not exactly an origin."""
    try:
        return parse_origin(text)
    except ValueError:
        return None
