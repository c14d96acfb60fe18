"""chatd/storage/rooms.py: registered rooms in the accounts' SQLite file, written
by the accounts' writer, read back at start-up (migration 5); and the
registry over it (chatd/core/registry.py) coming back as it was left."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chatd.core.registry import Registry, RoomBan, RoomInvite, StoredRegistration
from chatd.storage import schema
from chatd.storage.accounts import open_accounts
from chatd.storage.rooms import SQLiteRooms

CONFIG = Path("/etc/chatd/chatd.yaml")


class Joiner:
    def __init__(self, nick: str, account: str | None) -> None:
        self.nick, self.account, self.peer_ip = nick, account, "192.0.2.1"


def test_a_registry_comes_back_as_it_was_left(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    accounts = open_accounts(path, CONFIG)
    accounts.load()
    registry = Registry(SQLiteRooms(path, accounts), wall=lambda: 1000.0)
    assert registry.all() == []
    rust = registry.register("#Rust", "alice")
    registry.set_role(rust, "bob", "op")
    registry.set_role(rust, "carol", "voice")
    registry.set_role(rust, "carol", "member")
    registry.set_flag(rust, "private", True)
    registry.set_flag(rust, "moderated", True)
    registry.set_flag(rust, "topic_ops", False)
    registry.set_topic(rust, "borrow checker", "alice")
    registry.add_ban(rust, "account:mallory", "trolling", "bob")
    registry.add_ban(rust, "10.0.0.0/8", "", "bob")
    registry.remove_ban(rust, "10.0.0.0/8")
    registry.invite(rust, Joiner("dave", "dave"), "bob")
    registry.invite(rust, Joiner("guest", None), "bob")  # a connection's: never stored
    registry.set_owner(rust, "bob")
    gone = registry.register("#gone", "alice")
    registry.set_role(gone, "bob", "op")
    registry.add_ban(gone, "eve", "", "alice")
    registry.drop(gone)
    assert accounts.sync(10)
    accounts.close()

    again = open_accounts(path, CONFIG)
    again.load()
    loaded = SQLiteRooms(path, again).load()
    assert loaded == [
        StoredRegistration(
            "#rust",
            "#Rust",
            "bob",
            frozenset({"private", "moderated"}),
            1_000_000,
            "borrow checker",
            "alice",
            {"alice": "op", "bob": "owner"},
            [RoomBan("account:mallory", "trolling", "bob", 1_000_000)],
            [RoomInvite("dave", "bob", 1_000_000 + 86_400_000)],
        )
    ]
    registration = Registry(SQLiteRooms(path, again), wall=lambda: 1000.0).find("#RUST")
    assert registration is not None and registration.rank("bob") == 3 and registration.role("alice") == "op"
    again.close()
    with sqlite3.connect(path) as conn:
        for table in ("room_roles", "room_bans", "room_invites"):
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE room = '#gone'").fetchone() == (0,)


def test_a_database_from_before_room_roles_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    with sqlite3.connect(path) as conn:
        for number in range(4):
            for statement in schema.MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("PRAGMA user_version = 4")
        conn.execute("INSERT INTO accounts (key, name, password, created) VALUES ('alice', 'alice', 'x', 1)")
    store = open_accounts(path, CONFIG)
    assert [a.name for a in store.load().accounts] == ["alice"]
    assert SQLiteRooms(path, store).load() == []
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (schema.VERSION,) == (5,)
