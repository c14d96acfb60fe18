"""Nicks: the server-wide nickname registry, for `/msg`, `chatctl kick` and `who`.

One member per nickname, compared without regard to case; the member keeps
the spelling it chose. On a node of a network, the clients of other nodes
are here too, as `Remote`s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from chatd import names
from chatd.core import protocol
from chatd.core.rooms import Member, Room
from chatd.errors import ProtocolError
from chatd.outlet import Sender, SharedDelivery


class Client(Member, Protocol):
    """A registered client, as the operator commands see it."""

    peer: str
    connected_at: float  # time.time()
    last_active: float  # time.monotonic()

    @property
    def authenticated(self) -> bool:
        """Signed in to an account, or named by a certificate with
        tls.nick_from_cert: its direct messages are kept (docs/protocol.md)."""

    @property
    def peer_ip(self) -> str:
        """Its address (what a room's address ban covers)."""

    def close(self, reason: str, text: str = "") -> None:
        """`BYE <reason> <text>` and close; callable from any thread."""

    def remove_from(self, room: Room, line: bytes) -> None:
        """Take it out of `room` (a kick or a room ban), on its own thread:
        `line` to the room's members, itself included; callable from any thread."""


class Remote:
    """A client connected to another node of the network (core/network.py), as
    this node knows it: a nickname in rooms. Nothing is delivered to it here,
    and nothing here closes it: its own node does both."""

    __slots__ = ("last_active", "nick", "node")

    peer = ""
    peer_ip = ""
    connected_at = 0.0
    authenticated = False
    account: str | None = None  # accounts are not shared between nodes yet
    shared: SharedDelivery | None = None

    def __init__(self, nick: str, node: str) -> None:
        self.nick = nick
        self.node = node
        self.last_active = 0.0

    def deliver(self, data: bytes, lines: int = 1, sender: Sender | None = None) -> None:
        pass

    def close(self, reason: str, text: str = "") -> None:
        pass

    def remove_from(self, room: Room, line: bytes) -> None:
        pass


class Nicks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, Client] = {}
        self._waiters: dict[str, list[Callable[[], None]]] = {}  # key -> called once it is free

    def __len__(self) -> int:
        return len(self._by_key)

    def claim(self, member: Client, nick: str, greeting: bytes) -> None:
        """Register `member` as `nick`. `greeting` (its `WELCOME`) is queued
        before anyone can find it, so no line can arrive ahead of it.

        Raises:
            ProtocolError: `nick_taken`.
        """
        with self._lock:
            self._take(names.nick_key(nick), nick, member)
            member.nick = nick
            member.deliver(greeting)  # only queues: no I/O under the lock

    def rename(self, member: Client, new: str) -> str:
        """Give `member` the nickname `new` (a change of case only is allowed);
        returns the old one.

        Raises:
            ProtocolError: `nick_taken`.
        """
        with self._lock:
            old = member.nick
            old_key, new_key = names.nick_key(old), names.nick_key(new)
            waiters: list[Callable[[], None]] = []
            if new_key != old_key:
                self._take(new_key, new, member)
                del self._by_key[old_key]
                waiters = self._waiters.pop(old_key, [])
            member.nick = new
        for waiter in waiters:
            waiter()
        return old

    def release(self, member: Client) -> bool:
        """Free `member`'s nickname; False if it held none."""
        key = names.nick_key(member.nick)
        with self._lock:
            if self._by_key.get(key) is not member:
                return False
            del self._by_key[key]
            waiters = self._waiters.pop(key, [])
        for waiter in waiters:
            waiter()
        return True

    def when_released(self, nick: str, callback: Callable[[], None]) -> bool:
        """Call `callback` (on the releasing thread) once `nick` is free; False,
        and no call, if it is free now. How a sign-in waits for the connection it
        replaces to have left (core/signin.py)."""
        key = names.nick_key(nick)
        with self._lock:
            if key not in self._by_key:
                return False
            self._waiters.setdefault(key, []).append(callback)
        return True

    def find(self, nick: str) -> Client | None:
        return self._by_key.get(names.nick_key(nick))

    def members(self) -> list[Client]:
        with self._lock:
            return list(self._by_key.values())

    def _take(self, key: str, nick: str, member: Client) -> None:
        if key in self._by_key:
            raise ProtocolError(protocol.NICK_TAKEN, f"The nickname {nick} is taken; try another.")
        self._by_key[key] = member
