"""Operations: what the operator's commands read and do, for the control socket.

`Operations` is the `Operator` that chatd/control.py serves: `status`,
`who`, `rooms`, `kick`, `broadcast`, and `reload` (which chatd/reload.py
does). `status` reads every figure from one `Snapshot` (chatd/stats.py), the
same reading a scrape of `/metrics` gets, so its fields never come from two
walks of the connections at two moments. The history store's own figures
(`history`) are its report, read beside it.

What lives elsewhere: the socket, request parsing and the replies' JSON
(chatd/control.py); the counters themselves (chatd/stats.py says where each
is kept); how `chatctl` shows the results (chatctl/control.py).
"""

from __future__ import annotations

import datetime
import os
import re
import time
from typing import Protocol

from chatd import __version__
from chatd.config import Config
from chatd.core.chat import Chat
from chatd.core.nicks import Remote
from chatd.stats import Snapshot, headline

# C0, DEL and C1 (a terminal takes \x9b as CSI): what client text may not contain either.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Daemon(Protocol):
    """What the operations read of the running server (chatd.server.Server)."""

    chat: Chat
    address: tuple[str, int]  # where the chat port listens
    started: float  # time.monotonic() when the server was made
    metrics_address: str | None  # where /metrics is served, once it is

    @property
    def config(self) -> Config: ...

    def snapshot(self) -> Snapshot: ...

    def reload(self) -> dict[str, object]: ...


class Cluster(Protocol):
    """The daemon as a node of a network (chatd.cluster.node.Node)."""

    name: str

    def status(self) -> dict[str, object]: ...


class Operations:
    """The operator's view of the daemon and the actions on it (control.Operator).
    On a node of a network, `who`, `kick` and `broadcast` reach the whole
    network; `status` is this node's, with the cluster's health."""

    def __init__(self, daemon: Daemon, cluster: Cluster | None = None) -> None:
        self._daemon = daemon
        self._cluster = cluster

    def status(self) -> dict[str, object]:
        """The figures of `chatctl status`: its first fields, then `headline`'s."""
        daemon, chat = self._daemon, self._daemon.chat
        snapshot = daemon.snapshot()
        cluster = {"cluster": self._cluster.status()} if self._cluster is not None else {}
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - daemon.started, 1),
            "listening": f"{daemon.address[0]}:{daemon.address[1]}",
            "config_file": str(daemon.config.path),
            "clients": snapshot.nicks,
            "rooms": snapshot.rooms,
            "connections": snapshot.connections,
            "messages_in": snapshot.messages_in,
            "messages_out": snapshot.lines_delivered,
            "tls_handshake_failures": snapshot.tls_handshake_failures,
            "rejected": snapshot.rejected,
            "history": chat.history.store.stats() if chat.keeps_history else None,
            "metrics": daemon.metrics_address or "off",
            **headline(snapshot),
            "accounts": _accounts_status(snapshot),
            **cluster,
        }

    def who(self) -> list[dict[str, object]]:
        """Each registered client, by nickname regardless of case; on a network,
        every node's, each with its `node` (those of other nodes with no peer)."""
        now = time.monotonic()
        clients: list[dict[str, object]] = []
        here = self._cluster.name if self._cluster is not None else None
        for client in self._daemon.chat.nicks.members():
            if isinstance(client, Remote):
                clients.append({"nick": client.nick, "peer": "", "connected_since": "", "idle_s": 0.0})
                clients[-1]["node"] = client.node
                continue
            since = datetime.datetime.fromtimestamp(client.connected_at, datetime.UTC)
            clients.append(
                {
                    "nick": client.nick,
                    "peer": client.peer,
                    "connected_since": since.isoformat(timespec="seconds"),
                    "idle_s": round(now - client.last_active, 1),
                }
            )
            if here is not None:
                clients[-1]["node"] = here
        return sorted(clients, key=lambda c: str(c["nick"]).lower())

    def rooms(self) -> list[dict[str, object]]:
        return [
            {"room": room.name, "members": sorted(room.nicks(), key=str.lower), "topic": room.topic}
            for room in self._daemon.chat.rooms.all()
        ]

    def kick(self, nick: str, reason: str) -> bool:
        """`BYE kicked <reason>` to `nick`, on whichever node; False when nobody has that nickname."""
        return self._daemon.chat.bus.kick(nick, _one_line(reason))

    def broadcast(self, text: str) -> int:
        """`INFO <text>` to every registered client (of the network); returns how many."""
        return self._daemon.chat.bus.broadcast(_one_line(text))

    def reload(self) -> dict[str, object]:
        return self._daemon.reload()


def _accounts_status(snapshot: Snapshot) -> dict[str, object] | None:
    """The accounts' figures for `chatctl status` (None: accounts are off)."""
    figures = snapshot.accounts
    if figures is None:
        return None
    logins = {f"{m}_{r}": n for (m, r), n in figures.logins.items() if n}
    return {
        "accounts": figures.accounts,
        "disabled": figures.disabled,
        "tokens": figures.tokens,
        "password_hashes": figures.hashes,
        "auth_queue": figures.queue_waiting,
        "throttled": figures.throttled,
        "logins": logins,
    }


def _one_line(text: str) -> str:
    """Operator text goes on the wire inside one line: no control characters."""
    return _CONTROL_CHARS.sub(" ", text).strip()
