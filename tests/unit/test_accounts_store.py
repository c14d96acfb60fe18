"""chatd/storage/accounts.py: the accounts in the history's SQLite file,
written on a thread of their own, read back at start-up; and migration 4 on
a database from before accounts."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from chatd.config import HistoryConfig
from chatd.core.accounts import Account, Invite, Token
from chatd.core.bans import Ban
from chatd.errors import ConfigError
from chatd.storage import schema
from chatd.storage.accounts import open_accounts
from chatd.storage.sqlite import open_store

CONFIG = Path("/etc/chatd/chatd.yaml")
FUTURE = int(time.time() * 1000) + 86_400_000


def test_changes_are_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    store = open_accounts(path, CONFIG)
    assert store.load().accounts == []
    store.put_account(Account("alice", "Alice", "$argon2id$x", 1))
    store.put_account(Account("alice", "Alice", "$argon2id$y", 1, disabled="spam"))
    store.put_token(Token("aa" * 32, "alice", 1, FUTURE, 1))
    store.put_token(Token("bb" * 32, "alice", 1, 5, 1))  # expired: not loaded
    store.put_token(Token("aa" * 32, "alice", 1, FUTURE, 7))  # last use
    store.put_invite(Invite(1, "cc" * 32, 2, 0, 1, None, "note"))
    store.put_invite(Invite(1, "cc" * 32, 1, 1, 1, None, "note"))
    store.put_invite(Invite(2, "dd" * 32, 1, 0, 1, None, ""))
    store.remove_invite(2)
    store.put_ban(Ban("10.0.0.0/8", "why", 1, None))
    store.put_ban(Ban("192.0.2.1/32", "", 1, None))
    store.remove_ban("192.0.2.1/32")
    assert store.sync(10)
    store.close()
    again = open_accounts(path, CONFIG)
    loaded = again.load()
    assert loaded.accounts == [Account("alice", "Alice", "$argon2id$y", 1, "spam", False)]
    assert loaded.tokens == [Token("aa" * 32, "alice", 1, FUTURE, 7)]
    assert loaded.invites == [Invite(1, "cc" * 32, 1, 1, 1, None, "note")]
    assert loaded.bans == [Ban("10.0.0.0/8", "why", 1, None)]
    again.remove_tokens(["aa" * 32])
    assert again.sync(10)
    again.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM tokens").fetchone() == (0,)


def test_accounts_share_the_file_with_the_history(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    history = open_store(HistoryConfig(path=path), CONFIG)
    history.load(10)
    accounts = open_accounts(path, CONFIG)
    accounts.load()
    accounts.put_account(Account("bob", "bob", "$argon2id$z", 1))
    assert accounts.sync(10)
    accounts.close()
    history.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (schema.VERSION,)
        assert conn.execute("SELECT name FROM accounts").fetchall() == [("bob",)]


def test_a_database_from_before_accounts_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    with sqlite3.connect(path) as conn:
        for number in range(3):
            for statement in schema.MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("PRAGMA user_version = 3")
        conn.execute("INSERT INTO rooms (key, name) VALUES ('#old', '#old')")
    store = open_accounts(path, CONFIG)
    assert store.load().accounts == []
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (schema.VERSION,)  # 4, and 5 (room roles) after it
        assert conn.execute("SELECT key FROM rooms").fetchall() == [("#old",)]


def test_a_file_that_is_no_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "chatd.db"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError) as info:
        open_accounts(path, CONFIG)
    assert "history.path" in str(info.value) and "accounts" in str(info.value)
