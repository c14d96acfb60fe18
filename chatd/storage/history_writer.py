"""The history's writer: the queue the I/O workers append events to, and the
one thread (`chatd-history-writer`) that commits them.

The writer wakes every `flush_ms`, takes what waits (events, and the
certificate identities of chatd/core/identities.py) and writes it in one
transaction, then prunes a little (chatd/storage/retention.py), so no prune
holds writes up for long. It runs at a lower scheduling priority than the
I/O workers (chatd/priority.py): on a shared core a worker is run first. When a write fails (disk full, I/O error) it keeps
the batch, logs `history_write_failed` (at most every `FAILURE_LOG_EVERY`
seconds), opens a new connection and tries again with backoff; live chat
goes on. At most `write_queue` events wait: the oldest beyond that are
dropped, counted and logged.

Ids: the writer keeps a reservation (`meta.reserved_id`) ahead of the ids
the chat core hands out, committed with the batches, so that after a crash
the next ids are greater than any id a client may have seen.

What is not here: reading (chatd/storage/sqlite.py's `SQLiteStore`, which
owns this writer and answers the core; targets.py), what retention removes
(retention.py), the tables (schema.py).
"""

from __future__ import annotations

import collections
import json
import sqlite3
import threading
import time
from typing import Final

import structlog

from chatd.config import HistoryConfig
from chatd.core.history import Event
from chatd.priority import BackgroundPriority
from chatd.storage import database
from chatd.storage.retention import Retention
from chatd.storage.schema import transaction

log = structlog.get_logger(__name__)

RESERVE: Final = 100_000  # ids reserved ahead of those handed out
PRUNE_EVERY: Final = 10.0  # seconds between retention checks when nothing is left to do
FAILURE_LOG_EVERY: Final = 10.0
RETRY_MAX: Final = 5.0  # seconds between attempts while writes fail
# The columns in the order of the rows `_write` makes.
_INSERT_BATCH: Final = """
    INSERT OR IGNORE INTO events (id, time, target, room, nick, kind, text)
    SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6
    FROM json_each(?)
"""


class HistoryWriter:
    """What waits to be written, and the thread that writes it. `append` and
    `remember_identity` are for any thread and never block; the rest of the
    public methods are the store's."""

    def __init__(
        self, conn: sqlite3.Connection, config: HistoryConfig, priority: BackgroundPriority | None = None
    ) -> None:
        self.config = config
        self._priority = priority  # None: the writer keeps the process's priority
        self.path = config.path
        # The writer thread's connection; the store reads its start-up state
        # with it before `start()`. Replaced after a failed write.
        self.conn = conn
        self.written = 0  # events committed
        self.dropped = 0  # events lost because the queue was full
        self.failures = 0  # failed write attempts
        self.highest_id = 0  # the greatest id appended
        self.retention = Retention(config)  # used on the writer thread only
        self._pending: collections.deque[Event] = collections.deque()  # appended, not yet taken
        self._inflight: list[Event] = []  # taken by the writer, not yet committed
        self._identities: collections.deque[tuple[str, str]] = collections.deque()  # (key, spelling)
        self._identities_inflight: list[tuple[str, str]] = []
        self._lock = threading.Lock()  # between the writer taking a batch and readers looking
        self._stop = threading.Event()
        self._reserved = 0
        self._next_id = 1
        self._prune_due = 0.0
        self._logged_failure = -FAILURE_LOG_EVERY
        self._logged_drop = -FAILURE_LOG_EVERY
        self._thread = threading.Thread(target=self._run, name="chatd-history-writer", daemon=True)

    def reserve_ids(self) -> int:
        """Start-up: reserve ids ahead of every id stored or reserved before;
        returns the next free one."""
        conn = self.conn
        last = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        row = conn.execute("SELECT value FROM meta WHERE key = 'reserved_id'").fetchone()
        self._next_id = max(int(last), int(row[0]) if row else 0) + 1
        self.highest_id = self._next_id - 1
        with transaction(conn):
            self._reserve(conn)
        return self._next_id

    def start(self) -> None:
        self._thread.start()

    def append(self, event: Event) -> None:
        self._pending.append(event)  # deque.append is atomic: no lock on the message path
        self.highest_id = event.id

    def remember_identity(self, key: str, spelling: str) -> None:
        self._identities.append((key, spelling))  # written with the next batch

    def unwritten(self, wanted: tuple[str, ...] | None = None) -> list[Event]:
        """The events appended and not yet committed (of the targets `wanted`,
        or all), oldest first. Whatever the writer commits after this is in the
        database, so a reader that looks here first and then there misses nothing."""
        with self._lock:
            if wanted is None:
                return [*self._inflight, *self._pending]
            return [e for e in (*self._inflight, *self._pending) if e.target in wanted]

    def waiting(self) -> int:
        return len(self._pending) + len(self._inflight)

    def oldest(self) -> Event | None:
        """The oldest event waiting, if any; any thread."""
        try:  # read from another thread: the writer may empty either at any moment
            return self._inflight[0] if self._inflight else self._pending[0]
        except IndexError:
            return None

    def prune(self) -> int:
        """One step of retention on the writer's connection; the rows it removed."""
        return self.retention.step(self.conn)

    def reconfigure(self, config: HistoryConfig) -> None:
        self.config = config
        self.retention.config = config
        self.retention.recheck = True  # every room against the new limits, at the writer's next turn
        self._prune_due = 0.0

    def close(self) -> None:
        """Write what waits (trying for a while if writes fail), stop, close the connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(RETRY_MAX * 3)
        left = self.waiting()
        identities = len(self._identities) + len(self._identities_inflight)
        if left or identities:
            log.error("history_not_written", events=left, identities=identities, path=str(self.path))
        self.conn.close()

    def log_failure(self, exc: sqlite3.Error) -> None:
        """`history_write_failed`, at most every `FAILURE_LOG_EVERY` seconds."""
        now = time.monotonic()
        if now - self._logged_failure >= FAILURE_LOG_EVERY:
            self._logged_failure = now
            log.error(
                "history_write_failed",
                error=str(exc),
                path=str(self.path),
                waiting=self.waiting(),
                failures=self.failures,
                dropped=self.dropped,
            )

    # -- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        if self._priority is not None:
            self._priority.lower()
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
                self.log_failure(exc)
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
            self.conn.close()
        except sqlite3.Error:
            pass
        try:
            self.conn = database.connect(self.path, database.START_TIMEOUT)
        except sqlite3.Error as exc:
            self.log_failure(exc)  # tried again at the next write

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
        with transaction(self.conn) as conn:  # a closed connection raises sqlite3.Error too
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
            if self.highest_id + RESERVE // 2 > self._reserved:
                self._reserve(conn)
        with self._lock:
            self._inflight = []
        self._identities_inflight = []
        self.written += len(batch)
        self.retention.touched.update(rooms)
        return len(batch)

    def _reserve(self, conn: sqlite3.Connection) -> None:
        reserved = max(self.highest_id, self._next_id) + RESERVE
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

    def _prune_a_little(self) -> None:
        if time.monotonic() < self._prune_due:
            return
        try:
            removed = self.prune()
        except sqlite3.Error as exc:
            self.log_failure(exc)
            removed = 0
        if not removed:
            self._prune_due = time.monotonic() + PRUNE_EVERY
