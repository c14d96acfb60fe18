"""The accounts, put together for the server: the SQLite store in the history's
file, the hashing threads with argon2id, and the core's `Accounts` view over
both (chatd/core/accounts.py); beside them the registered rooms, whose roles
are accounts' (`Registry`, chatd/core/registry.py, in the same file); their
figures for /metrics and `chatctl status`; what a reload changes.

What is not here: what accounts mean (chatd/core/), the operator's commands
on them (chatd/account_operations.py).
"""

from __future__ import annotations

import sqlite3
from typing import Final

from chatd.auth import AuthThreads
from chatd.config import Config
from chatd.core.accounts import METHODS, RESULTS, Accounts
from chatd.core.registry import Registry
from chatd.errors import ConfigError
from chatd.passwords import Argon2
from chatd.priority import BackgroundPriority
from chatd.stats import AccountFigures
from chatd.storage.accounts import SQLiteAccounts, open_accounts
from chatd.storage.database import failure
from chatd.storage.rooms import SQLiteRooms

SYNC_TIMEOUT: Final = 10.0  # seconds an operator's change may take to reach the disk


class AccountService:
    def __init__(self, accounts: Accounts, auth: AuthThreads, store: SQLiteAccounts, registry: Registry) -> None:
        self.accounts = accounts
        self.auth = auth
        self.store = store
        self.registry = registry
        self._cost = accounts.config.argon2

    def configure(self, config: Config) -> None:
        """A reload: the new cost of new hashes, the queue's bound, and the
        core's settings (registration, guests, throttles)."""
        if config.accounts.argon2 != self._cost:
            self._cost = config.accounts.argon2
            self.auth.hasher = Argon2(self._cost)
        self.auth.queue_max = config.accounts.auth_queue

    def figures(self) -> AccountFigures:
        """Read without the view's lock: a copy of a few dicts and counts."""
        auth = self.auth.stats()
        accounts = [a for a in self.accounts.all() if not a.deleted]
        logins = {(m, r): 0 for m in METHODS for r in RESULTS}
        logins.update(dict(self.accounts.logins))
        return AccountFigures(
            logins=logins,
            throttled=self.accounts.throttled,
            hashes=auth.hashes,
            hash_seconds=auth.hash_seconds,
            queue_waiting=auth.waiting,
            queue_running=auth.running,
            accounts=len(accounts),
            disabled=sum(1 for a in accounts if a.disabled is not None),
            tokens=self.accounts.token_count(),
        )

    def stop(self) -> None:
        """The hashing threads end; the store is closed by the chat (Chat.close)."""
        self.auth.stop()


def open_account_service(config: Config, priority: BackgroundPriority | None = None) -> AccountService | None:
    """The accounts of `config`, or None with `accounts.enabled: false`; the
    hashing threads and the accounts' writer lower their priority with
    `priority`, if given.

    Raises:
        ConfigError: the database cannot be opened.
    """
    settings = config.accounts
    if not settings.enabled:
        return None
    store = open_accounts(config.history.path, config.path, priority)
    auth = AuthThreads(Argon2(settings.argon2), settings.auth_threads, settings.auth_queue, priority)
    accounts = Accounts(settings, store, auth)  # starts the writer the rooms share
    try:
        registry = Registry(SQLiteRooms(config.history.path, store))
    except sqlite3.Error as exc:
        raise ConfigError(failure(config.path, config.history.path, exc) + " (it holds the registered rooms)") from None
    return AccountService(accounts, auth, store, registry)
