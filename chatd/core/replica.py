"""Replica: this node's chat as a replica of the network's log (issue 24).

Every node applies every entry of the shared log, in the log's order, on one
thread (the reader's, chatd/cluster/node.py): a room's events go to its
members here, with the entry's id and time; JOIN, PART, LEAVE, RENAME and
topics to those here who share the room; the nicknames and memberships of
every client of the network are kept, those of other nodes as `Remote`s, so
that `/who`, `/rooms`, `/msg` and `chatctl who` see the whole network; and
the events go into this node's own history store. Nodes that applied the
same entries hold the same rooms, members, topics and history.

A node that starts takes the network's state at one id (`load`, from the
engine's snapshot) and reads the log from the last id its history store
holds: entries up to the snapshot's id only fill the history (`remember`),
those after it are applied (`apply`).

Which of this node's clients an entry comes from, and what it completes
for them, is core/network.py's (`Locals`); what an entry is, is `Record`
(chatd/cluster/entry.py's `Entry` is one). Entries are trusted: Redis has
decided them; this module only applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import structlog

from chatd import names
from chatd.core import protocol
from chatd.core.bus import Party
from chatd.core.chat import Chat
from chatd.core.history import Event, dm_key, event_line
from chatd.core.nicks import Client, Remote
from chatd.core.rooms import Room
from chatd.errors import ProtocolError

log = structlog.get_logger(__name__)

_ANY_ROOMS: Final = 1 << 62  # the network has decided: no local limit applies to an entry
_SAYS: Final = frozenset({"msg", "action"})
_EVENTS: Final = frozenset({"msg", "action", "topic"})


class Record(Protocol):
    """One entry of the log (chatd/cluster/entry.py: fields and kinds)."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def target(self) -> str: ...  # room key, or a DM recipient's nickname key
    @property
    def shown(self) -> str: ...  # the room as created, or the recipient's spelling
    @property
    def nick(self) -> str: ...
    @property
    def text(self) -> bytes: ...
    @property
    def time_ms(self) -> int: ...
    @property
    def origin(self) -> str: ...  # node:epoch
    @property
    def conn(self) -> int: ...


@dataclass(frozen=True)
class Holder:
    nick: str  # as spelled
    origin: str  # node:epoch
    conn: int


@dataclass(frozen=True)
class RoomState:
    name: str  # as created
    topic: str = ""
    topic_by: str = "*"
    members: list[str] = field(default_factory=list)  # nickname keys


@dataclass(frozen=True)
class NetworkState:
    """The network at one id (`head`): every nickname and every room."""

    head: int
    nicks: list[Holder] = field(default_factory=list)
    rooms: list[RoomState] = field(default_factory=list)


class Locals(Protocol):
    """This node's own clients, as the replica asks about them (core/network.py)."""

    def party(self, origin: str, conn: int) -> Party | None:
        """The client of this node an entry comes from, if it is one."""

    def greeting(self, conn: int) -> bytes:
        """The `WELCOME` of this node's connection `conn`, registering."""

    def applied(self, record: Record, value: object) -> None:
        """`record` has taken effect here; `value`: what its operation gives
        (the room of a join, the old nickname of a rename)."""


def node_of(origin: str) -> str:
    return origin.rpartition(":")[0]


