"""The cluster engine's exceptions. Imports nothing.

Callers tell three outcomes apart: a call Redis refused on purpose
(`Refused`, with `Fenced` the one that ends a node's incarnation), a call
that was never sent (`Unavailable`: safe to send again), and a call that was
sent but got no reply (`Interrupted`: it may or may not have run, and only
the log can say).
"""

from __future__ import annotations


class ClusterError(Exception):
    """Something about Redis or the cluster went wrong."""


class Refused(ClusterError):
    """A script said no. `code` is a docs/protocol.md ERR code where one fits
    (nick_taken, no_such_room, too_many_rooms, not_in_room, no_such_nick) or
    the engine's own: fenced, not_owner (the connection no longer holds the
    nickname: kicked or reaped), already_in, node_taken."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code if not detail else f"{code} ({detail})")
        self.code = code
        self.detail = detail


class Fenced(Refused):
    """The caller's epoch no longer holds the node's lease: it must stop
    serving and register again."""

    def __init__(self) -> None:
        super().__init__("fenced")


class Unavailable(ClusterError):
    """Redis could not be reached; nothing was sent."""


class Interrupted(ClusterError):
    """The connection broke after the calls were sent and before all their
    replies came; `replies` holds those that did, in order."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.replies: list[object] = []
