"""Opening a listening socket for an address from the config."""

from __future__ import annotations

import socket


def listen_on(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking TCP listener on `host`:`port` (the first address it
    resolves to); `::` also takes IPv4 where the system allows it.

    Raises:
        OSError: the address cannot be resolved or bound (e.g. in use).
    """
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    dualstack = family == socket.AF_INET6 and address[0] == "::" and socket.has_dualstack_ipv6()
    listener = socket.create_server(address, family=family, backlog=backlog, dualstack_ipv6=dualstack)
    listener.setblocking(False)
    return listener
