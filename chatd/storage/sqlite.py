"""The default event store: one SQLite file in WAL mode, one writer thread.

I/O workers only append to a queue. The writer wakes every `flush_ms`, writes
what waits in one transaction, and between batches prunes in small steps
(chatd/storage/retention.py), so no prune holds writes up for long. Readers (the history thread, `chatctl
history export`) use their own connections: WAL lets them read while the
writer writes.

When a write fails (disk full, I/O error) the writer keeps the batch, logs
`history_write_failed` (at most every `FAILURE_LOG_EVERY` seconds) and tries
again with backoff; live chat goes on. At most `write_queue` events wait: the
oldest beyond that are dropped, counted and logged.

Certificate identities (chatd/core/identities.py) are queued like events
and written in the same transactions, to the `identities` table.

Ids: the store keeps a reservation (`meta.reserved_id`) ahead of the ids the
chat core hands out, committed with the batches, so that after a crash the
next ids are greater than any id a client may have seen.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import structlog

from chatd.config import HistoryConfig
from chatd.core.history import Event, StoredRoom, StoredState
from chatd.errors import ConfigError
from chatd.storage import database, targets
from chatd.storage.retention import Retention
from chatd.storage.schema import transaction

log = structlog.get_logger(__name__)

RESERVE: Final = 100_000  # ids reserved ahead of those handed out
LOAD_MAX: Final = 1000  # rooms read at start-up (the latest stored); others are read when joined
PRUNE_EVERY: Final = 10.0  # seconds between retention checks when nothing is left to do
FAILURE_LOG_EVERY: Final = 10.0
RETRY_MAX: Final = 5.0  # seconds between attempts while writes fail
_COLUMNS: Final = "id, time, target, room, nick, kind, text"
_INSERT_BATCH: Final = f"""
    INSERT OR IGNORE INTO events ({_COLUMNS})
    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6
    FROM json_each(?)
