"""The last event of each of a client's targets (IRC's CHATHISTORY TARGETS):
the SQLite side of `EventStore.targets`, for chatd/storage/sqlite.py.

Rooms are looked up by key, each by its last id in the `(target, id)` index.
Direct messages are kept under `dm:<a>,<b>` (the two nicknames' keys in
order, core/history.py `dm_key`), so those of a nickname are the targets
that begin `dm:<nick>,` (a range of that index) or end `,<nick>` (a GLOB
over the direct messages' part of it: nickname keys hold none of GLOB's
special characters). The events not yet written are merged in, as `range`
merges them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from chatd.core.history import Event

_COLUMNS = "id, time, target, room, nick, kind, text"


def latest(conn: sqlite3.Connection, rooms: Sequence[str], nick: str | None, unwritten: Iterable[Event]) -> list[Event]:
    found: dict[str, Event] = {}
    if rooms:
        marks = ",".join("?" * len(rooms))
        _read(conn, f"target IN ({marks})", tuple(rooms), found)
    if nick is not None:
        mine = "(target >= ? AND target < ?) OR (target >= 'dm:' AND target < 'dm;' AND target GLOB ?)"
        _read(conn, mine, (f"dm:{nick},", f"dm:{nick}-", f"dm:*,{nick}"), found)  # "-" follows ","
    wanted = set(rooms)
    for event in unwritten:
        if event.target in wanted or (nick is not None and is_dm_of(event.target, nick)):
            last = found.get(event.target)
            if last is None or event.id > last.id:
                found[event.target] = event
    return list(found.values())


def is_dm_of(target: str, nick: str) -> bool:
    """Whether `target` holds direct messages of `nick` (a nickname's key)."""
    return target.startswith(f"dm:{nick},") or (target.startswith("dm:") and target.endswith(f",{nick}"))


def _read(conn: sqlite3.Connection, where: str, args: tuple[str, ...], found: dict[str, Event]) -> None:
    sql = f"SELECT {_COLUMNS} FROM events WHERE id IN (SELECT max(id) FROM events WHERE {where} GROUP BY target)"
    for row in conn.execute(sql, args):
        event = Event(row[0], row[1], row[2], row[3], row[4], row[5], row[6].encode())
        found[event.target] = event
