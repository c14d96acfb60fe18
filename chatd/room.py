"""Room: the nickname registry and the fan-out of lines to its members.

The lock guards only the nickname map and the member snapshot; delivering
to members (`Member.deliver`) happens outside it (but for a new member's own
greeting), and never does socket I/O: it only queues bytes for the member's
own I/O thread.
"""

from __future__ import annotations

import threading
from typing import Protocol

from chatd import protocol
from chatd.errors import ProtocolError


class Sender(Protocol):
    """The client a line comes from, as its recipients' queues see it."""

    def pause_for_backlog(self) -> bool:
        """Stop reading this sender; False if it is already paused."""

    def resume_after_backlog(self) -> None:
        """Read this sender again (callable from any thread)."""


class Member(Protocol):
    nick: str

    def deliver(self, data: bytes, lines: int = 1, sender: Sender | None = None) -> None:
        """Queue `data` (`lines` complete lines) for sending; never blocks. A
        recipient far behind pauses `sender` until it has caught up."""


class Room:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, Member] = {}
        # Rebuilt on every join/leave so that a broadcast reads it without the lock.
        self._members: tuple[Member, ...] = ()

    def __len__(self) -> int:
        return len(self._members)

    def join(self, member: Member, nick: str, greeting: bytes = b"") -> None:
        """Register `member` as `nick`; tell the others with `JOIN`.

        `greeting` (the `WELCOME`) is queued for `member` before it becomes
        visible to any broadcast, so no other line can arrive ahead of it.

        Raises:
            ProtocolError: `nick_taken`.
        """
        with self._lock:
            self._claim(nick, member)
            member.nick = nick
            if greeting:
                member.deliver(greeting)  # only queues: no I/O under the lock
            self._members = tuple(self._by_key.values())
        self.broadcast(protocol.format_line("JOIN", nick), exclude=member)

    def rename(self, member: Member, new: str) -> str:
        """Rename `member` to `new` and tell everyone with `RENAME`; returns the old nick."""
        with self._lock:
            old = member.nick
            if protocol.nick_key(new) != protocol.nick_key(old):
                self._claim(new, member)
                del self._by_key[protocol.nick_key(old)]
            member.nick = new
        self.broadcast(protocol.format_line("RENAME", old, new))
        return old

    def leave(self, member: Member, reason: str | None) -> None:
        """Remove `member`; with a `reason`, tell the others with `LEAVE`."""
        with self._lock:
            if self._by_key.get(protocol.nick_key(member.nick)) is not member:
                return
            del self._by_key[protocol.nick_key(member.nick)]
            self._members = tuple(self._by_key.values())
        if reason is not None:
            self.broadcast(protocol.format_line("LEAVE", member.nick, reason))

    def find(self, nick: str) -> Member | None:
        return self._by_key.get(protocol.nick_key(nick))

    def nicks(self) -> list[str]:
        return [member.nick for member in self._members]

    def members(self) -> tuple[Member, ...]:
        return self._members

    def broadcast(
        self, data: bytes, lines: int = 1, exclude: Member | None = None, sender: Sender | None = None
    ) -> int:
        """Queue `data` for every member but `exclude`; returns how many got it."""
        count = 0
        for member in self._members:
            if member is not exclude:
                member.deliver(data, lines, sender)
                count += 1
        return count

    def _claim(self, nick: str, member: Member) -> None:
        key = protocol.nick_key(nick)
        if key in self._by_key:
            raise ProtocolError(protocol.NICK_TAKEN, f"The nickname {nick} is taken; try another.")
        self._by_key[key] = member
