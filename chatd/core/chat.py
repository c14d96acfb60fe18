"""Chat: the state every session shares (nicknames, rooms, history, the
config) and the operations that touch more than one client: saying something
in a room, joining, parting, leaving the server, renaming, topics, and what
the operator commands ask for.

Announcements follow docs/protocol.md: a room's events go to its members; a
client that leaves the server, or is renamed, is announced once to each
client that shares at least one room with it, however many rooms that is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from chatd import names
from chatd.config import Config
from chatd.core import protocol
from chatd.core.accounts import Accounts
from chatd.core.bus import Bus, Done, Party, Refused
from chatd.core.history import (
    DirectLookups,
    Event,
    EventStore,
    History,
    Lookups,
    NoStore,
    StoredRoom,
    dm_key,
    event_line,
    owned_dm_key,
)
from chatd.core.identities import Identities
from chatd.core.nicks import Client, Nicks
from chatd.core.registry import Registration, Registry, admission
from chatd.core.room_lines import flags_line, history_block, roles_line, topic_line
from chatd.core.rooms import Member, Room, Rooms
from chatd.errors import ProtocolError
from chatd.outlet import Sender


class Chat:
    def __init__(
        self,
        config: Config,
        store: EventStore | None = None,
        *,
        lookups: Lookups | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        accounts: Accounts | None = None,
        registry: Registry | None = None,
    ) -> None:
        """`lookups` answers `/history` off the I/O workers: the server gives a
        thread of its own (chatd/storage/lookups.py); without one the store is
        asked on the asking thread, which suits only a store that never blocks.
        `monotonic` is the clock of the sessions' deadlines, flood control and
        login throttles: the transport's (`on_timer` is given its time), or a
        fake one in tests. `accounts`: registered nicknames (core/accounts.py);
        None: everyone is a guest, as with `accounts.enabled: false`.
        `registry`: registered rooms, their roles, flags and bans
        (core/registry.py); None: no room is registered (no accounts)."""
        self.config = config
        self.monotonic = monotonic
        self.accounts = accounts
        self.registry = registry
        self.nicks = Nicks()
        self.keeps_history = store is not None and config.history.enabled
        store = store if self.keeps_history and store is not None else NoStore()
        backlog = config.history.backlog if self.keeps_history else 0
        stored = store.load(backlog)
        self.history = History(store, stored.next_id, stored.last_id)
        self.lookups = lookups if lookups is not None else DirectLookups(store)
        self.identities = Identities(stored.identities, store.remember_identity)
        store.keep_rooms(frozenset(map(names.room_key, config.rooms.permanent)))
        self.rooms = Rooms(config.rooms.permanent, backlog, self._recall if self.keeps_history else None)
        for room in stored.rooms:
            self.rooms.restore(room)
        self._attach_permanent()
        self.stopping = False  # no LEAVE announcements while everybody is leaving
        # Where sessions send what others see (core/bus.py): this process alone,
        # unless the server makes it a node of a network (core/network.py).
        self.bus: Bus = LocalBus(self)

    def configure(self, config: Config) -> None:
        """A reload: new limits, room and history settings; rooms and members stay."""
        self.config = config
        self.rooms.set_permanent(config.rooms.permanent)
        self._attach_permanent()
        if self.accounts is not None:
            self.accounts.configure(config.accounts)
        if self.keeps_history:
            self.rooms.set_backlog(config.history.backlog)
            self.history.store.reconfigure(config.history)
            self.history.store.keep_rooms(frozenset(map(names.room_key, config.rooms.permanent)))

    def _attach_permanent(self) -> None:
        """Permanent rooms exist before anyone joins them: their registrations too."""
        if self.registry is not None:
            with self.rooms.changing:
                for registration in self.registry.all():
                    room = self.rooms.find(registration.key)
                    if room is not None:
                        attach(room, registration)

    def _recall(self, key: str) -> StoredRoom | None:
        return self.history.store.room(key, self.rooms.backlog)

    # -- events ----------------------------------------------------------------------

    def say(
        self, room: Room, kind: str, nick: str, texts: list[bytes], sender: Sender | None, tags: bytes = b""
    ) -> None:
        """Events in `room` (one per text), with ids in the order members get them.
        A "tagmsg" (IRC's TAGMSG: `tags` and no text) goes to the members but is not kept."""
        history = self.history
        with room.lock:
            now = history.clock.now_ms()
            self.publish(
                room, [Event(history.next_id(), now, room.key, room.name, nick, kind, t, tags) for t in texts], sender
            )

    def publish(self, room: Room, events: list[Event], sender: Sender | None) -> None:
        """With `room.lock` held: `events` of `room` (of one kind) to its members,
        as one block, and kept (the room's recent events, the store) unless
        they are "tagmsg"s."""
        history = self.history
        keep = self.keeps_history and bool(events) and events[0].kind != "tagmsg"
        lines = []
        for event in events:
            lines.append(event_line(event, history.clock))
            if keep:
                room.recent.append(event)
                history.store.append(event)
        room.durable = room.durable or keep
        room.broadcast(b"".join(lines), len(lines), sender=sender)

    def direct(
        self, sender: Client, recipient: Client, text: bytes, outlet: Sender, tags: bytes = b"", kind: str = "dm"
    ) -> None:
        """A DM (or a "tagmsg", not kept): to the recipient, echoed to the sender;
        kept for those of the two who are authenticated (an account, or a
        certificate's name: docs/protocol.md, "History")."""
        history = self.history
        event = Event(history.next_id(), history.clock.now_ms(), "", recipient.nick, sender.nick, kind, text, tags)
        line = event_line(event, history.clock)
        recipient.deliver(line, 1, outlet)
        if recipient is not sender:
            sender.deliver(line)
        target = _kept_under(sender, recipient) if self.keeps_history and kind == "dm" else None
        if target is not None:
            history.store.append(Event(event.id, event.time_ms, target, event.room, event.nick, "dm", text))

    def close(self) -> None:
        """Stopping: answer the questions asked, then write what history has
        not yet written (SIGTERM loses nothing)."""
        self.lookups.close()
        self.history.store.close()
        if self.accounts is not None:
            self.accounts.store.close()

    # -- rooms ---------------------------------------------------------------------

    def join(self, client: Client, name: str, joined: int, sender: Sender | None) -> Room:
        """Put `client` (already in `joined` rooms, not in this one) in room `name`:
        `JOIN` to the room, then the topic and the member list to the client
        (and in a registered room, its roles and flags).

        Raises:
            ProtocolError: `room_invalid`, `no_such_room`, `too_many_rooms`; in a
            registered room `banned_from_room`, `accounts_only`, `invite_only`.
        """
        protocol.check_room(name)
        config = self.config
        if joined >= config.limits.max_rooms_per_client:
            raise ProtocolError(
                protocol.TOO_MANY_ROOMS,
                f"You are in {joined} rooms, the most allowed; /part one first.",
            )
        registry = self.registry
        with self.rooms.changing:  # one order of JOIN, PART and USERS for everyone
            registration = registry.find(name) if registry is not None else None
            invited = registry is not None and registration is not None and admission(registry, registration, client)
            shown = registration.name if registration is not None else name  # a registered room keeps its spelling
            room = self.rooms.join(shown, config.rooms.allow_create, config.limits.max_rooms)
            if invited and registry is not None and registration is not None:
                registry.take_invite(registration, client)  # used once it let them in
            attach(room, registration)
            self.seat(client, room, sender)
        return room

    def seat(self, client: Client, room: Room, sender: Sender | None) -> None:
        """With `rooms.changing` held: `client` is in `room`: `JOIN` to the room,
        then the topic, the member list (in a registered room its roles and
        flags) and the backlog to the client."""
        registration = room.registration
        with room.lock:  # the backlog, then the live events: none missed, none twice
            self.rooms.add(room, client)
            room.broadcast(protocol.format_line("JOIN", room.name, client.nick), sender=sender)
            if registration is not None and registration.rank(client.account):
                line = protocol.format_line("ROLE", room.name, client.nick, registration.role(client.account), "*")
                room.broadcast(line, exclude=client, sender=sender)
            # TOPIC, USERS (roles, flags) and the backlog as one block: no
            # /history reply (from the history thread) can land in between.
            topic = topic_line(room) if room.topic else b""
            users = protocol.format_users(room.name, room.nicks())
            if registration is not None:
                users += roles_line(room, registration) + flags_line(room.name, registration)
            recent = room.recent
            older = room.older or (room.durable and len(recent) == recent.maxlen)
            self.send_history(client, room.name, list(recent), older, False, topic + users)

    def send_history(
        self, client: Member, target: str, events: list[Event], more: bool, newer: bool, before: bytes = b""
    ) -> None:
        """Events tagged `history`, then `HISTORY <target> <count> <more>`, as
        one block (after the lines `before`) of at most half the send queue:
        enough to page on from, never enough to make a reading client a slow
        consumer. `newer`: the events follow an id the client gave, so the
        first ones are kept, else the last."""
        budget = self.config.limits.send_queue_bytes // 2
        block, count = history_block(target, events, more, newer, self.history.clock, budget)
        client.deliver(before + block, count + before.count(b"\n"))

    def part(self, client: Client, room: Room, text: str) -> None:
        self.remove(client, room, protocol.format_line("PART", room.name, client.nick, text))

    def remove(self, client: Client, room: Room, line: bytes) -> None:
        """`client` out of `room`; `line` (its `PART`, or the `KICK` that removed
        it) to everyone who was in the room, `client` too."""
        with self.rooms.changing:
            for member in self.rooms.part(client, room):  # the leaver too
                member.deliver(line)

    def set_topic(self, client: Client, room: Room, text: str) -> None:
        """A new topic (or none: `text` empty), announced to every member as an event."""
        with self.rooms.changing:
            room.topic, room.topic_by = text, client.nick
            room.topic_ms = self.history.clock.now_ms()
            self.say(room, "topic", client.nick, [text.encode()], None)
            if room.registration is not None and self.registry is not None:
                self.registry.set_topic(room.registration, text, client.nick)

    # -- the server as a whole ------------------------------------------------------

    def register(self, client: Client, nick: str, greeting: bytes) -> None:
        self.nicks.claim(client, nick, greeting)

    def leave(self, client: Client, rooms: Iterable[Room], reason: str | None) -> None:
        """Take `client` out of every room and free its nickname; with a
        `reason`, tell each client that shared a room with it, once."""
        sharers: dict[int, Member] = {}
        with self.rooms.changing:
            for room in rooms:
                # Who was there when it left: a client joining at the same moment
                # either sees it in USERS and gets the LEAVE, or sees neither.
                for member in self.rooms.part(client, room):
                    sharers[id(member)] = member
        self.nicks.release(client)
        if reason is None or self.stopping:
            return
        line = protocol.format_line("LEAVE", client.nick, reason)
        for member in sharers.values():
            if member is not client:
                member.deliver(line)

    def rename(self, client: Client, rooms: Iterable[Room], new: str) -> str:
        """Rename `client`; `RENAME` once to it and to each client sharing a room."""
        with self.rooms.changing:  # USERS lists show the old nick or get the RENAME
            old = self.nicks.rename(client, new)
            line = protocol.format_line("RENAME", old, new)
            client.deliver(line)
            seen = {id(client)}
            for room in rooms:
                for member in room.members:
                    if id(member) not in seen:
                        seen.add(id(member))
                        member.deliver(line)
        return old

    def broadcast(self, data: bytes) -> int:
        """An operator's line to every registered client; returns how many."""
        clients = self.nicks.members()
        for client in clients:
            client.deliver(data)
        return len(clients)


def attach(room: Room, registration: Registration | None) -> None:
    """A live room points at its registration; one that wakes without its
    topic (history off, or forgotten) gets the registration's back."""
    room.registration = registration
    if registration is not None and not room.topic and registration.topic:
        room.topic, room.topic_by = registration.topic, registration.topic_by


def _kept_under(sender: Client, recipient: Client) -> str | None:
    """Where a DM is kept: for both (`dm_key`) if both are authenticated, for
    the one who is alone (`owned_dm_key`) with a guest, not at all between guests."""
    if sender.authenticated and recipient.authenticated:
        return dm_key(sender.nick, recipient.nick)
    if sender.authenticated:
        return owned_dm_key(sender.nick, recipient.nick)
    if recipient.authenticated:
        return owned_dm_key(recipient.nick, sender.nick)
    return None


class LocalBus:
    """The `Bus` of a chat that is the whole network: every operation is
    decided and applied at once, on the caller's thread (core/bus.py)."""

    def __init__(self, chat: Chat) -> None:
        self._chat = chat

    def register(self, client: Party, nick: str, greeting: bytes, done: Done, refused: Refused) -> None:
        self._chat.register(client, nick, greeting)
        done()

    def join(self, client: Party, name: str, joined: int, done: Callable[[Room], None], refused: Refused) -> None:
        done(self._chat.join(client, name, joined, client.outlet))

    def part(self, client: Party, room: Room, text: str, done: Done, refused: Refused) -> None:
        self._chat.part(client, room, text)
        done()

    def topic(self, client: Party, room: Room, text: str, done: Done, refused: Refused) -> None:
        self._chat.set_topic(client, room, text)
        done()

    def rename(
        self, client: Party, rooms: Sequence[Room], new: str, done: Callable[[str], None], refused: Refused
    ) -> None:
        done(self._chat.rename(client, rooms, new))

    def say(self, client: Party, room: Room, kind: str, texts: list[bytes], tags: bytes = b"") -> None:
        self._chat.say(room, kind, client.nick, texts, client.outlet, tags)

    def direct(self, sender: Party, recipient: Client, text: bytes, tags: bytes = b"", kind: str = "dm") -> None:
        self._chat.direct(sender, recipient, text, sender.outlet, tags, kind)

    def leave(self, client: Party, rooms: Sequence[Room], reason: str | None) -> None:
        self._chat.leave(client, rooms, reason)

    def kick(self, nick: str, text: str) -> bool:
        client = self._chat.nicks.find(nick)
        if client is None:
            return False
        client.close("kicked", text)
        return True

    def broadcast(self, text: str) -> int:
        return self._chat.broadcast(protocol.format_line("INFO", text))
