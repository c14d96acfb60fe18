"""Opening a listening socket for an address from the config."""

from __future__ import annotations

import socket


def listen_on(host: str, port: int, backlog: int, reuse_port: bool = False) -> socket.socket:
    """A non-blocking TCP listener on `host`:`port` (the first address it
    resolves to); `::` also takes IPv4 where the system allows it. With
    `reuse_port` (SO_REUSEPORT), other processes of the same user may listen
    on the same port with it too, and the kernel spreads new connections
    over them (several chatd nodes on one machine).

    Raises:
        OSError: the address cannot be resolved or bound (e.g. in use).
    """
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    dualstack = family == socket.AF_INET6 and address[0] == "::" and socket.has_dualstack_ipv6()
    listener = socket.create_server(
        address, family=family, backlog=backlog, dualstack_ipv6=dualstack, reuse_port=reuse_port
    )
    listener.setblocking(False)
    return listener
