"""The history database's schema, the migrations that bring a file to it, and
`transaction`, how chatd writes to it.

`PRAGMA user_version` is the schema version. Each migration runs once, in
order, inside the start-up transaction; a file from a newer chatd is refused
rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from typing import Final

# Statements are split on ";": none may appear inside one, comments included.
MIGRATIONS: Final = (
    # 1: events, the rooms that have them (with topics), and the id reservation.
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        time INTEGER NOT NULL,  -- milliseconds since the Unix epoch, UTC
        target TEXT NOT NULL,   -- the room's key ('#lobby'), or 'dm:<nick>,<nick>'
        room TEXT NOT NULL,     -- the room as shown ('#Lobby'), for a DM the recipient
        nick TEXT NOT NULL,
        kind TEXT NOT NULL,     -- msg, action, topic, dm
        text TEXT NOT NULL
    );
    CREATE INDEX events_by_target ON events (target, id);
    CREATE INDEX events_by_time ON events (time);
    CREATE TABLE rooms (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        topic TEXT NOT NULL DEFAULT '',
        topic_by TEXT NOT NULL DEFAULT '*'
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """,
    # 2: the one spelling of each certificate identity (chatd/core/identities.py). A
    # database with direct messages, which are kept only between certified
    # nicknames, starts with the spelling of each name's earliest one (SQLite
    # takes a bare column beside min() from the row min() picked).
    """
    CREATE TABLE identities (
        key TEXT PRIMARY KEY,  -- the nickname in lower case (names.nick_key)
        spelling TEXT NOT NULL -- the certificate name chatd accepts for it
    );
    INSERT INTO identities (key, spelling)
    SELECT lower(name), name FROM (
        SELECT name, min(id) FROM (
            SELECT nick AS name, id FROM events WHERE kind = 'dm'
            UNION ALL
            SELECT room AS name, id FROM events WHERE kind = 'dm'
        )
        GROUP BY lower(name)
    );
    """,
    # 3: each room's last event id, so that retention finds the rooms least
    # recently written, and those with no events left (chatd/storage/retention.py).
    """
    ALTER TABLE rooms ADD COLUMN last_id INTEGER NOT NULL DEFAULT 0;
    UPDATE rooms SET last_id = coalesce((SELECT max(id) FROM events WHERE target = rooms.key), 0);
    CREATE INDEX rooms_by_last_id ON rooms (last_id);
    """,
    # 4: accounts (chatd/core/accounts.py, chatd/storage/accounts.py). Passwords
    # as argon2id hash strings; tokens and invite codes only as SHA-256 (hex).
    """
    CREATE TABLE accounts (
        key TEXT PRIMARY KEY,      -- the name in lower case (names.nick_key)
        name TEXT NOT NULL,        -- as registered
        password TEXT NOT NULL,    -- argon2id hash string, empty once deleted
        created INTEGER NOT NULL,  -- milliseconds since the Unix epoch, UTC
        disabled TEXT,             -- the operator's reason, NULL while enabled
        deleted INTEGER NOT NULL DEFAULT 0  -- 1: gone, the name still reserved
    );
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,     -- SHA-256 of the token, hex
        account TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        last_used INTEGER NOT NULL
    );
    CREATE INDEX tokens_by_account ON tokens (account);
    CREATE TABLE invites (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE, -- SHA-256 of the code, upper case without dashes, hex
        uses INTEGER NOT NULL,     -- left
        used INTEGER NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER,           -- NULL: never
        note TEXT NOT NULL
    );
    CREATE TABLE bans (
        network TEXT PRIMARY KEY,  -- CIDR, as Python's ipaddress writes it
        reason TEXT NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER            -- NULL: until removed
    );
    """,
    # 5: registered rooms (chatd/core/registry.py, chatd/storage/rooms.py): owner,
    # flags and topic, the roles accounts hold, bans and accounts' invites. A room's
    # rows go with it.
    """
    CREATE TABLE registered_rooms (
        key TEXT PRIMARY KEY,      -- the room in lower case (names.room_key)
        name TEXT NOT NULL,        -- as registered
        owner TEXT NOT NULL,       -- the owner's account key
        flags TEXT NOT NULL,       -- the flags that are on, space-separated
        created INTEGER NOT NULL,  -- milliseconds since the Unix epoch, UTC
        topic TEXT NOT NULL DEFAULT '',
        topic_by TEXT NOT NULL DEFAULT '*'
    );
    CREATE TABLE room_roles (
        room TEXT NOT NULL REFERENCES registered_rooms (key) ON DELETE CASCADE,
        account TEXT NOT NULL,     -- an account key
        role TEXT NOT NULL,        -- owner, op, voice
        PRIMARY KEY (room, account)
    );
    CREATE TABLE room_bans (
        room TEXT NOT NULL REFERENCES registered_rooms (key) ON DELETE CASCADE,
        mask TEXT NOT NULL,        -- a nickname key, account:<key>, or a CIDR network
        reason TEXT NOT NULL,
        by TEXT NOT NULL,          -- who set it, as shown ('*': the operator)
        created INTEGER NOT NULL,
        PRIMARY KEY (room, mask)
    );
    CREATE TABLE room_invites (
        room TEXT NOT NULL REFERENCES registered_rooms (key) ON DELETE CASCADE,
        account TEXT NOT NULL,
        by TEXT NOT NULL,
        expires INTEGER NOT NULL,
        PRIMARY KEY (room, account)
    );
    """,
)

VERSION: Final = len(MIGRATIONS)


class NewerSchema(Exception):
    """The file was written by a newer chatd."""


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the open database (inside a write transaction) to `VERSION`;
    returns the version it had."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > VERSION:
        raise NewerSchema(f"schema version {found}, newer than this chatd's {VERSION}")
    for number in range(found, VERSION):
        for statement in MIGRATIONS[number].split(";"):
            if statement.strip():
                conn.execute(statement)
    if found != VERSION:
        conn.execute(f"PRAGMA user_version = {VERSION}")
    return found


class transaction:
    """`with transaction(conn):` BEGIN IMMEDIATE (the write lock at once, so a
    busy file fails here, not halfway), COMMIT, or ROLLBACK on an error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the original error says more
