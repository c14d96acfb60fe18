"""The SQLite file itself: creating it with the right modes, opening it in WAL
mode and migrating it, and saying in one line what to do when that fails.

Both stores in the file use it: the event store (chatd/storage/sqlite.py) and
the accounts' store (chatd/storage/accounts.py, which the registered
rooms' chatd/storage/rooms.py shares). What they keep in it is theirs.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

from chatd.errors import ConfigError
from chatd.storage import schema
from chatd.storage.schema import transaction

START_TIMEOUT: Final = 2.0  # seconds start-up waits for a lock another process holds


def open_database(path: Path, config_path: Path, holds: str = "") -> sqlite3.Connection:
    """A read-write connection to `path`, created (0600, in a 0700 folder) and
    migrated to this chatd's schema.

    Raises:
        ConfigError: one line naming the file and what to do; `holds` says what
            the file is for when that is not only history ("it holds the accounts").
    """
    try:
        prepare_files(path)
        conn = connect(path, START_TIMEOUT)
        with transaction(conn):
            schema.migrate(conn)
    except (OSError, sqlite3.Error, schema.NewerSchema) as exc:
        raise ConfigError(failure(config_path, path, exc) + (f" ({holds})" if holds else "")) from None
    return conn


def failure(config_path: Path, path: Path, exc: BaseException) -> str:
    """The one line a ConfigError about the file says."""
    return f"{config_path}: history.path: {explain(path, exc)}"


def prepare_files(path: Path) -> None:
    """The folder 0700 if chatd makes it, the file 0600."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    if path.is_dir():
        raise IsADirectoryError(21, "is a folder, not a file", str(path))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def explain(path: Path, exc: BaseException) -> str:
    text = str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
    if "not a database" in text:
        return f"{path} is not an SQLite database ({text}); move it away or choose another file"
    if "locked" in text or "busy" in text:
        return f"{path} is locked by another process ({text}); stop it (another chatd?) or choose another file"
    if isinstance(exc, schema.NewerSchema):
        return f"{path} was written by a newer chatd ({text}); upgrade chatd or choose another file"
    return f"cannot use {path} ({text}); check that chatd's user can read and write it and its folder"


def connect(path: Path, timeout: float, read_only: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode (read-write: usable from any one thread at a time)."""
    if read_only:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=timeout, isolation_level=None)
    else:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    if not read_only:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a commit survives a crash of chatd
    return conn
