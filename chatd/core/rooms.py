"""Rooms: who is in which room, the topics, and the fan-out of a room's lines.

The lock (`Rooms.changing`) guards membership and the room table; each room
keeps an immutable tuple of its members, rebuilt on join and part, so a
broadcast reads it without any lock. chat.py holds the lock while it changes
membership *and* queues the lines that announce the change, so that every
member sees one order of JOIN, PART and USERS. Delivering (`Member.deliver`)
never blocks: it appends to the member's queue and at most wakes its I/O
thread with a non-blocking write.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, Protocol

from chatd.core import protocol
from chatd.errors import ProtocolError


class Sender(Protocol):
    """The transport of the client a line comes from, as its recipients see it."""

    def pause_for_backlog(self) -> bool:
        """Stop reading this sender; False if it is already paused."""

    def resume_after_backlog(self) -> None:
        """Read this sender again (callable from any thread)."""


class Member(Protocol):
    nick: str

    def deliver(self, data: bytes, lines: int = 1, sender: Sender | None = None) -> None:
        """Queue `data` (`lines` complete lines) for sending; never blocks. A
        recipient far behind pauses `sender` until it has caught up."""


Deliver = Callable[[bytes, int, Sender | None], None]  # a member's `deliver`


class Room:
    def __init__(self, name: str, permanent: bool) -> None:
        self.name = name  # as created
        self.label = name.encode()
        self.permanent = permanent
        self.topic = ""
        self.topic_by = "*"
        # Rebuilt under Rooms' lock on every join and part (`_set_members`); read without it.
        self.members: tuple[Member, ...] = ()
        # The members' `deliver`, in the same order, taken when they joined.
        # NOTE: the fan-out loop calls these directly. `member.deliver(...)` on a
        # session, whose `deliver` is an instance attribute (its outlet's bound
        # method), is a method lookup CPython 3.11 cannot specialise: ~180 more
        # instructions per member per broadcast (bench/INSTRUCTIONS.md).
        self._deliveries: tuple[Deliver, ...] = ()

    def __len__(self) -> int:
        return len(self.members)

    def nicks(self) -> list[str]:
        return [member.nick for member in self.members]

    def broadcast(
        self, data: bytes, lines: int = 1, exclude: Member | None = None, sender: Sender | None = None
    ) -> int:
        """Queue `data` for every member but `exclude`; returns how many got it."""
        if exclude is None:
            deliveries = self._deliveries  # one snapshot, like `members`
            for deliver in deliveries:
                deliver(data, lines, sender)
            return len(deliveries)
        count = 0
        for member in self.members:
            if member is not exclude:
                member.deliver(data, lines, sender)
                count += 1
        return count

    def _set_members(self, members: tuple[Member, ...]) -> None:
        """Under Rooms' lock: the new member tuple, and their `deliver`s."""
        self._deliveries = tuple(member.deliver for member in members)
        self.members = members


class Rooms:
    """Every room of the server, and the limits on how many there are."""

    def __init__(self, permanent: Iterable[str] = ()) -> None:
        # Re-entrant: Chat holds it around a join or part and what announces it.
        self.changing = threading.RLock()
        self._by_key: dict[str, Room] = {}
        self.set_permanent(permanent)

    def __len__(self) -> int:
        return len(self._by_key)

    def set_permanent(self, names: Iterable[str]) -> None:
        """Make these rooms exist always (a reload may add some); rooms no longer
        listed stay while they have members."""
        keys = {protocol.room_key(name): name for name in names}
        with self.changing:
            for room in self._by_key.values():
                room.permanent = protocol.room_key(room.name) in keys
            for key, name in keys.items():
                self._by_key.setdefault(key, Room(name, permanent=True))
            for key in [k for k, room in self._by_key.items() if not room.members and not room.permanent]:
                del self._by_key[key]

    def find(self, name: str) -> Room | None:
        return self._by_key.get(protocol.room_key(name))

    def all(self) -> list[Room]:
        return sorted(self._by_key.values(), key=lambda room: room.name.lower())

    def join(self, member: Member, name: str, allow_create: bool, max_rooms: int) -> Room:
        """Add `member` to room `name`, creating it if allowed; the caller has
        checked that the member is not in it yet.

        Raises:
            ProtocolError: `no_such_room` or `too_many_rooms`.
        """
        key = protocol.room_key(name)
        with self.changing:
            room = self._by_key.get(key)
            if room is None:
                if not allow_create:
                    raise ProtocolError(protocol.NO_SUCH_ROOM, f"There is no room {name}.")
                if len(self._by_key) >= max_rooms:
                    raise ProtocolError(
                        protocol.TOO_MANY_ROOMS, "The server has as many rooms as it allows."
                    )
                room = self._by_key[key] = Room(name, permanent=False)
            room._set_members((*room.members, member))
        return room

    def part(self, member: Member, room: Room) -> tuple[Member, ...]:
        """Take `member` out of `room`; an empty room that is not permanent ends.
        Returns who was in the room at that moment, `member` included."""
        with self.changing:
            members = room.members
            room._set_members(tuple(m for m in members if m is not member))
            key = protocol.room_key(room.name)
            if not room.members and not room.permanent and self._by_key.get(key) is room:
                del self._by_key[key]
        return members