"""


def open_store(config: HistoryConfig, config_path: Path) -> SQLiteStore:
    """Open (creating, migrating) the database of `config.path`.

    Raises:
        ConfigError: one line naming the file and what to do.
    """
    return SQLiteStore(database.open_database(config.path, config_path), config, config_path)


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
    def __init__(self, conn: sqlite3.Connection, config: HistoryConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.path = config.path
        self.written = 0  # events committed
        self.dropped = 0  # events lost because the queue was full
        self.failures = 0  # failed write attempts
        self._conn = conn  # the writer's, after load()
        self._reader: sqlite3.Connection | None = None  # the history thread's
        self._recaller: sqlite3.Connection | None = None  # for `room`, on I/O threads, under its lock
        self._recalling = threading.Lock()
        self._pending: collections.deque[Event] = collections.deque()  # appended, not yet taken
        self._inflight: list[Event] = []  # taken by the writer, not yet committed
        self._identities: collections.deque[tuple[str, str]] = collections.deque()  # (key, spelling)
        self._identities_inflight: list[tuple[str, str]] = []
        self._lock = threading.Lock()  # between the writer taking a batch and readers looking
        self._stop = threading.Event()
        self._reserved = 0
        self._next_id = 1
        self._highest_id = 0  # the greatest id appended
        self._retention = Retention(config)  # used on the writer thread only
        self._prune_due = 0.0
        self._logged_failure = -FAILURE_LOG_EVERY
        self._logged_drop = -FAILURE_LOG_EVERY
        self._thread = threading.Thread(target=self._run, name="chatd-history-writer", daemon=True)

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
        self._thread.start()
        return stored

    def _load(self, backlog: int) -> StoredState:
        conn = self._conn
        last = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        row = conn.execute("SELECT value FROM meta WHERE key = 'reserved_id'").fetchone()
        self._next_id = max(int(last), int(row[0]) if row else 0) + 1
        self._highest_id = self._next_id - 1
        with transaction(conn):
            self._reserve(conn)
        keys = [key for (key,) in conn.execute("SELECT key FROM rooms ORDER BY rowid DESC LIMIT ?", (LOAD_MAX,))]
        rooms = [room for key in keys if (room := _stored_room(conn, key, backlog)) is not None]
        self._retention.touched = set(keys)
        identities = {key: spelling for key, spelling in conn.execute("SELECT key, spelling FROM identities")}
        return StoredState(self._next_id, rooms, identities)

    def room(self, target: str, backlog: int) -> StoredRoom | None:
        with self._recalling:
            if self._recaller is None:
                self._recaller = database.connect(self.path, 1.0)
            try:
                return _stored_room(self._recaller, target, backlog)
            except sqlite3.Error as exc:
                self._log_failure(exc)
                return None  # the room starts afresh; its history is still there for /history

    def append(self, event: Event) -> None:
        self._pending.append(event)  # deque.append is atomic: no lock on the message path
        self._highest_id = event.id

    def remember_identity(self, key: str, spelling: str) -> None:
        self._identities.append((key, spelling))  # written with the next batch

    def range(
        self, target: str, before: int | None, after: int | None, limit: int, also: str | None = None
    ) -> list[Event]:
        wanted = (target,) if also is None else (target, also)
        # Look at what is not yet written first: whatever the writer commits
        # after this is then in the database, so nothing falls in between.
        with self._lock:
            unwritten = [e for e in (*self._inflight, *self._pending) if e.target in wanted]
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
        with self._lock:
            unwritten = [*self._inflight, *self._pending]
        if self._reader is None:
            self._reader = database.connect(self.path, 5.0)
        return targets.latest(self._reader, rooms, nick, unwritten)

    def prune(self) -> int:
        """One step of retention (chatd/storage/retention.py); the rows it removed."""
        return self._retention.step(self._conn)

    def keep_rooms(self, keys: frozenset[str]) -> None:
        self._retention.keep(keys)

    def stats(self) -> dict[str, float]:
        try:  # read from another thread: the writer may empty either at any moment
            oldest: Event | None = self._inflight[0] if self._inflight else self._pending[0]
        except IndexError:
            oldest = None
        lag = max(0.0, time.time() - oldest.time_ms / 1000) if oldest is not None else 0.0
        return {
            "written": self.written,
            "waiting": len(self._pending) + len(self._inflight),
            "oldest_waiting_seconds": round(lag, 3),
            "dropped": self.dropped,
            "write_failures": self.failures,
            "last_id": self._highest_id,
        }

    def reconfigure(self, config: HistoryConfig) -> None:
        self.config = dataclasses.replace(config, path=self.path)
        self._retention.config = self.config
        self._retention.recheck = True  # every room against the new limits, at the writer's next turn
        self._prune_due = 0.0

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(RETRY_MAX * 3)
        left = len(self._pending) + len(self._inflight)
        identities = len(self._identities) + len(self._identities_inflight)
        if left or identities:
            log.error("history_not_written", events=left, identities=identities, path=str(self.path))
        for conn in (self._conn, self._reader, self._recaller):
            if conn is not None:
                conn.close()

    # -- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        delay = self.config.flush_ms / 1000
        failing = False
        give_up_at: float | None = None  # stopping while writes fail: try until then
        while True:
            if give_up_at is not None:
                time.sleep(delay)  # the stop event is set: waiting on it returns at once
            elif self._stop.wait(delay):
                give_up_at = time.monotonic() + RETRY_MAX * 2
            self._trim()
            try:
                written = self._write()
            except sqlite3.Error as exc:
                self.failures += 1
                self._log_failure(exc)
                self._reopen()
                failing, delay = True, min(RETRY_MAX, max(0.5, delay * 2))
                if give_up_at is not None:
                    if time.monotonic() > give_up_at:
                        return
                    delay = 0.5
                continue
            if failing:
                log.info("history_write_recovered", events=written, dropped=self.dropped)
            failing, delay = False, self.config.flush_ms / 1000
            if give_up_at is not None:
                return
            self._prune_a_little()

    def _reopen(self) -> None:
        """After a failed write, start over with a new connection (an I/O error
        can leave the old one unusable)."""
        try:
            self._conn.close()
        except sqlite3.Error:
            pass
        try:
            self._conn = database.connect(self.path, database.START_TIMEOUT)
        except sqlite3.Error as exc:
            self._log_failure(exc)  # tried again at the next write

    def _write(self) -> int:
        with self._lock:
            while self._pending:
                self._inflight.append(self._pending.popleft())
            batch = self._inflight
        identities = self._identities_inflight  # only this thread touches it
        while self._identities:
            identities.append(self._identities.popleft())
        if not batch and not identities:
            return 0
        # The batch as one JSON parameter: one statement inserts it all inside
        # SQLite. executemany would step once per row, and each step hands the
        # GIL back and forth with the I/O worker (measured: fan-out to 50 at
        # 0.7x of history off).
        rows = json.dumps([(e.id, e.time_ms, e.target, e.room, e.nick, e.kind, e.text.decode()) for e in batch])
        rooms = {e.target: (e.room, e.id) for e in batch if e.kind != "dm"}  # the last id of each
        topics = [(e.text.decode(), e.nick, e.target) for e in batch if e.kind == "topic"]
        with transaction(self._conn) as conn:  # a closed connection raises sqlite3.Error too
            conn.execute(_INSERT_BATCH, (rows,))
            conn.executemany(
                "INSERT INTO rooms (key, name, last_id) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
                [(key, name, last) for key, (name, last) in rooms.items()],
            )
            conn.executemany("UPDATE rooms SET topic = ?, topic_by = ? WHERE key = ?", topics)
            conn.executemany(
                "INSERT INTO identities (key, spelling) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", identities
            )
            if self._highest_id + RESERVE // 2 > self._reserved:
                self._reserve(conn)
        with self._lock:
            self._inflight = []
        self._identities_inflight = []
        self.written += len(batch)
        self._retention.touched.update(rooms)
        return len(batch)

    def _reserve(self, conn: sqlite3.Connection) -> None:
        reserved = max(self._highest_id, self._next_id) + RESERVE
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('reserved_id', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (reserved,),
        )
        self._reserved = reserved

    def _trim(self) -> None:
        """Drop the oldest waiting events beyond `write_queue`."""
        with self._lock:
            excess = len(self._inflight) + len(self._pending) - self.config.write_queue
            if excess <= 0:
                return
            from_batch = min(excess, len(self._inflight))
            del self._inflight[:from_batch]
            for _ in range(excess - from_batch):
                self._pending.popleft()
        self.dropped += excess
        now = time.monotonic()
        if now - self._logged_drop >= FAILURE_LOG_EVERY:
            self._logged_drop = now
            log.error("history_events_dropped", dropped=self.dropped, queue=self.config.write_queue)

    def _log_failure(self, exc: sqlite3.Error) -> None:
        now = time.monotonic()
        if now - self._logged_failure >= FAILURE_LOG_EVERY:
            self._logged_failure = now
            waiting = len(self._inflight) + len(self._pending)
            log.error(
                "history_write_failed",
                error=str(exc),
                path=str(self.path),
                waiting=waiting,
                failures=self.failures,
                dropped=self.dropped,
            )

    def _prune_a_little(self) -> None:
        if time.monotonic() < self._prune_due:
            return
        try:
            removed = self.prune()
        except sqlite3.Error as exc:
            self._log_failure(exc)
            removed = 0
        if not removed:
            self._prune_due = time.monotonic() + PRUNE_EVERY


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
