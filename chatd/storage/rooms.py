"""SQLiteRooms: the `RoomStore` (chatd/core/registry.py) in the accounts' SQLite
file: registered rooms, the roles accounts hold in them, their bans and the
accounts' invites (a guest's invite is for its connection and never stored).

Registered rooms exist only beside accounts (roles belong to accounts), so
their writes go to the accounts' writer (`SQLiteAccounts.queue`): one
`chatd-accounts-writer` thread, short transactions, retries, and `sync` for
the operator's commands, which answer once their change is on disk. `load`
reads at start-up on a connection of its own, closed after.

Tables: migration 5 of chatd/storage/schema.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from chatd.core.registry import RoomBan, RoomInvite, StoredRegistration
from chatd.storage.database import START_TIMEOUT, connect

_Write = Callable[[sqlite3.Connection], object]


class Writer(Protocol):
    """Where writes go (chatd.storage.accounts.SQLiteAccounts)."""

    def queue(self, write: _Write) -> None: ...
    def sync(self, timeout: float) -> bool: ...


class SQLiteRooms:
    def __init__(self, path: Path, writer: Writer) -> None:
        """`path`: the file, migrated already (chatd/storage/accounts.py opened it)."""
        self.path = path
        self._writer = writer

    def load(self) -> list[StoredRegistration]:
        """Every registered room with its roles, bans and invites (the registry
        ignores those expired)."""
        conn = connect(self.path, START_TIMEOUT)
        try:
            roles: dict[str, dict[str, str]] = {}
            for room, account, role in conn.execute("SELECT room, account, role FROM room_roles"):
                roles.setdefault(room, {})[account] = role
            bans: dict[str, list[RoomBan]] = {}
            for room, *ban in conn.execute("SELECT room, mask, reason, by, created FROM room_bans ORDER BY created"):
                bans.setdefault(room, []).append(RoomBan(*ban))
            invites: dict[str, list[RoomInvite]] = {}
            for room, *invite in conn.execute("SELECT room, account, by, expires FROM room_invites"):
                invites.setdefault(room, []).append(RoomInvite(*invite))
            return [
                StoredRegistration(
                    key,
                    name,
                    owner,
                    frozenset(flags.split()),
                    created,
                    topic,
                    topic_by,
                    roles.get(key, {}),
                    bans.get(key, []),
                    invites.get(key, []),
                )
                for key, name, owner, flags, created, topic, topic_by in conn.execute(
                    "SELECT key, name, owner, flags, created, topic, topic_by FROM registered_rooms"
                )
            ]
        finally:
            conn.close()

    def put_room(self, room: StoredRegistration) -> None:
        row = (
            room.key,
            room.name,
            room.owner,
            " ".join(sorted(room.flags)),
            room.created_ms,
            room.topic,
            room.topic_by,
        )
        self._writer.queue(
            lambda c: c.execute(
                "INSERT INTO registered_rooms (key, name, owner, flags, created, topic, topic_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET name = excluded.name, "
                "owner = excluded.owner, flags = excluded.flags, topic = excluded.topic, topic_by = excluded.topic_by",
                row,
            )
        )

    def remove_room(self, key: str) -> None:
        def remove(conn: sqlite3.Connection) -> None:
            for table in ("room_roles", "room_bans", "room_invites"):
                conn.execute(f"DELETE FROM {table} WHERE room = ?", (key,))
            conn.execute("DELETE FROM registered_rooms WHERE key = ?", (key,))

        self._writer.queue(remove)

    def put_role(self, room: str, account: str, role: str) -> None:
        self._writer.queue(
            lambda c: c.execute(
                "INSERT INTO room_roles (room, account, role) VALUES (?, ?, ?) "
                "ON CONFLICT (room, account) DO UPDATE SET role = excluded.role",
                (room, account, role),
            )
        )

    def remove_role(self, room: str, account: str) -> None:
        self._writer.queue(
            lambda c: c.execute("DELETE FROM room_roles WHERE room = ? AND account = ?", (room, account))
        )

    def put_ban(self, room: str, ban: RoomBan) -> None:
        row = (room, ban.mask, ban.reason, ban.by, ban.set_ms)
        self._writer.queue(
            lambda c: c.execute(
                "INSERT INTO room_bans (room, mask, reason, by, created) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (room, mask) DO UPDATE SET reason = excluded.reason, by = excluded.by, "
                "created = excluded.created",
                row,
            )
        )

    def remove_ban(self, room: str, mask: str) -> None:
        self._writer.queue(lambda c: c.execute("DELETE FROM room_bans WHERE room = ? AND mask = ?", (room, mask)))

    def put_invite(self, room: str, invite: RoomInvite) -> None:
        row = (room, invite.account, invite.by, invite.expires_ms)
        self._writer.queue(
            lambda c: c.execute(
                "INSERT INTO room_invites (room, account, by, expires) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (room, account) DO UPDATE SET by = excluded.by, expires = excluded.expires",
                row,
            )
        )

    def remove_invite(self, room: str, account: str) -> None:
        self._writer.queue(
            lambda c: c.execute("DELETE FROM room_invites WHERE room = ? AND account = ?", (room, account))
        )

    def sync(self, timeout: float) -> bool:
        return self._writer.sync(timeout)
