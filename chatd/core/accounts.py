"""Accounts: registered nicknames with passwords (Ergo's "nick = account"),
the tokens that sign them in again, invite codes, address bans, and the two
ports behind them.

`Accounts` is the in-memory view the sessions ask, on their I/O threads, in
O(1) and without blocking: is this nickname an account, which account does a
token name, may this address try a password now (core/throttle.py), is it
banned (core/bans.py). Everything small is loaded at start-up
(`AccountStore.load`) and every change is handed to the store as it happens
(`put_*`, `remove_*`), which writes it later on a thread of its own
(chatd/storage/accounts.py): the view is the truth while chatd runs.

Passwords are never hashed here: a session hands them to the `Passwords`
port (chatd/auth.py: threads of their own, argon2id by chatd/passwords.py)
and gets the verdict back on its own thread. Tokens and invite codes are
kept only as SHA-256 (hex): a token is 256 random bits, a code 80, so a
fast hash is enough (what Synapse does with its access tokens), and a token
is checked from memory with no password hash at all.

The operator's side (create, disable, revoke, invites, bans) is
core/account_admin.py, on this same object.

# NOTE: methods take `_lock` for the few lines that change the tables; the
# tables' readers (`find`, `is_registered`, `token`) read one dict lookup
# without it, which the GIL makes atomic.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from chatd import names
from chatd.config_accounts import AccountsConfig
from chatd.core import protocol
from chatd.core.bans import Ban, Bans
from chatd.core.throttle import Throttles

DAY_MS = 86_400_000
METHODS = ("password", "register", "token", "certificate")
RESULTS = ("success", "failure", "throttled", "busy", "disabled", "banned")


@dataclass(frozen=True, slots=True)
class Account:
    key: str  # names.nick_key(name)
    name: str  # as registered: the nickname it signs in as
    password: str  # an argon2id hash string ($argon2id$v=19$m=...); "" once deleted
    created_ms: int
    disabled: str | None = None  # the operator's reason; None: enabled
    deleted: bool = False  # the name stays reserved


@dataclass(frozen=True, slots=True)
class Token:
    hash: str  # SHA-256 of the token, hex
    account: str  # the account's key
    created_ms: int
    expires_ms: int
    last_used_ms: int


@dataclass(frozen=True, slots=True)
class Invite:
    id: int  # what the operator lists and revokes it by
    hash: str  # SHA-256 of the normalised code, hex
    uses: int  # left
    used: int
    created_ms: int
    expires_ms: int | None
    note: str


@dataclass(frozen=True)
class StoredAccounts:
    """What a store holds at start-up."""

    accounts: list[Account] = field(default_factory=list)
    tokens: list[Token] = field(default_factory=list)
    invites: list[Invite] = field(default_factory=list)
    bans: list[Ban] = field(default_factory=list)


class AccountStore(Protocol):
    """Where accounts are kept: chatd.storage.accounts.SQLiteAccounts, beside the
    history in one SQLite file. `put_*` and `remove_*` never block (any thread):
    they queue a write, done later in a short transaction."""

    def load(self) -> StoredAccounts:
        """Start-up: every account, unexpired token, invite and ban."""

    def put_account(self, account: Account) -> None: ...
    def put_token(self, token: Token) -> None: ...
    def remove_tokens(self, hashes: list[str]) -> None: ...
    def put_invite(self, invite: Invite) -> None: ...
    def remove_invite(self, invite_id: int) -> None: ...
    def put_ban(self, ban: Ban) -> None: ...
    def remove_ban(self, network: str) -> None: ...
    def sync(self, timeout: float) -> bool:
        """Wait until every change queued so far is written (not on an I/O
        worker: the operator's commands answer after it); False on timeout."""

    def close(self) -> None:
        """Write what is queued, then let go."""


class Verdict(NamedTuple):
    ok: bool
    rehashed: str | None  # a new hash at the current cost, when the stored one was older


class Passwords(Protocol):
    """Password hashing off the I/O workers (chatd.auth.AuthThreads). Both
    return False when too many checks wait (`ERR auth_busy`); otherwise `done`
    is called later, once, on a hashing thread (where only the session's
    `outlet.call_soon` may be used)."""

    def verify(self, hash: str, password: str, done: Callable[[Verdict], None]) -> bool: ...
    def hash(self, password: str, done: Callable[[str], None]) -> bool: ...


class SignedIn(Protocol):
    """A connection signed in to an account (chatd.core.session.Session)."""

    nick: str
    peer: str
    connected_at: float  # time.time()
    account: str | None  # the account's key
    token: str | None  # the hash of the token it resumed with
    method: str  # how it signed in: one of METHODS

    def close(self, reason: str, text: str = "") -> None: ...


def digest(secret: str) -> str:
    """SHA-256 (hex) of a token or a normalised invite code: all that is kept of it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def normalise_code(code: str) -> str:
    """Invite codes ignore case and dashes (`k7q2x-...` is `K7Q2X...`)."""
    return code.replace("-", "").upper()


class Accounts:
    def __init__(
        self,
        config: AccountsConfig,
        store: AccountStore,
        passwords: Passwords,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`wall`: the clock of stored times (expiries; seconds since the epoch)."""
        self.config = config
        self.store = store
        self.passwords = passwords
        self.wall = wall
        self._lock = threading.Lock()
        stored = store.load()
        self._accounts = {account.key: account for account in stored.accounts}
        now = self.now_ms()
        self._tokens = {token.hash: token for token in stored.tokens if token.expires_ms > now}
        self._invites = {invite.hash: invite for invite in stored.invites}
        self._next_invite = max((invite.id for invite in stored.invites), default=0) + 1
        self.bans = Bans(stored.bans)
        self.throttles = Throttles(config.throttle)
        self._online: dict[str, SignedIn] = {}
        self._registering: set[str] = set()  # names whose registration is being hashed
        # Figures for the metrics (read without the lock: plain ints in dicts).
        self.logins: dict[tuple[str, str], int] = {(m, r): 0 for m in METHODS for r in RESULTS}
        self.throttled = 0

    def configure(self, config: AccountsConfig) -> None:
        """A reload: registration mode, guests, limits and throttles at once."""
        self.config = config
        self.throttles.configure(config.throttle)

    def now_ms(self) -> int:
        return int(self.wall() * 1000)

    def accounts_line(self) -> bytes:
        """`ACCOUNTS registration=<mode> guests=<yes|no>`, before the first `NICK`."""
        guests = "yes" if self.config.guests else "no"
        return protocol.format_line("ACCOUNTS", f"registration={self.config.registration} guests={guests}")

    def count(self, method: str, result: str) -> None:
        key = (method, result)
        self.logins[key] = self.logins.get(key, 0) + 1
        if result == "throttled":
            self.throttled += 1

    # -- accounts ------------------------------------------------------------------------

    def find(self, name: str) -> Account | None:
        """The account called `name` (any case), unless deleted."""
        account = self._accounts.get(names.nick_key(name))
        return None if account is None or account.deleted else account

    def is_registered(self, nick: str) -> bool:
        """Whether `nick` is an account's name, a deleted one's included (its
        name stays reserved), or one being registered now."""
        key = names.nick_key(nick)
        return key in self._accounts or key in self._registering

    def all(self) -> list[Account]:
        return sorted(self._accounts.values(), key=lambda account: account.key)

    def reserve(self, name: str) -> bool:
        """Hold `name` while its registration's password is hashed; False if it
        is an account, or being registered already."""
        key = names.nick_key(name)
        with self._lock:
            if key in self._accounts or key in self._registering:
                return False
            self._registering.add(key)
        return True

    def unreserve(self, name: str) -> None:
        with self._lock:
            self._registering.discard(names.nick_key(name))

    def create(self, name: str, password_hash: str, *, revive: bool = False) -> Account:
        """A new account (a reserved name's, or a deleted one's with `revive`).

        Raises:
            ValueError: the name is an account already.
        """
        key = names.nick_key(name)
        with self._lock:
            old = self._accounts.get(key)
            if old is not None and not (revive and old.deleted):
                raise ValueError(f"{old.name} is an account already")
            account = Account(key, name, password_hash, self.now_ms())
            self._accounts[key] = account
            self._registering.discard(key)
            self.store.put_account(account)
        return account

    def update(self, key: str, **changes: object) -> Account:
        """Change an account's `password`, `disabled` or `deleted`.

        Raises:
            KeyError: no such account.
        """
        with self._lock:
            account = dataclasses.replace(self._accounts[key], **changes)  # type: ignore[arg-type]
            self._accounts[key] = account
            self.store.put_account(account)
        return account

    # -- who is signed in ------------------------------------------------------------------

    def signed_in(self, session: SignedIn) -> None:
        assert session.account is not None
        with self._lock:
            self._online[session.account] = session

    def signed_out(self, session: SignedIn) -> None:
        if session.account is None:
            return
        with self._lock:
            if self._online.get(session.account) is session:
                del self._online[session.account]

    def online(self, key: str) -> SignedIn | None:
        return self._online.get(key)

    # -- tokens ----------------------------------------------------------------------------

    def issue_token(self, key: str, days: int) -> tuple[str, Token]:
        """A new token for account `key`, valid `days`: (the token, what is kept of it)."""
        plain = secrets.token_urlsafe(32)
        now = self.now_ms()
        token = Token(digest(plain), key, now, now + days * DAY_MS, now)
        with self._lock:
            self._tokens[token.hash] = token
            self.store.put_token(token)
        return plain, token

    def resume(self, plain: str) -> tuple[Account, Token] | None:
        """The account a token signs in (maybe disabled: the caller says so),
        with the token, its last use noted; None for a token unknown, expired,
        revoked, or a deleted account's."""
        token = self._tokens.get(digest(plain))
        now = self.now_ms()
        if token is None:
            return None
        account = self._accounts.get(token.account)
        if token.expires_ms <= now or account is None or account.deleted:
            self.revoke_tokens(token.account, [token.hash])
            return None
        token = dataclasses.replace(token, last_used_ms=now)
        with self._lock:
            if token.hash in self._tokens:
                self._tokens[token.hash] = token
                self.store.put_token(token)
        return account, token

    def tokens(self, key: str) -> list[Token]:
        now = self.now_ms()
        found = [t for t in list(self._tokens.values()) if t.account == key and t.expires_ms > now]
        return sorted(found, key=lambda token: token.created_ms)

    def revoke_tokens(self, key: str, hashes: Iterable[str] | None = None) -> list[Token]:
        """Forget account `key`'s tokens (those of `hashes`, or all); returns them.
        Closing the connection that used one is the caller's (it knows why)."""
        with self._lock:
            wanted = set(hashes) if hashes is not None else None
            gone = [t for t in self._tokens.values() if t.account == key and (wanted is None or t.hash in wanted)]
            for token in gone:
                del self._tokens[token.hash]
            if gone:
                self.store.remove_tokens([token.hash for token in gone])
        return gone

    def token_count(self) -> int:
        return len(self._tokens)

    # -- invites ---------------------------------------------------------------------------

    def new_invite(self, uses: int, expires_ms: int | None, note: str) -> tuple[str, Invite]:
        """A new invite code (shown once) and what is kept of it."""
        code = "-".join(secrets.token_hex(10).upper()[i : i + 5] for i in range(0, 20, 5))
        with self._lock:
            invite = Invite(self._next_invite, digest(normalise_code(code)), uses, 0, self.now_ms(), expires_ms, note)
            self._next_invite += 1
            self._invites[invite.hash] = invite
            self.store.put_invite(invite)
        return code, invite

    def invites(self) -> list[Invite]:
        return sorted(self._invites.values(), key=lambda invite: invite.id)

    def take_invite(self, code: str) -> Invite | None:
        """Use one of an invite's uses (given back by `return_invite` if the
        registration then fails); None if the code is unknown, used up or expired."""
        hashed = digest(normalise_code(code))
        with self._lock:
            invite = self._invites.get(hashed)
            if invite is None or invite.uses <= 0:
                return None
            if invite.expires_ms is not None and invite.expires_ms <= self.now_ms():
                return None
            invite = dataclasses.replace(invite, uses=invite.uses - 1, used=invite.used + 1)
            self._invites[hashed] = invite
            self.store.put_invite(invite)
        return invite

    def return_invite(self, taken: Invite) -> None:
        with self._lock:
            invite = self._invites.get(taken.hash)
            if invite is not None:
                invite = dataclasses.replace(invite, uses=invite.uses + 1, used=invite.used - 1)
                self._invites[taken.hash] = invite
                self.store.put_invite(invite)

    def revoke_invite(self, invite_id: int) -> Invite | None:
        with self._lock:
            found = next((i for i in self._invites.values() if i.id == invite_id), None)
            if found is not None:
                del self._invites[found.hash]
                self.store.remove_invite(invite_id)
        return found

    # -- bans ------------------------------------------------------------------------------

    def banned(self, ip: str) -> Ban | None:
        return self.bans.match(ip, self.now_ms())

    def put_ban(self, ban: Ban) -> None:
        with self._lock:
            self.bans.put(ban)
            self.store.put_ban(ban)

    def remove_ban(self, network: str) -> Ban | None:
        with self._lock:
            removed = self.bans.remove(network)
            if removed is not None:
                self.store.remove_ban(removed.network)
        return removed
