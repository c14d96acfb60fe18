"""SQLiteAccounts: the `AccountStore` (chatd/core/accounts.py) in the history's
SQLite file (`history.path`; with history off, the file holds only these).

The chat core keeps everything small in memory and hands each change here as
it happens (`put_*`, `remove_*`): those only queue it, so an I/O worker never
waits for the disk. The `chatd-accounts-writer` thread writes what waits in
one short transaction on its own connection, beside the history writer's
(WAL lets both, and readers, go on); at a lower scheduling priority than the
I/O workers (chatd/priority.py), so that in a storm of sign-ins (each
`/resume` notes its token's last use) the workers run first and the writes
gather into fewer, larger transactions. A write that fails is kept and tried
again with backoff (`accounts_write_failed`, at most every 10 s). The
operator's commands wait for their change to be written (`sync`) before they
answer: "done" means on disk.

Tables: migration 4 of chatd/storage/schema.py.
"""

from __future__ import annotations

import collections
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import structlog

from chatd.core.accounts import Account, Invite, StoredAccounts, Token
from chatd.core.bans import Ban
from chatd.priority import BackgroundPriority
from chatd.storage.database import open_database
from chatd.storage.schema import transaction

log = structlog.get_logger(__name__)

RETRY_MAX: Final = 5.0
FAILURE_LOG_EVERY: Final = 10.0

_Write = Callable[[sqlite3.Connection], object]


def open_accounts(path: Path, config_path: Path, priority: BackgroundPriority | None = None) -> SQLiteAccounts:
    """Open (creating, migrating) the database at `path` for accounts; the
    writer thread lowers its priority with `priority`, if given.

    Raises:
        ConfigError: one line naming the file and what to do.
    """
    return SQLiteAccounts(open_database(path, config_path, holds="it holds the accounts"), path, priority)


class SQLiteAccounts:
    def __init__(self, conn: sqlite3.Connection, path: Path, priority: BackgroundPriority | None = None) -> None:
        self.path = path
        self._priority = priority  # None: the writer keeps the process's priority
        self._conn = conn
        self._pending: collections.deque[_Write] = collections.deque()
        self._done = threading.Condition()
        self._queued = 0  # writes handed over so far (under _done)
        self._written = 0  # of them, committed
        self._stop = False
        self.failures = 0
        self._logged_failure = -FAILURE_LOG_EVERY
        self._thread = threading.Thread(target=self._run, name="chatd-accounts-writer", daemon=True)

    # -- the AccountStore port ------------------------------------------------------------

    def load(self) -> StoredAccounts:
        """Everything, read on the starting thread (expired tokens deleted);
        then the writer starts."""
        conn = self._conn
        accounts = [
            Account(key, name, password, created, disabled, bool(deleted))
            for key, name, password, created, disabled, deleted in conn.execute(
                "SELECT key, name, password, created, disabled, deleted FROM accounts"
            )
        ]
        now = int(time.time() * 1000)
        with transaction(conn):  # expired tokens are of no use to anyone
            conn.execute("DELETE FROM tokens WHERE expires <= ?", (now,))
        tokens = [
            Token(*row)
            for row in conn.execute(
                "SELECT hash, account, created, expires, last_used FROM tokens WHERE expires > ?", (now,)
            )
        ]
        invites = [
            Invite(*row) for row in conn.execute("SELECT id, hash, uses, used, created, expires, note FROM invites")
        ]
        bans = [Ban(*row) for row in conn.execute("SELECT network, reason, created, expires FROM bans")]
        self._thread.start()
        return StoredAccounts(accounts, tokens, invites, bans)

    def put_account(self, account: Account) -> None:
        row = (account.key, account.name, account.password, account.created_ms, account.disabled, int(account.deleted))
        self._queue(
            lambda c: c.execute(
                "INSERT INTO accounts (key, name, password, created, disabled, deleted) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET name = excluded.name, password = excluded.password, "
                "created = excluded.created, disabled = excluded.disabled, deleted = excluded.deleted",
                row,
            )
        )

    def put_token(self, token: Token) -> None:
        row = (token.hash, token.account, token.created_ms, token.expires_ms, token.last_used_ms)
        self._queue(
            lambda c: c.execute(
                "INSERT INTO tokens (hash, account, created, expires, last_used) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (hash) DO UPDATE SET last_used = excluded.last_used",
                row,
            )
        )

    def remove_tokens(self, hashes: list[str]) -> None:
        rows = [(h,) for h in hashes]
        self._queue(lambda c: c.executemany("DELETE FROM tokens WHERE hash = ?", rows))

    def put_invite(self, invite: Invite) -> None:
        row = (invite.id, invite.hash, invite.uses, invite.used, invite.created_ms, invite.expires_ms, invite.note)
        self._queue(
            lambda c: c.execute(
                "INSERT INTO invites (id, hash, uses, used, created, expires, note) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET uses = excluded.uses, used = excluded.used",
                row,
            )
        )

    def remove_invite(self, invite_id: int) -> None:
        self._queue(lambda c: c.execute("DELETE FROM invites WHERE id = ?", (invite_id,)))

    def put_ban(self, ban: Ban) -> None:
        row = (ban.network, ban.reason, ban.created_ms, ban.expires_ms)
        self._queue(
            lambda c: c.execute(
                "INSERT INTO bans (network, reason, created, expires) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (network) DO UPDATE SET reason = excluded.reason, created = excluded.created, "
                "expires = excluded.expires",
                row,
            )
        )

    def remove_ban(self, network: str) -> None:
        self._queue(lambda c: c.execute("DELETE FROM bans WHERE network = ?", (network,)))

    def sync(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._done:
            target = self._queued
            while self._written < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._done.wait(left)
        return True

    def close(self) -> None:
        with self._done:
            self._stop = True
            self._done.notify_all()
        if self._thread.is_alive():
            self._thread.join(RETRY_MAX * 3)
        if self._pending:
            log.error("accounts_not_written", changes=len(self._pending), path=str(self.path))
        self._conn.close()

    # -- the writer thread ------------------------------------------------------------------

    def queue(self, write: _Write) -> None:
        """Another store's write in this file (chatd/storage/rooms.py), done by this
        writer in order with the accounts' own, and waited for by `sync`."""
        self._queue(write)

    def _queue(self, write: _Write) -> None:
        with self._done:
            self._pending.append(write)
            self._queued += 1
            self._done.notify_all()

    def _run(self) -> None:
        if self._priority is not None:
            self._priority.lower()
        delay = 0.5
        while True:
            with self._done:
                while not self._pending and not self._stop:
                    self._done.wait()
                if not self._pending:
                    return
                batch = list(self._pending)
            try:
                with transaction(self._conn) as conn:
                    for write in batch:
                        write(conn)
            except sqlite3.Error as exc:
                self.failures += 1
                self._log_failure(exc)
                time.sleep(delay)  # the stop flag cannot shorten a retry: close() waits RETRY_MAX * 3
                delay = min(RETRY_MAX, delay * 2)
                continue
            delay = 0.5
            with self._done:
                for _ in batch:
                    self._pending.popleft()
                self._written += len(batch)
                self._done.notify_all()

    def _log_failure(self, exc: sqlite3.Error) -> None:
        now = time.monotonic()
        if now - self._logged_failure >= FAILURE_LOG_EVERY:
            self._logged_failure = now
            log.error("accounts_write_failed", error=str(exc), path=str(self.path), waiting=len(self._pending))
