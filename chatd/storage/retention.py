"""Retention: what the SQLite store forgets, a small step at a time.

The writer thread (chatd/storage/history_writer.py) calls `Retention.step` between
batches. Each step is one short transaction deleting at most `PRUNE_STEP`
events (plus the room rows they leave behind), so that retention never holds
writes up for long; it returns how many rows went, and 0 once there is nothing
left to do (the writer then waits `PRUNE_EVERY` before it looks again). In
this order:

1. events older than `history.max_age_days` (by the `time` index);
2. events beyond the newest `history.max_per_room` of a room written since the
   last check (by the `(target, id)` index);
3. rooms with no events left: those whose last event (`rooms.last_id`) is older
   than the oldest event stored, found by the `last_id` index;
4. rooms beyond `history.max_rooms_kept`: the least recently written (lowest
   `last_id`) lose their events, then their rows, topics with them. Spreading
   messages over many new rooms therefore no longer escapes `max_per_room`:
   the store holds at most `max_rooms_kept` rooms of `max_per_room` events.

Rooms of `rooms.permanent` (`kept`) are never removed as a whole, by 3 or 4:
they are the operator's, few, and their topic lives in their row. Their
events age out and are capped per room like any other's. Direct messages
(targets `dm:...`) are not rooms: only the age limit applies to them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Final

from chatd.config import HistoryConfig
from chatd.storage.schema import transaction

PRUNE_STEP: Final = 500  # rows deleted per prune transaction
_NO_EVENTS: Final = 1 << 62  # "the oldest event id" of an empty events table: every room is empty


class Retention:
    def __init__(self, config: HistoryConfig) -> None:
        self.config = config
        self.touched: set[str] = set()  # rooms written since their last max_per_room check
        self.recheck = False  # a reload: check every stored room against max_per_room
        self._kept = "[]"  # the permanent rooms' keys, as the JSON array the queries take

    def keep(self, keys: Iterable[str]) -> None:
        """The rooms never removed as a whole (the permanent rooms)."""
        self._kept = json.dumps(sorted(keys))  # one assignment: the writer reads it whole

    def step(self, conn: sqlite3.Connection) -> int:
        """One step of retention on the writer's connection; the rows removed."""
        if self.recheck:
            self.recheck = False
            self.touched.update(key for (key,) in conn.execute("SELECT key FROM rooms"))
        return (
            self._too_old(conn)
            or self._beyond_max_per_room(conn)
            or self._empty_rooms(conn)
            or self._beyond_max_rooms(conn)
        )

    def _too_old(self, conn: sqlite3.Connection) -> int:
        if not self.config.max_age_days:
            return 0
        cutoff = int((time.time() - self.config.max_age_days * 86400) * 1000)
        with transaction(conn):
            return conn.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < ? ORDER BY time LIMIT ?)",
                (cutoff, PRUNE_STEP),
            ).rowcount

    def _beyond_max_per_room(self, conn: sqlite3.Connection) -> int:
        while self.config.max_per_room and self.touched:
            target = next(iter(self.touched))
            with transaction(conn):
                removed = conn.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE target = ? AND id <= "
                    "(SELECT id FROM events WHERE target = ? ORDER BY id DESC LIMIT 1 OFFSET ?) "
                    "ORDER BY id LIMIT ?)",
                    (target, target, self.config.max_per_room, PRUNE_STEP),
                ).rowcount
            if removed:
                return removed
            self.touched.discard(target)
        return 0

    def _empty_rooms(self, conn: sqlite3.Connection) -> int:
        # A room's events all have ids up to its last_id; below the oldest id
        # stored, it has none left.
        with transaction(conn):
            return conn.execute(
                "DELETE FROM rooms WHERE key IN (SELECT key FROM rooms WHERE last_id < "
                f"(SELECT coalesce(min(id), {_NO_EVENTS}) FROM events) "
                "AND key NOT IN (SELECT value FROM json_each(?)) ORDER BY last_id LIMIT ?)",
                (self._kept, PRUNE_STEP),
            ).rowcount

    def _beyond_max_rooms(self, conn: sqlite3.Connection) -> int:
        limit = self.config.max_rooms_kept
        if not limit:
            return 0
        excess = conn.execute("SELECT count(*) FROM rooms").fetchone()[0] - limit
        if excess <= 0:
            return 0
        with transaction(conn):
            # The victims stay the least recently written from one step to the
            # next, until they are gone, unless one is written to meanwhile.
            victims = json.dumps(
                [
                    key
                    for (key,) in conn.execute(
                        "SELECT key FROM rooms WHERE key NOT IN (SELECT value FROM json_each(?)) "
                        "ORDER BY last_id LIMIT ?",
                        (self._kept, min(excess, PRUNE_STEP)),
                    )
                ]
            )
            events = conn.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE target IN "
                "(SELECT value FROM json_each(?)) LIMIT ?)",
                (victims, PRUNE_STEP),
            ).rowcount
            rooms = conn.execute(
                "DELETE FROM rooms WHERE key IN (SELECT value FROM json_each(?)) "
                "AND NOT EXISTS (SELECT 1 FROM events WHERE target = rooms.key)",
                (victims,),
            ).rowcount
        return events + rooms
