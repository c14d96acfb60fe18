"""History: events (what rooms remember), their ids and times, and the two
ports behind them.

An event is a `MSG`, `ACTION`, `DM` or topic change. The chat core gives it an
id and a time as it happens, sends it live with those as tags, keeps the last
few of each room in memory for the backlog on join, and hands it to an
`EventStore`, which writes it later on its own thread. `/history` questions
go through `Lookups`, which answers them off the I/O workers: the thread that
does it is not the core's (chatd/storage/lookups.py).

What is not here: the stores (chatd/storage/), the thread that answers
questions, and what a session does with an answer (core/commands.py).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from chatd.config import HistoryConfig
from chatd.names import nick_key

KINDS: Final = ("msg", "action", "topic", "dm")  # what is kept; a "tagmsg" (text-less, IRC's TAGMSG) is not
_VERBS: Final = {"msg": b"MSG", "action": b"ACTION", "topic": b"TOPIC", "dm": b"DM", "tagmsg": b"TAGMSG"}
PAGE_DEFAULT: Final = 100  # events per /history reply without a limit
PAGE_MAX: Final = 500


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    time_ms: int  # milliseconds since the Unix epoch, UTC
    target: str  # the room's key, or `dm_key` of the two nicknames (`owned_dm_key` with a guest)
    room: str  # the room as shown; for a DM, the recipient's nickname
    nick: str  # who said it
    kind: str  # one of KINDS, or "tagmsg"
    text: bytes  # validated UTF-8
    # Tags of the live line beside id and time (`Command.tags`: an IRC client's
    # client-only tags, `notice`, `action`); not kept by the store.
    tags: bytes = b""


@dataclass(frozen=True)
class StoredRoom:
    name: str
    topic: str
    topic_by: str
    recent: list[Event]  # its last events, oldest first


@dataclass(frozen=True)
class StoredState:
    """What a store holds at start-up (`EventStore.load`)."""

    next_id: int  # greater than every id the store has handed out or seen
    last_id: int = 0  # the greatest id of an event it holds (a network node reads the log from there)
    rooms: list[StoredRoom] = field(default_factory=list)
    # Certificate names seen: each identity (nick_key) with its one spelling (core/identities.py).
    identities: dict[str, str] = field(default_factory=dict)


class EventStore(Protocol):
    """Where events are kept. chatd.storage.sqlite is the default; a shared
    store for several nodes would implement the same methods."""

    def load(self, backlog: int) -> StoredState:
        """Start-up: the next free id, each stored room with its last `backlog`
        events, and the certificate identities remembered."""

    def append(self, event: Event) -> None:
        """Keep `event` (written later); any thread, never blocks."""

    def remember_identity(self, key: str, spelling: str) -> None:
        """Keep the spelling of a certificate identity seen for the first time
        (written later, handed back by `load`); any thread, never blocks."""

    def range(
        self, target: str, before: int | None, after: int | None, limit: int, also: str | None = None
    ) -> list[Event]:
        """Up to `limit` events of `target` (and of `also`, merged: a client's
        direct messages with a nickname, and with it while it was a guest),
        oldest first: the earliest with ids above `after`, else the latest
        below `before` (or the latest of all). Sees events appended but not
        yet written. Blocks: not on an I/O worker."""

    def room(self, target: str, backlog: int) -> StoredRoom | None:
        """One stored room with its last `backlog` events (a room long ended
        being joined again), or None. A small read, on the joining thread."""

    def targets(self, rooms: Sequence[str], nick: str | None) -> list[Event]:
        """The last event of each of `rooms` (keys) that has one, and of each
        direct-message target of `nick` (a nickname's key; None: none), in
        no order (IRC's CHATHISTORY TARGETS). Sees events appended but not yet
        written. Blocks: not on an I/O worker."""

    def prune(self) -> int:
        """One small step of retention; returns how many rows (events, rooms)
        it removed, 0 when nothing is left to do."""

    def keep_rooms(self, keys: frozenset[str]) -> None:
        """Rooms (by key) retention keeps, whatever `history.max_rooms_kept`
        says, with their topics: the permanent ones. At start-up and on reload."""

    def close(self) -> None:
        """Write everything appended, then let go of the store."""

    def stats(self) -> dict[str, float]:
        """Counters for operators (chatctl status, metrics)."""

    def reconfigure(self, config: HistoryConfig) -> None:
        """A reload: new retention, flush and queue settings (the path stays)."""


class NoStore:
    """`history.enabled: false`: nothing is kept."""

    def load(self, backlog: int) -> StoredState:
        return StoredState(next_id=1)

    def append(self, event: Event) -> None:
        pass

    def remember_identity(self, key: str, spelling: str) -> None:
        pass

    def range(
        self, target: str, before: int | None, after: int | None, limit: int, also: str | None = None
    ) -> list[Event]:
        return []

    def room(self, target: str, backlog: int) -> StoredRoom | None:
        return None

    def targets(self, rooms: Sequence[str], nick: str | None) -> list[Event]:
        return []

    def prune(self) -> int:
        return 0

    def keep_rooms(self, keys: frozenset[str]) -> None:
        pass

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, float]:
        return {}

    def reconfigure(self, config: HistoryConfig) -> None:
        pass


def dm_key(a: str, b: str) -> str:
    """The target under which the direct messages between two nicknames are
    kept: their identities, so one spelling per identity (core/identities.py)."""
    first, second = sorted((nick_key(a), nick_key(b)))
    return f"dm:{first},{second}"


def owned_dm_key(owner: str, guest: str) -> str:
    """The target under which the direct messages between an authenticated
    `owner` and a `guest` are kept, for the owner alone: `~` marks the guest's
    side, so that nobody who is `guest` later (an account registered under
    that name) reads them under `dm_key`."""
    return f"dm:{nick_key(owner)},~{nick_key(guest)}"


class Clock:
    """Event times, formatted as docs/protocol.md says, cheaply: the part up to
    the second is cached."""

    def __init__(self) -> None:
        self._cached = (-1, b"")  # (second, its text): one tuple, so threads see a matching pair

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def format(self, ms: int) -> bytes:
        second, millis = divmod(ms, 1000)
        cached_second, prefix = self._cached
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
            self._cached = (second, prefix)
        return b"%s.%03dZ" % (prefix, millis)


def event_line(event: Event, clock: Clock, history: bool = False) -> bytes:
    """The event as a server line, with its tags."""
    tags = b"@id=%d;time=%s;history" if history else b"@id=%d;time=%s"
    tags %= (event.id, clock.format(event.time_ms))
    if event.tags:
        tags += b";" + event.tags
    verb = _VERBS[event.kind]
    if event.kind == "dm":
        return b"%s %s %s %s %s\n" % (tags, verb, event.nick.encode(), event.room.encode(), event.text)
    if not event.text:  # a cleared topic, a TAGMSG: no trailing space (docs/protocol.md, "Line format")
        return b"%s %s %s %s\n" % (tags, verb, event.room.encode(), event.nick.encode())
    return b"%s %s %s %s %s\n" % (tags, verb, event.room.encode(), event.nick.encode(), event.text)


Answer = Callable[[list[Event] | None], None]  # the events asked for, or None: not now


class Lookups(Protocol):
    """Questions for the store that may block, asked on an I/O worker and
    answered elsewhere. chatd.storage.lookups.LookupThread is the server's."""

    def history(
        self, target: str, before: int | None, after: int | None, limit: int, answer: Answer, also: str | None = None
    ) -> None:
        """Ask for `EventStore.range(target, before, after, limit, also)`; never blocks.
        `answer` gets the events later, on another thread (where only the
        outlet is safe to use), or None if the store failed or too many
        questions wait."""

    def targets(self, rooms: Sequence[str], nick: str | None, answer: Answer) -> None:
        """Ask for `EventStore.targets(rooms, nick)`, as `history` asks."""

    def close(self) -> None:
        """Answer what was asked, then stop."""


class DirectLookups:
    """Answers at once, on the asking thread: for a store that never blocks
    (`NoStore`, a test's), the default of `Chat`."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    def history(
        self, target: str, before: int | None, after: int | None, limit: int, answer: Answer, also: str | None = None
    ) -> None:
        store = self._store
        answer(
            store.range(target, before, after, limit)
            if also is None
            else store.range(target, before, after, limit, also)
        )

    def targets(self, rooms: Sequence[str], nick: str | None, answer: Answer) -> None:
        answer(self._store.targets(rooms, nick))

    def close(self) -> None:
        pass


class History:
    """Ids and times for new events, and the store they are kept in."""

    def __init__(self, store: EventStore, next_id: int, last_id: int = 0) -> None:
        self.store = store
        self.clock = Clock()
        self.first_id = next_id  # the next id at start-up (a network's ids go on from there)
        self.last_stored = last_id  # the greatest id the store held at start-up
        self._ids = itertools.count(next_id)  # next() is atomic: any thread may take one

    def next_id(self) -> int:
        return next(self._ids)
