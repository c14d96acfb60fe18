"""Registered rooms for unit tests (chatd/core/registry.py): a `RoomStore` in
memory that records its writes, an `AccountStore` that keeps nothing, and
password checks that succeed at once (`hash:<password>` is the hash of
<password>): enough to sign sessions in without the cost of argon2."""

from __future__ import annotations

from collections.abc import Callable

from chatd.core.accounts import Account, Invite, StoredAccounts, Token, Verdict
from chatd.core.bans import Ban
from chatd.core.registry import RoomBan, RoomInvite, StoredRegistration


class MemoryRooms:
    """A `RoomStore`: `stored` is what `load` hands back; `writes` what was asked since."""

    def __init__(self, stored: list[StoredRegistration] | None = None) -> None:
        self.stored = stored or []
        self.writes: list[tuple[object, ...]] = []

    def load(self) -> list[StoredRegistration]:
        return self.stored

    def put_room(self, room: StoredRegistration) -> None:
        self.writes.append(("room", room))

    def remove_room(self, key: str) -> None:
        self.writes.append(("remove_room", key))

    def put_role(self, room: str, account: str, role: str) -> None:
        self.writes.append(("role", room, account, role))

    def remove_role(self, room: str, account: str) -> None:
        self.writes.append(("remove_role", room, account))

    def put_ban(self, room: str, ban: RoomBan) -> None:
        self.writes.append(("ban", room, ban))

    def remove_ban(self, room: str, mask: str) -> None:
        self.writes.append(("remove_ban", room, mask))

    def put_invite(self, room: str, invite: RoomInvite) -> None:
        self.writes.append(("invite", room, invite))

    def remove_invite(self, room: str, account: str) -> None:
        self.writes.append(("remove_invite", room, account))

    def sync(self, timeout: float) -> bool:
        return True


class NoAccountStore:
    """An `AccountStore` that starts empty and keeps nothing."""

    def load(self) -> StoredAccounts:
        return StoredAccounts()

    def put_account(self, account: Account) -> None:
        pass

    def put_token(self, token: Token) -> None:
        pass

    def remove_tokens(self, hashes: list[str]) -> None:
        pass

    def put_invite(self, invite: Invite) -> None:
        pass

    def remove_invite(self, invite_id: int) -> None:
        pass

    def put_ban(self, ban: Ban) -> None:
        pass

    def remove_ban(self, network: str) -> None:
        pass

    def sync(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


class InstantPasswords:
    """The `Passwords` port, answering at once: `hash:<password>` matches <password>."""

    def verify(self, hash: str, password: str, done: Callable[[Verdict], None]) -> bool:
        done(Verdict(hash == f"hash:{password}", None))
        return True

    def hash(self, password: str, done: Callable[[str], None]) -> bool:
        done(f"hash:{password}")
        return True
