"""Rooms: who is in which room, the topics, the last events, and the fan-out
of a room's lines.

The lock (`Rooms.changing`) guards the room table and membership changes;
each room keeps an immutable tuple of its members, rebuilt on join and part.
chat.py holds the lock while it changes membership *and* queues the lines
that announce the change, so that every member sees one order of JOIN, PART
and USERS. Each room's own lock (`Room.lock`, taken after `changing`, never
before) orders its events: ids are handed out and lines queued under it, and
a joiner is added and sent the backlog under it, so the backlog and the live
lines meet with no gap and no overlap. Delivering (`Member.deliver`) never
blocks: it appends to the member's queue and at most wakes its I/O thread
with a non-blocking write.

On a node of a network (core/network.py) a room also lists the members
connected to other nodes (`Room.others`): they count and are named (`USERS`,
`/rooms`), but nothing is delivered to them here; their own node does that.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from typing import Final, Protocol

from chatd import names
from chatd.core import protocol
from chatd.core.history import Event, StoredRoom
from chatd.core.registry import Registration
from chatd.errors import ProtocolError
from chatd.outlet import Deliver, DeliveryGroup, Outlet, Sender, SharedDelivery

DORMANT_MAX: Final = 1000  # ended rooms with history kept in memory for a quick return


class Member(Protocol):
    nick: str
    account: str | None  # the account's key when signed in to one (its roles: core/registry.py)
    shared: SharedDelivery | None  # a room delivers to its group's members in one call

    def deliver(self, data: bytes, lines: int = 1, sender: Sender | None = None) -> None:
        """Queue `data` (`lines` complete lines) for sending; never blocks. A
        recipient far behind pauses `sender` until it has caught up."""


class Room:
    def __init__(self, name: str, permanent: bool, backlog: int = 0) -> None:
        self.name = name  # as created
        self.key = names.room_key(name)
        self.permanent = permanent
        self.durable = False  # has history: when it ends, it sleeps (Rooms._dormant)
        self.older = False  # events older than `recent` may exist (said in the backlog's HISTORY)
        self.topic = ""
        self.topic_by = "*"
        self.topic_ms = 0  # when the topic was set (ms since the epoch), 0: before this run
        # The member whose join created this room (or woke it), while it stays:
        # what IRC shows as the channel's operator (`@`). Permanent rooms have none.
        self.creator: Member | None = None
        # Its owner, roles and flags when it is registered (core/registry.py), set
        # as members join (Chat.join) and on /room register and drop.
        self.registration: Registration | None = None
        self.lock = threading.Lock()  # the order of this room's events
        self.recent: collections.deque[Event] = collections.deque(maxlen=backlog)
        # Rebuilt under both locks on every join and part (`set_members`); read without them.
        self.members: tuple[Member, ...] = ()
        self.others: tuple[Member, ...] = ()  # members on other nodes: named, never delivered to
        # The members' `deliver`s, taken when they joined: one per member, but one
        # per delivery group for all of its members (`_deliveries`).
        # NOTE: the fan-out loop calls these directly. `member.deliver(...)` on a
        # session, whose `deliver` is an instance attribute (its outlet's bound
        # method), is a lookup CPython 3.11 cannot specialise: ~180 more
        # instructions per member per broadcast (bench/INSTRUCTIONS.md).
        self._deliveries: tuple[tuple[Deliver, ...], int] = ((), 0)  # and how many members they reach

    def __len__(self) -> int:
        return len(self.members) + len(self.others)

    def set_members(self, members: tuple[Member, ...]) -> None:
        """Under both locks: the new member tuple, and their `deliver`s."""
        self._deliveries = (_deliveries(members), len(members))
        self.members = members

    def nicks(self) -> list[str]:
        return [member.nick for member in (*self.members, *self.others)]

    def broadcast(
        self, data: bytes, lines: int = 1, exclude: Member | None = None, sender: Sender | None = None
    ) -> int:
        """Queue `data` for every member but `exclude`; returns how many got it."""
        if exclude is None:
            deliveries, count = self._deliveries  # one snapshot, like `members`
            for deliver in deliveries:
                deliver(data, lines, sender)
            return count
        count = 0
        for member in self.members:
            if member is not exclude:
                member.deliver(data, lines, sender)
                count += 1
        return count


def _deliveries(members: tuple[Member, ...]) -> tuple[Deliver, ...]:
    """A `deliver` for each member, but one for all the members of a delivery group."""
    alone = [member.deliver for member in members if member.shared is None]
    if len(alone) == len(members):
        return tuple(alone)
    groups: dict[DeliveryGroup, list[Outlet]] = {}
    for member in members:
        shared = member.shared
        if shared is not None:
            groups.setdefault(shared.group, []).append(shared.outlet)
    return (*alone, *(group.deliver_to(tuple(outlets)) for group, outlets in groups.items()))


class Rooms:
    """Every room of the server, and the limits on how many there are."""

    def __init__(
        self,
        permanent: Iterable[str] = (),
        backlog: int = 0,
        recall: Callable[[str], StoredRoom | None] | None = None,
    ) -> None:
        # Re-entrant: Chat holds it around a join or part and what announces it.
        self.changing = threading.RLock()
        self.backlog = backlog  # events each room keeps in memory for joiners
        self._by_key: dict[str, Room] = {}
        # Rooms that ended with history, most recently ended last: joining one
        # brings back its topic and backlog. Not counted as rooms. Beyond these,
        # `recall` asks the history store.
        self._dormant: collections.OrderedDict[str, Room] = collections.OrderedDict()
        self._recall = recall
        self.set_permanent(permanent)

    def set_backlog(self, backlog: int) -> None:
        with self.changing:
            self.backlog = backlog
            for room in self._by_key.values():
                with room.lock:
                    room.older = room.older or bool(room.recent)
                    room.recent = collections.deque(room.recent, maxlen=backlog)

    def restore(self, stored: StoredRoom) -> None:
        """A room from the history store, at start-up: a permanent one gets its
        topic and backlog back; any other sleeps until someone joins it."""
        with self.changing:
            room = self._by_key.get(names.room_key(stored.name))
            if room is None:
                self._sleep(self._revive(stored))
            else:
                self._fill(room, stored)

    def _revive(self, stored: StoredRoom) -> Room:
        room = Room(stored.name, False, self.backlog)
        self._fill(room, stored)
        return room

    @staticmethod
    def _fill(room: Room, stored: StoredRoom) -> None:
        room.durable = True
        room.topic, room.topic_by = stored.topic, stored.topic_by
        room.recent.extend(stored.recent)
        room.older = len(room.recent) == room.recent.maxlen

    def _sleep(self, room: Room) -> None:
        self._dormant[room.key] = room
        self._dormant.move_to_end(room.key)
        while len(self._dormant) > DORMANT_MAX:
            self._dormant.popitem(last=False)

    def __len__(self) -> int:
        return len(self._by_key)

    def set_permanent(self, permanent: Iterable[str]) -> None:
        """Make these rooms exist always (a reload may add some); rooms no longer
        listed stay while they have members."""
        keys = {names.room_key(name): name for name in permanent}
        with self.changing:
            for room in self._by_key.values():
                room.permanent = names.room_key(room.name) in keys
            for key, name in keys.items():
                self._by_key.setdefault(key, Room(name, True, self.backlog))
            for key in [k for k, room in self._by_key.items() if not len(room) and not room.permanent]:
                self._end(self._by_key[key])

    def find(self, name: str) -> Room | None:
        return self._by_key.get(names.room_key(name))

    def all(self) -> list[Room]:
        return sorted(self._by_key.values(), key=lambda room: room.name.lower())

    def join(self, name: str, allow_create: bool, max_rooms: int) -> Room:
        """Room `name`, created if allowed, for a member to join (`add`).

        Raises:
            ProtocolError: `no_such_room` or `too_many_rooms`.
        """
        key = names.room_key(name)
        with self.changing:
            room = self._by_key.get(key)
            if room is None:
                if not allow_create:
                    raise ProtocolError(protocol.NO_SUCH_ROOM, f"There is no room {name}.")
                if len(self._by_key) >= max_rooms:
                    raise ProtocolError(protocol.TOO_MANY_ROOMS, "The server has as many rooms as it allows.")
                woken = self._wake(key)  # (a Room with no members is falsy: no `or` here)
                room = self._by_key[key] = woken if woken is not None else Room(name, False, self.backlog)
        return room

    def _wake(self, key: str) -> Room | None:
        """The ended room `key` with its topic and backlog, if it had history."""
        room = self._dormant.pop(key, None)
        if room is None and self._recall is not None:
            stored = self._recall(key)  # a small indexed read; only for rooms long ended
            room = self._revive(stored) if stored is not None else None
        if room is not None and len(room.recent) != room.recent.maxlen:
            room.older = room.older or bool(room.recent)  # the backlog size changed since
            room.recent = collections.deque(room.recent, maxlen=self.backlog)
        return room

    def _end(self, room: Room) -> None:
        del self._by_key[room.key]
        if room.durable:
            self._sleep(room)

    @staticmethod
    def add(room: Room, member: Member) -> None:
        """With `changing` and `room.lock` held: `member` is in `room` from now on.
        A room that is not permanent and has no members (on any node) was just
        made (or woken) by this join: `member` is its creator."""
        if not len(room) and not room.permanent:
            room.creator = member
        room.set_members((*room.members, member))

    @staticmethod
    def add_other(room: Room, member: Member) -> None:
        """With `changing` and `room.lock` held: `member`, a client of another
        node, is in `room` from now on (named, not delivered to); its creator
        if the room had no members, as `add` says."""
        if not len(room) and not room.permanent:
            room.creator = member
        room.others = (*room.others, member)

    def part(self, member: Member, room: Room) -> tuple[Member, ...]:
        """Take `member` (of this node or another) out of `room`; an empty room
        that is not permanent ends. Returns who of this node was in the room at
        that moment, `member` included if it is one."""
        with self.changing:
            with room.lock:
                members = room.members
                if member in room.others:
                    room.others = tuple(m for m in room.others if m is not member)
                else:
                    room.set_members(tuple(m for m in members if m is not member))
                if room.creator is member:
                    room.creator = None
            if not len(room) and not room.permanent and self._by_key.get(room.key) is room:
                self._end(room)
        return members

    def remember(self, event: Event) -> None:
        """An event said while this node was away (core/replica.py): into the
        recent events of its room, if the room is here or asleep."""
        room = self._by_key.get(event.target)
        if room is None:  # (a Room with no members is falsy: no `or` here)
            room = self._dormant.get(event.target)
        if room is not None:
            with room.lock:
                room.recent.append(event)
                room.durable = True
