"""The `irc:` section of the configuration (issue 23, docs/irc.md): the IRC
listener's address, the server name it gives itself, and how much of a
room's backlog a join replays.

config.py loads it like every other section (`SCHEMA` here is its entry)
and asks `check_irc` whether its port collides with the other listeners'.
The listener itself: chatd/irc_listener.py.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from chatd import config_values as values
from chatd.addresses import split_host_port


@dataclass(frozen=True)
class IrcConfig:
    """`irc:` (docs/irc.md): the IRC listener, TLS only, with the `tls.*` settings."""

    # host:port or [IPv6]:port, as written (checked by `values.listen_address`); None: off.
    # Off when absent, so that an older config file opens no new port; the
    # shipped config/chatd.yaml turns it on at 127.0.0.1:6697.
    listen: str | None = None
    server_name: str | None = None  # the source of the server's IRC lines; None: the host name
    backlog: int = 50  # events replayed as PRIVMSGs on join, to clients that show server-time

    @property
    def address(self) -> tuple[str, int] | None:
        return None if self.listen is None else split_host_port(self.listen)

    @property
    def name(self) -> str:
        return self.server_name or socket.gethostname()


SCHEMA: tuple[type, dict[str, Any]] = (
    IrcConfig,
    {"listen": values.listen_address, "server_name": values.server_name, "backlog": values.integer(0, 500)},
)


def check_irc(irc: IrcConfig, taken: list[tuple[str, tuple[str, int]]], wildcards: tuple[str, ...]) -> str | None:
    """The IRC listener may not take another listener's port (`taken`: each
    one's dotted key and address): None, or the problem with `irc.listen`."""
    address = irc.address
    if address is None or address[1] == 0:
        return None
    for key, (host, port) in taken:
        if port == address[1] and (host == address[0] or host in wildcards or address[0] in wildcards):
            return f"irc.listen: the port of {key} ({port}); choose another port (got {irc.listen!r})"
    return None