class Replica:
    def __init__(self, chat: Chat, locals: Locals) -> None:
        self._chat = chat
        self._locals = locals
        # Nickname key -> the rooms it is in (by key): what a leave takes it out of.
        self._rooms_of: dict[str, dict[str, Room]] = {}
        self._handlers = {
            "nick": self._nick,
            "rename": self._rename,
            "join": self._join,
            "part": self._part,
            "leave": self._leave,
            "release": self._leave,
            "kick": self._leave,
            "topic": self._topic,
            "dm": self._direct,
            "info": self._info,
        }

    @property
    def keeps_dms(self) -> bool:
        """DMs are kept between authenticated parties only (docs/protocol.md);
        on a network that is when every client is named by its certificate."""
        chat = self._chat
        return chat.keeps_history and chat.config.tls.nick_from_cert

    # -- start-up ----------------------------------------------------------------------

    def load(self, state: NetworkState) -> None:
        """The network as it is at `state.head`, into a chat with no clients yet."""
        chat = self._chat
        for holder in state.nicks:
            chat.nicks.claim(Remote(holder.nick, node_of(holder.origin)), holder.nick, b"")
            self._rooms_of[names.nick_key(holder.nick)] = {}
        with chat.rooms.changing:
            for stated in state.rooms:
                room = chat.rooms.join(stated.name, True, _ANY_ROOMS)
                if stated.topic:
                    room.topic, room.topic_by = stated.topic, stated.topic_by
                with room.lock:
                    for key in stated.members:
                        member = chat.nicks.find(key)
                        if member is not None and member not in room.others:
                            chat.rooms.add_other(room, member)
                            self._rooms_of.setdefault(key, {})[room.key] = room

    def remember(self, records: Sequence[Record]) -> None:
        """Entries from before the snapshot: their events into the history only."""
        chat = self._chat
        store = chat.history.store
        for record in records:
            if record.kind in _EVENTS and chat.keeps_history:
                event = _event(record, record.target, record.shown)
                store.append(event)
                chat.rooms.remember(event)
            elif record.kind == "dm" and self.keeps_dms:
                store.append(_event(record, dm_key(record.nick, record.shown), record.shown))

    # -- entries -----------------------------------------------------------------------

    def apply(self, records: Sequence[Record]) -> None:
        """Entries after the snapshot, in id order. The events of one append
        (consecutive, of one room, kind and connection) go out as one block."""
        block: list[Record] = []
        for record in records:
            if record.kind in _SAYS:
                if block and not _same_block(block[0], record):
                    self._say(block)
                    block = []
                block.append(record)
                continue
            if block:
                self._say(block)
                block = []
            handler = self._handlers.get(record.kind)
            if handler is not None:  # `raise`: ids raised, nothing to apply
                handler(record)
        if block:
            self._say(block)

    def _say(self, block: list[Record]) -> None:
        first = block[0]
        room = self._chat.rooms.find(first.target)
        if room is None:
            log.error("cluster_entry_unplaced", id=first.id, kind=first.kind, room=first.shown)
            return
        events = [_event(record, room.key, room.name) for record in block]
        with room.lock:
            # No sender to pause: the sender's transport may only be paused from its
            # own thread, and this is the reader's (docs/architecture.md, "Cluster").
            self._chat.publish(room, events, None)

    def _nick(self, record: Record) -> None:
        chat = self._chat
        party = self._locals.party(record.origin, record.conn)
        holder: Client = party if party is not None else Remote(record.nick, node_of(record.origin))
        greeting = self._locals.greeting(record.conn) if party is not None else b""
        try:
            chat.nicks.claim(holder, record.nick, greeting)
        except ProtocolError:
            log.error("cluster_replica_diverged", id=record.id, kind="nick", nick=record.nick)
            return
        self._rooms_of[names.nick_key(record.nick)] = {}
        self._locals.applied(record, None)

    def _rename(self, record: Record) -> None:
        holder = self._holder(record)
        if holder is None:
            return
        new = record.text.decode()
        rooms = self._rooms_of.pop(names.nick_key(record.nick), {})
        try:
            old = self._chat.rename(holder, list(rooms.values()), new)
        except ProtocolError:
            log.error("cluster_replica_diverged", id=record.id, kind="rename", nick=new)
            old = record.nick
        self._rooms_of[names.nick_key(new)] = rooms
        self._locals.applied(record, old)

    def _join(self, record: Record) -> None:
        holder = self._holder(record)
        if holder is None:
            return
        chat = self._chat
        with chat.rooms.changing:
            room = chat.rooms.join(record.shown, True, _ANY_ROOMS)
            if isinstance(holder, Remote):
                with room.lock:
                    chat.rooms.add_other(room, holder)
                    room.broadcast(protocol.format_line("JOIN", room.name, holder.nick))
            else:
                chat.seat(holder, room, None)
        self._rooms_of.setdefault(names.nick_key(holder.nick), {})[room.key] = room
        self._locals.applied(record, room)

    def _part(self, record: Record) -> None:
        holder = self._holder(record)
        room = self._chat.rooms.find(record.target)
        if holder is None or room is None:
            return
        self._chat.part(holder, room, record.text.decode())
        self._rooms_of.get(names.nick_key(holder.nick), {}).pop(room.key, None)
        self._locals.applied(record, None)

    def _leave(self, record: Record) -> None:
        """`leave` (a reason), `release` (none) and `kick` (an operator's text)."""
        holder = self._holder(record)
        if holder is None:
            return
        text = record.text.decode()
        reason = f"kicked {text}".rstrip() if record.kind == "kick" else text or None
        rooms = self._rooms_of.pop(names.nick_key(holder.nick), {})
        self._chat.leave(holder, list(rooms.values()), reason)
        if record.kind == "kick":
            holder.close("kicked", text)  # this node's client (a Remote's node closes its own)
        self._locals.applied(record, None)

    def _topic(self, record: Record) -> None:
        chat = self._chat
        room = chat.rooms.find(record.target)
        if room is None:
            return
        text = record.text.decode()
        with chat.rooms.changing:
            room.topic, room.topic_by, room.topic_ms = text, record.nick, record.time_ms
            with room.lock:
                chat.publish(room, [_event(record, room.key, room.name)], None)
        self._locals.applied(record, None)

    def _direct(self, record: Record) -> None:
        chat = self._chat
        recipient = chat.nicks.find(record.target)
        event = _event(record, "", record.shown)
        line = event_line(event, chat.history.clock)
        if recipient is not None:
            recipient.deliver(line)
        sender = self._locals.party(record.origin, record.conn)
        if sender is not None and sender is not recipient:
            sender.deliver(line)
        if self.keeps_dms:
            chat.history.store.append(_event(record, dm_key(record.nick, record.shown), record.shown))

    def _info(self, record: Record) -> None:
        self._chat.broadcast(protocol.format_line("INFO", record.text.decode()))

    def _holder(self, record: Record) -> Client | None:
        holder = self._chat.nicks.find(record.nick)
        if holder is None:
            log.error("cluster_replica_diverged", id=record.id, kind=record.kind, nick=record.nick)
        return holder


def _same_block(first: Record, record: Record) -> bool:
    return (
        record.conn == first.conn
        and record.target == first.target
        and record.kind == first.kind
        and record.origin == first.origin
    )


def _event(record: Record, target: str, shown: str) -> Event:
    return Event(record.id, record.time_ms, target, shown, record.nick, record.kind, record.text)
