"""The default event store (the core's `EventStore`): one SQLite file in WAL
mode, one writer thread.

I/O workers only append to the writer's queue (chatd/storage/history_writer.py:
the batches, retries, the bound on what waits, the id reservation, pruning
between batches). Readers use connections of their own, which WAL lets read
while the writer writes: the history thread (`range`, `targets`), the
thread that joins a room long ended (`room`), and `chatctl history export`
(`read_events`). A reader looks at what waits unwritten too, so an event is
never missing between being appended and being committed.

What is not here: the writer (history_writer.py), what retention removes
(retention.py), the latest event per target (targets.py), the tables and
their migrations (schema.py, database.py).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from chatd.config import HistoryConfig
from chatd.core.history import Event, StoredRoom, StoredState
from chatd.errors import ConfigError
from chatd.priority import BackgroundPriority
from chatd.storage import database, targets
from chatd.storage.history_writer import RESERVE as RESERVE  # still importable from here, as before
from chatd.storage.history_writer import HistoryWriter

LOAD_MAX: Final = 1000  # rooms read at start-up (the latest stored); others are read when joined
_COLUMNS: Final = "id, time, target, room, nick, kind, text"


def open_store(config: HistoryConfig, config_path: Path, priority: BackgroundPriority | None = None) -> SQLiteStore:
    """Open (creating, migrating) the database of `config.path`; its writer
    thread lowers its priority with `priority`, if given.

    Raises:
        ConfigError: one line naming the file and what to do.
    """
    return SQLiteStore(database.open_database(config.path, config_path), config, config_path, priority)


def _stored_room(conn: sqlite3.Connection, key: str, backlog: int) -> StoredRoom | None:
    row = conn.execute("SELECT name, topic, topic_by FROM rooms WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    recent = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE target = ? ORDER BY id DESC LIMIT ?", (key, backlog)
    ).fetchall()
    return StoredRoom(row[0], row[1], row[2], [_event(r) for r in reversed(recent)])


def _event(row: tuple[int, int, str, str, str, str, str]) -> Event:
    id_, time_ms, target, room, nick, kind, text = row
    return Event(id_, time_ms, target, room, nick, kind, text.encode())


class SQLiteStore:
    def __init__(
        self,
        conn: sqlite3.Connection,
        config: HistoryConfig,
        config_path: Path,
        priority: BackgroundPriority | None = None,
    ) -> None:
        self.config_path = config_path
        self.path = config.path
        self._writer = HistoryWriter(conn, config, priority)
        self._reader: sqlite3.Connection | None = None  # the history thread's
        self._recaller: sqlite3.Connection | None = None  # for `room`, on I/O threads, under its lock
        self._recalling = threading.Lock()

    @property
    def written(self) -> int:
        """Events committed."""
        return self._writer.written

    @property
    def dropped(self) -> int:
        """Events lost because the queue was full."""
        return self._writer.dropped

    @property
    def failures(self) -> int:
        """Failed write attempts."""
        return self._writer.failures

    # -- the EventStore interface -----------------------------------------------------

    def load(self, backlog: int) -> StoredState:
        """Read the rooms and their last events, reserve ids, start the writer.

        Raises:
            ConfigError: the file cannot be read or written.
        """
        try:
            stored = self._load(backlog)
        except sqlite3.Error as exc:
            raise ConfigError(database.failure(self.config_path, self.path, exc)) from None
        self._writer.start()
        return stored

    def _load(self, backlog: int) -> StoredState:
        next_id = self._writer.reserve_ids()
        conn = self._writer.conn  # the writer's thread has not started yet
        keys = [key for (key,) in conn.execute("SELECT key FROM rooms ORDER BY rowid DESC LIMIT ?", (LOAD_MAX,))]
        rooms = [room for key in keys if (room := _stored_room(conn, key, backlog)) is not None]
        self._writer.retention.touched = set(keys)
        identities = {key: spelling for key, spelling in conn.execute("SELECT key, spelling FROM identities")}
        last = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]  # a node reads the log from it
        return StoredState(next_id, int(last), rooms, identities)

    def room(self, target: str, backlog: int) -> StoredRoom | None:
        with self._recalling:
            if self._recaller is None:
                self._recaller = database.connect(self.path, 1.0)
            try:
                return _stored_room(self._recaller, target, backlog)
            except sqlite3.Error as exc:
                self._writer.log_failure(exc)
                return None  # the room starts afresh; its history is still there for /history

    def append(self, event: Event) -> None:
        self._writer.append(event)

    def remember_identity(self, key: str, spelling: str) -> None:
        self._writer.remember_identity(key, spelling)

    def range(
        self, target: str, before: int | None, after: int | None, limit: int, also: str | None = None
    ) -> list[Event]:
        wanted = (target,) if also is None else (target, also)
        unwritten = self._writer.unwritten(wanted)  # first: see HistoryWriter.unwritten
        if self._reader is None:
            self._reader = database.connect(self.path, 5.0)
        where = "target = ?" if also is None else "target IN (?, ?)"
        if after is not None:
            sql = f"WHERE {where} AND id > ? ORDER BY id LIMIT ?"
            args: tuple[object, ...] = (*wanted, after, limit)
        else:
            sql = f"WHERE {where} AND id < ? ORDER BY id DESC LIMIT ?"
            args = (*wanted, before if before is not None else 1 << 62, limit)
        rows = self._reader.execute(f"SELECT {_COLUMNS} FROM events {sql}", args).fetchall()
        events = {row[0]: _event(row) for row in rows}
        for event in unwritten:
            if (after is None or event.id > after) and (before is None or event.id < before):
                events[event.id] = event
        ordered = [events[i] for i in sorted(events)]
        return ordered[:limit] if after is not None else ordered[-limit:]

    def targets(self, rooms: Sequence[str], nick: str | None) -> list[Event]:
        unwritten = self._writer.unwritten()
        if self._reader is None:
            self._reader = database.connect(self.path, 5.0)
        return targets.latest(self._reader, rooms, nick, unwritten)

    def prune(self) -> int:
        """One step of retention (chatd/storage/retention.py); the rows it removed."""
        return self._writer.prune()

    def keep_rooms(self, keys: frozenset[str]) -> None:
        self._writer.retention.keep(keys)

    def stats(self) -> dict[str, float]:
        writer = self._writer
        oldest = writer.oldest()
        lag = max(0.0, time.time() - oldest.time_ms / 1000) if oldest is not None else 0.0
        return {
            "written": writer.written,
            "waiting": writer.waiting(),
            "oldest_waiting_seconds": round(lag, 3),
            "dropped": writer.dropped,
            "write_failures": writer.failures,
            "last_id": writer.highest_id,
        }

    def reconfigure(self, config: HistoryConfig) -> None:
        self._writer.reconfigure(dataclasses.replace(config, path=self.path))

    def close(self) -> None:
        self._writer.close()
        for conn in (self._reader, self._recaller):
            if conn is not None:
                conn.close()


def read_events(path: Path, target: str, since_ms: int | None = None) -> Iterator[Event]:
    """Every stored event of `target` (from `since_ms` on), oldest first, read
    without disturbing a running chatd: for `chatctl history export`."""
    conn = database.connect(path, 5.0, read_only=True)
    try:
        last = 0
        while True:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE target = ? AND id > ? AND time >= ? ORDER BY id LIMIT 1000",
                (target, last, since_ms or 0),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _event(row)
            last = rows[-1][0]
    finally:
        conn.close()
