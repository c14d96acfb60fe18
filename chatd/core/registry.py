"""Registered rooms (issue 22): a room's owner, the roles accounts hold in
it, its flags, bans and invites, in memory, and the port behind them.

`Registry` is the view the sessions ask on their I/O threads, in O(1) and
without blocking, as `Accounts` is (core/accounts.py): everything is loaded
at start-up (`RoomStore.load`) and each change is handed to the store as it
happens (`put_*`, `remove_*`), which only queues it
(chatd/storage/rooms.py writes it on the accounts' writer thread). A
registered room persists whether or not it has members; the live `Room`
(core/rooms.py) points at its `Registration` while it has members, which is
what the fan-out path reads (`Registration.moderated`, once per message sent).

Roles belong to accounts (by key), never to guests: `owner` > `op` > `voice`
> `member` (no row). What each role may do, and the lines that tell the
members, are core/moderation.py's; who may join is `admission` here.

# NOTE: changes take `_lock` for the few lines that change a registration;
# readers read one attribute or one dict lookup without it (atomic under the
# GIL). `flags` and `bans` are replaced whole, never changed in place.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from chatd import names
from chatd.core import protocol
from chatd.core.bans import covers, parse_network
from chatd.errors import ProtocolError

ROLES: Final = ("member", "voice", "op", "owner")
RANK: Final = {role: rank for rank, role in enumerate(ROLES)}
VOICE, OP, OWNER = RANK["voice"], RANK["op"], RANK["owner"]
OPERATOR: Final = len(ROLES)  # the operator (control socket): above every role
FLAGS: Final = ("topic_ops", "private", "moderated", "accounts_only")
DEFAULT_FLAGS: Final = frozenset({"topic_ops"})  # a newly registered room's (Ergo's +t)
INVITE_MS: Final = 24 * 3600 * 1000  # an invite's life
ACCOUNT_MASK: Final = "account:"


@dataclass(frozen=True, slots=True)
class RoomBan:
    mask: str  # a nickname's key, `account:<key>`, or a network as ipaddress writes it
    reason: str
    by: str  # who set it, as shown (`*`: the operator)
    set_ms: int  # milliseconds since the Unix epoch


@dataclass(frozen=True, slots=True)
class RoomInvite:
    account: str  # the invited account's key
    by: str
    expires_ms: int


@dataclass(frozen=True)
class StoredRegistration:
    """One registered room as a store holds it."""

    key: str
    name: str
    owner: str  # the owner's account key
    flags: frozenset[str]
    created_ms: int
    topic: str = ""
    topic_by: str = "*"
    roles: dict[str, str] = field(default_factory=dict)  # account key -> voice | op (the owner's is `owner`)
    bans: list[RoomBan] = field(default_factory=list)
    invites: list[RoomInvite] = field(default_factory=list)


class RoomStore(Protocol):
    """Where registered rooms are kept: chatd.storage.rooms.SQLiteRooms, in the
    accounts' SQLite file. `put_*` and `remove_*` never block (any thread):
    they queue a write."""

    def load(self) -> list[StoredRegistration]: ...
    def put_room(self, room: StoredRegistration) -> None:
        """Its name, owner, flags and topic (roles, bans, invites: their own calls)."""

    def remove_room(self, key: str) -> None:
        """The room with its roles, bans and invites."""

    def put_role(self, room: str, account: str, role: str) -> None: ...
    def remove_role(self, room: str, account: str) -> None: ...
    def put_ban(self, room: str, ban: RoomBan) -> None: ...
    def remove_ban(self, room: str, mask: str) -> None: ...
    def put_invite(self, room: str, invite: RoomInvite) -> None: ...
    def remove_invite(self, room: str, account: str) -> None: ...
    def sync(self, timeout: float) -> bool:
        """Wait until every change queued so far is written (not on an I/O worker)."""


class Joiner(Protocol):
    """Who asks to join (chatd.core.session.Session)."""

    nick: str
    account: str | None

    @property
    def peer_ip(self) -> str: ...


class Registration:
    """One registered room: owner, roles, flags, bans, invites, and its topic."""

    def __init__(self, stored: StoredRegistration) -> None:
        self.key = stored.key
        self.name = stored.name
        self.owner = stored.owner
        self.created_ms = stored.created_ms
        self.topic, self.topic_by = stored.topic, stored.topic_by
        self.flags = stored.flags
        self.moderated = "moderated" in stored.flags  # read per message sent (Session.say)
        self.roles: dict[str, str] = {**stored.roles, stored.owner: "owner"}
        self.bans: tuple[RoomBan, ...] = tuple(stored.bans)
        self.invites: dict[str, RoomInvite] = {invite.account: invite for invite in stored.invites}
        # A guest's invite is for its connection (by nickname key): gone with it, never stored.
        self.guest_invites: dict[str, tuple[weakref.ref[Joiner], int]] = {}

    def rank(self, account: str | None) -> int:
        """The rank of an account's role here (a guest's, None: member)."""
        if account is None:
            return 0
        return RANK[self.roles.get(account, "member")]

    def role(self, account: str | None) -> str:
        return ROLES[self.rank(account)]

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def stored(self) -> StoredRegistration:
        return StoredRegistration(
            self.key, self.name, self.owner, self.flags, self.created_ms, self.topic, self.topic_by
        )

    def ban_of(self, joiner: Joiner) -> RoomBan | None:
        """The first ban that covers `joiner` (its nickname, account or address).
        Room bans last until lifted (the operator's may expire: core/bans.py)."""
        for ban in self.bans:
            if matches(ban.mask, joiner.nick, joiner.account, joiner.peer_ip):
                return ban
        return None


def parse_mask(text: str, max_nick_length: int) -> str:
    """A ban's mask as kept: `alice` -> `alice` (a nickname's key),
    `account:Alice` -> `account:alice`, `192.0.2.7` -> `192.0.2.7/32`,
    `2001:db8::/48` as is.

    Raises:
        ProtocolError: `bad_argument`, saying what a mask is.
    """
    if text.startswith(ACCOUNT_MASK):
        name = text[len(ACCOUNT_MASK) :]
        if names.is_nick(name, max_nick_length):
            return ACCOUNT_MASK + names.nick_key(name)
    elif names.is_nick(text, max_nick_length):
        return names.nick_key(text)
    else:
        try:
            return str(parse_network(text))
        except ValueError:
            pass
    raise ProtocolError(
        protocol.BAD_ARGUMENT,
        f"A ban is a nickname (alice), an account (account:alice) or an address or network "
        f"(192.0.2.7, 10.0.0.0/8, 2001:db8::/48), not {text}.",
    )


def matches(mask: str, nick: str, account: str | None, ip: str) -> bool:
    """Whether a ban's mask covers a client with this nickname, account and address."""
    if mask.startswith(ACCOUNT_MASK):
        return account is not None and mask[len(ACCOUNT_MASK) :] == account
    if "/" in mask:
        return covers(mask, ip)
    return names.nick_key(nick) == mask


class Registry:
    def __init__(self, store: RoomStore, wall: Callable[[], float] = time.time) -> None:
        """`wall`: the clock of stored times (invites' expiry, bans' time set)."""
        self.store = store
        self.wall = wall
        self._lock = threading.Lock()
        self._rooms = {stored.key: Registration(stored) for stored in store.load()}

    def now_ms(self) -> int:
        return int(self.wall() * 1000)

    def find(self, name: str) -> Registration | None:
        """The registration of room `name` (or key), or None."""
        return self._rooms.get(names.room_key(name))

    def all(self) -> list[Registration]:
        return sorted(self._rooms.values(), key=lambda registration: registration.key)

    def owned(self, account: str) -> int:
        """How many rooms `account` owns."""
        return sum(1 for registration in list(self._rooms.values()) if registration.owner == account)

    # -- changes (each handed to the store) ---------------------------------------------

    def register(self, name: str, owner: str) -> Registration:
        """Room `name` registered to account `owner`, with the default flags.

        Raises:
            ValueError: it is registered already.
        """
        key = names.room_key(name)
        with self._lock:
            if key in self._rooms:
                raise ValueError(f"{name} is registered already")
            registration = Registration(StoredRegistration(key, name, owner, DEFAULT_FLAGS, self.now_ms()))
            self._rooms[key] = registration
            self.store.put_room(registration.stored())
            self.store.put_role(key, owner, "owner")
        return registration

    def drop(self, registration: Registration) -> bool:
        """Forget the room's registration; False if it was not registered (any more)."""
        with self._lock:
            if self._rooms.get(registration.key) is not registration:
                return False
            del self._rooms[registration.key]
            self.store.remove_room(registration.key)
        return True

    def set_role(self, registration: Registration, account: str, role: str) -> None:
        """`account`'s role (`member` removes it). The owner changes with `set_owner` only."""
        assert role != "owner" and registration.roles.get(account) != "owner"
        with self._lock:
            if role == "member":
                registration.roles.pop(account, None)
                self.store.remove_role(registration.key, account)
            else:
                registration.roles[account] = role
                self.store.put_role(registration.key, account, role)

    def set_owner(self, registration: Registration, account: str) -> str:
        """Hand the room over to `account`; the previous owner becomes an op.
        Returns the previous owner's key."""
        with self._lock:
            previous = registration.owner
            registration.owner = account
            if previous != account:
                registration.roles[previous] = "op"
                self.store.put_role(registration.key, previous, "op")
            registration.roles[account] = "owner"
            self.store.put_role(registration.key, account, "owner")
            self.store.put_room(registration.stored())
        return previous

    def set_flag(self, registration: Registration, flag: str, on: bool) -> None:
        assert flag in FLAGS
        with self._lock:
            flags = registration.flags | {flag} if on else registration.flags - {flag}
            registration.flags = frozenset(flags)
            registration.moderated = "moderated" in flags
            self.store.put_room(registration.stored())

    def set_topic(self, registration: Registration, topic: str, by: str) -> None:
        with self._lock:
            registration.topic, registration.topic_by = topic, by
            self.store.put_room(registration.stored())

    def add_ban(self, registration: Registration, mask: str, reason: str, by: str) -> RoomBan:
        """Ban `mask` (as `parse_mask` gives it), replacing a ban of the same mask."""
        ban = RoomBan(mask, reason, by, self.now_ms())
        with self._lock:
            registration.bans = (*(b for b in registration.bans if b.mask != mask), ban)
            self.store.put_ban(registration.key, ban)
        return ban

    def remove_ban(self, registration: Registration, mask: str) -> RoomBan | None:
        with self._lock:
            found = next((ban for ban in registration.bans if ban.mask == mask), None)
            if found is not None:
                registration.bans = tuple(ban for ban in registration.bans if ban.mask != mask)
                self.store.remove_ban(registration.key, mask)
        return found

    def invite(self, registration: Registration, joiner: Joiner, by: str) -> int:
        """Let `joiner` into the room once, for `INVITE_MS`: its account, or
        (a guest) this connection. Returns when the invite expires."""
        expires = self.now_ms() + INVITE_MS
        with self._lock:
            if joiner.account is not None:
                invite = RoomInvite(joiner.account, by, expires)
                registration.invites[joiner.account] = invite
                self.store.put_invite(registration.key, invite)
            else:
                registration.guest_invites[names.nick_key(joiner.nick)] = (weakref.ref(joiner), expires)
        return expires

    def take_invite(self, registration: Registration, joiner: Joiner) -> bool:
        """Use `joiner`'s invite to the room, if it has one in force."""
        now = self.now_ms()
        with self._lock:
            if joiner.account is not None:
                invite = registration.invites.pop(joiner.account, None)
                if invite is not None:
                    self.store.remove_invite(registration.key, joiner.account)
                return invite is not None and invite.expires_ms > now
            held = registration.guest_invites.pop(names.nick_key(joiner.nick), None)
            return held is not None and held[0]() is joiner and held[1] > now

    def has_invite(self, registration: Registration, joiner: Joiner) -> bool:
        now = self.now_ms()
        if joiner.account is not None:
            invite = registration.invites.get(joiner.account)
            return invite is not None and invite.expires_ms > now
        held = registration.guest_invites.get(names.nick_key(joiner.nick))
        return held is not None and held[0]() is joiner and held[1] > now


def admission(registry: Registry, registration: Registration, joiner: Joiner) -> bool:
    """Whether `joiner` may join the registered room; True when that takes an
    invite (to be used with `take_invite` once the join succeeds).

    The owner always may. Then, in order: a ban (which wins over an invite),
    `accounts_only` (guests), `private` (voice and above, or an invite).

    Raises:
        ProtocolError: `banned_from_room`, `accounts_only`, `invite_only`.
    """
    rank = registration.rank(joiner.account)
    if rank >= OWNER:
        return False
    name = registration.name
    if registration.ban_of(joiner) is not None:
        raise ProtocolError(protocol.BANNED_FROM_ROOM, f"You are banned from {name}.")
    if joiner.account is None and registration.has("accounts_only"):
        raise ProtocolError(protocol.ACCOUNTS_ONLY, f"{name} is for signed-in accounts only; sign in to join it.")
    if registration.has("private") and rank < VOICE:
        if not registry.has_invite(registration, joiner):
            raise ProtocolError(protocol.INVITE_ONLY, f"{name} is invite-only; ask one of its ops to /invite you.")
        return True
    return False
