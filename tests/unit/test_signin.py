"""chatd/core/signin.py and core/accounts.py on sessions with in-memory
outlets, a fake clock and fake password hashing that the test completes by
hand: what waits for a hash, what is refused before one, tokens, invites,
replacement, and the store's writes."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from chatd.config import Config
from chatd.config_accounts import AccountsConfig
from chatd.core.accounts import Account, Accounts, Invite, StoredAccounts, Token, Verdict, digest, normalise_code
from chatd.core.bans import Ban
from chatd.core.chat import Chat
from chatd.core.session import HELD_MAX, Session
from chatd.outlet import Command
from tests.support.chatclient import split_tags

NOW = 1_800_000_000.0


class MemoryAccounts:
    """An `AccountStore` (chatd/core/accounts.py) in memory, recording the writes."""

    def __init__(self, stored: StoredAccounts | None = None) -> None:
        self.stored = stored or StoredAccounts()
        self.writes: list[tuple[str, object]] = []

    def load(self) -> StoredAccounts:
        return self.stored

    def put_account(self, account: Account) -> None:
        self.writes.append(("account", account))

    def put_token(self, token: Token) -> None:
        self.writes.append(("token", token))

    def remove_tokens(self, hashes: list[str]) -> None:
        self.writes.append(("remove_tokens", hashes))

    def put_invite(self, invite: Invite) -> None:
        self.writes.append(("invite", invite))

    def remove_invite(self, invite_id: int) -> None:
        self.writes.append(("remove_invite", invite_id))

    def put_ban(self, ban: Ban) -> None:
        self.writes.append(("ban", ban))

    def remove_ban(self, network: str) -> None:
        self.writes.append(("remove_ban", network))

    def sync(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Hashing:
    """The `Passwords` port: jobs wait in `pending` until the test runs them."""

    def __init__(self, limit: int = 100) -> None:
        self.pending: list[Callable[[], None]] = []
        self.limit = limit
        self.hashes = 0

    def verify(self, hash: str, password: str, done: Callable[[Verdict], None]) -> bool:
        if len(self.pending) >= self.limit:
            return False
        self.pending.append(lambda: done(Verdict(hash == f"hash:{password}", None)))
        return True

    def hash(self, password: str, done: Callable[[str], None]) -> bool:
        if len(self.pending) >= self.limit:
            return False
        self.pending.append(lambda: done(f"hash:{password}"))
        return True

    def run(self) -> None:
        jobs, self.pending = self.pending, []
        for job in jobs:
            self.hashes += 1
            job()


class Outlet:
    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.connected_at = 0.0
        self.received: list[str] = []
        self.closed: tuple[str, str] | None = None
        self.session: Session | None = None
        self.soon: list[Callable[[], None]] = []

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        self.received.extend(split_tags(line)[1] for line in data.decode().splitlines())

    def close(self, reason: str, text: str = "") -> None:
        if self.closed is None:
            self.closed = (reason, text)
            assert self.session is not None
            self.received.append(self.session.on_close(reason, text).decode().rstrip("\n"))

    def set_deadline(self, when: float | None) -> None:
        pass

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.soon.append(callback)  # run by `settle`, as the session's worker would

    def pause_for_backlog(self) -> bool:
        return False

    def resume_after_backlog(self) -> None:
        pass

    def take(self) -> list[str]:
        lines, self.received = self.received, []
        return lines


class World:
    def __init__(self, stored: StoredAccounts | None = None, **settings: object) -> None:
        self.store = MemoryAccounts(stored)
        self.hashing = Hashing()
        config = AccountsConfig(**settings)  # type: ignore[arg-type]
        self.accounts = Accounts(config, self.store, self.hashing, wall=lambda: NOW)
        self.chat = Chat(Config(path=Path("chatd.yaml"), accounts=config), monotonic=Clock(), accounts=self.accounts)
        self.outlets: list[Outlet] = []

    def connect(self, ip: str = "192.0.2.1") -> Outlet:
        outlet = Outlet(f"{ip}:{40000 + len(self.outlets)}")
        outlet.session = Session(self.chat, outlet, {})
        outlet.session.on_open(None, None)
        self.outlets.append(outlet)
        return outlet

    def send(self, outlet: Outlet, *lines: str) -> list[str]:
        assert outlet.session is not None
        outlet.session.on_lines([line.encode() for line in lines])
        return outlet.take()

    def settle(self) -> None:
        """Run the hashes, then what they handed back, until nothing is left."""
        while self.hashing.pending or any(o.soon for o in self.outlets):
            self.hashing.run()
            for outlet in self.outlets:
                soon, outlet.soon = outlet.soon, []
                for callback in soon:
                    callback()


def alice(world: World, password: str = "correct horse") -> Account:
    return world.accounts.create("Alice", f"hash:{password}")


def test_the_greeting_has_the_accounts_line() -> None:
    world = World(registration="invite", guests=False)
    outlet = Outlet("192.0.2.1:1")
    outlet.session = Session(world.chat, outlet, {})
    outlet.session.on_open(None, None)
    assert outlet.take()[1:] == ["ACCOUNTS registration=invite guests=no", "NICK"]


def test_login_waits_for_the_check_and_holds_the_lines_meanwhile() -> None:
    world = World()
    alice(world)
    outlet = world.connect()
    outlet.take()
    assert world.send(outlet, "/login alice correct horse", "/join #later", "hello") == []
    assert world.hashing.pending  # nothing answered before the hash
    world.settle()
    lines = outlet.take()
    assert lines[0].startswith("WELCOME Alice ")  # the account's spelling
    assert lines[-2:] == ["CURRENT #later", "MSG #later Alice hello"]


def test_a_wrong_password_is_auth_failed_then_nick_and_counts_an_attempt() -> None:
    world = World()
    alice(world)
    outlet = world.connect()
    outlet.take()
    world.send(outlet, "/login alice wrong password", "bob")
    world.settle()
    lines = outlet.take()
    assert lines[0] == "ERR auth_failed Wrong account name or password."
    assert lines[1] == "NICK"
    assert lines[2].startswith("WELCOME bob ")  # the held line, taken as a nickname after the answer


def test_an_unknown_account_costs_no_hash() -> None:
    world = World()
    outlet = world.connect()
    outlet.take()
    assert world.send(outlet, "/login nobody some password")[0].startswith("ERR auth_failed ")
    assert not world.hashing.pending


def test_throttled_before_any_hash_and_a_token_still_works() -> None:
    world = World()
    alice(world)
    plain, _ = world.accounts.issue_token("alice", 30)
    outlet = world.connect()
    outlet.take()
    for _ in range(4):
        world.send(outlet, "/login alice wrong password")
        world.settle()
    outlet.take()
    other = world.connect()  # a fifth failure from the same address locks it out
    world.send(other, "/login alice wrong password")
    world.settle()
    other.take()
    before = world.hashing.hashes
    lines = world.send(other, "/login alice correct horse")
    assert lines[0].startswith("ERR auth_throttled ")
    assert world.hashing.hashes == before and not world.hashing.pending
    third = world.connect("192.0.2.3")
    third.take()
    assert world.send(third, f"/resume {plain}")[0].startswith("WELCOME Alice ")


def test_guests_and_registered_names() -> None:
    world = World()
    alice(world)
    outlet = world.connect()
    outlet.take()
    assert world.send(outlet, "ALICE")[0].startswith("ERR nick_registered ")
    closed = World(guests=False)
    other = closed.connect()
    other.take()
    assert closed.send(other, "bob")[0].startswith("ERR login_required ")


def test_register_in_each_mode() -> None:
    world = World(registration="closed")
    outlet = world.connect()
    outlet.take()
    assert world.send(outlet, "/register bob * long enough")[0].startswith("ERR registration_closed ")
    world = World(registration="invite")
    code, invite = world.accounts.new_invite(1, None, "")
    assert invite.hash == hashlib.sha256(normalise_code(code).encode()).hexdigest()
    outlet = world.connect()
    outlet.take()
    assert world.send(outlet, "/register bob * long enough")[0].startswith("ERR registration_closed ")
    assert world.send(outlet, "/register bob NOPE long enough")[0].startswith("ERR invite_invalid ")
    assert world.send(outlet, "/register bob CODE short")[0].startswith("ERR password_invalid ")
    world.send(outlet, f"/register bob {code.lower()} long enough")
    world.settle()
    assert outlet.take()[0].startswith("WELCOME bob ")
    other = world.connect()
    other.take()
    assert world.send(other, f"/register carol {code} long enough")[0].startswith("ERR invite_invalid ")
    assert [kind for kind, _ in world.store.writes] == ["invite", "invite", "account"]


def test_a_registration_that_ends_before_its_hash_gives_back_its_name_and_invite() -> None:
    world = World(registration="invite")
    code, _ = world.accounts.new_invite(1, None, "")
    outlet = world.connect()
    outlet.take()
    world.send(outlet, f"/register bob {code} long enough")
    assert world.accounts.is_registered("bob")  # reserved while hashing
    assert outlet.session is not None
    outlet.close("quit")
    world.settle()
    assert not world.accounts.is_registered("bob")
    assert world.accounts.take_invite(code) is not None


def test_a_second_sign_in_replaces_the_first_after_its_leave() -> None:
    world = World()
    alice(world)
    plain, _ = world.accounts.issue_token("alice", 30)
    first = world.connect()
    world.send(first, f"/resume {plain}")
    bob = world.connect()
    world.send(bob, "bob")
    second = world.connect()
    second.take()
    bob.take()
    world.send(second, f"/resume {plain}")
    assert first.closed == ("replaced", "")
    assert first.take()[-1] == "BYE replaced"
    assert bob.take()[0] == "LEAVE Alice replaced"
    world.settle()
    assert second.take()[0].startswith("WELCOME Alice ")
    assert world.accounts.online("alice") is second.session


def test_held_lines_are_bounded() -> None:
    world = World()
    alice(world)
    outlet = world.connect()
    outlet.take()
    world.send(outlet, "/login alice correct horse", *(["x"] * HELD_MAX), "one too many")
    assert outlet.closed == ("flood", "")


def test_tokens_expire_and_are_kept_as_sha256() -> None:
    world = World()
    alice(world)
    plain, token = world.accounts.issue_token("alice", 1)
    assert token.hash == digest(plain) == hashlib.sha256(plain.encode()).hexdigest()
    assert len(plain) == 43
    world.accounts.wall = lambda: NOW + 86_401
    assert world.accounts.resume(plain) is None
    assert world.accounts.token_count() == 0


def test_tokens_of_a_disabled_account_say_so_and_of_a_deleted_one_are_gone() -> None:
    world = World()
    account = alice(world)
    plain, _ = world.accounts.issue_token("alice", 30)
    world.accounts.update(account.key, disabled="spam")
    outlet = world.connect()
    outlet.take()
    assert world.send(outlet, f"/resume {plain}")[0] == "ERR account_disabled An operator disabled this account: spam"
    world.accounts.update(account.key, deleted=True, disabled=None)
    assert world.accounts.resume(plain) is None


def test_loaded_accounts_bans_and_an_expired_ban() -> None:
    stored = StoredAccounts(
        accounts=[Account("dana", "Dana", "hash:x", 0)],
        bans=[Ban("198.51.100.0/24", "spam", 0, None), Ban("203.0.113.7/32", "", 0, int(NOW * 1000) - 1)],
    )
    world = World(stored)
    assert world.accounts.is_registered("DANA")
    assert world.accounts.banned("198.51.100.9") is not None
    assert world.accounts.banned("::ffff:198.51.100.9") is not None  # an IPv4 client of a dual-stack socket
    assert world.accounts.banned("203.0.113.7") is None  # expired
    outlet = Outlet("198.51.100.9:5")
    outlet.session = Session(world.chat, outlet, {})
    outlet.session.on_open("banned", None)
    assert outlet.take() == ["ERR banned Your address is banned from this server: spam", "BYE banned"]


@pytest.mark.parametrize("line", ["/login alice correct horse", "/register x * long enough", "/resume abc"])
def test_after_welcome_they_are_refused(line: str) -> None:
    world = World()
    outlet = world.connect()
    world.send(outlet, "bob")
    assert world.send(outlet, line) == ["ERR already_registered You are already signed in as bob."], dataclasses.asdict(
        world.accounts.config
    )


# -- IRC's SASL (core/sasl.py): the IRC codec's "sasl" commands ------------------------------


def sasl(world: World, outlet: Outlet, command: Command) -> list[str]:
    assert outlet.session is not None
    outlet.session.on_lines([command])
    world.settle()
    return outlet.take()


def test_sasl_plain_proves_the_account_and_registering_signs_in_to_it() -> None:
    world = World()
    alice(world)
    outlet = world.connect()
    outlet.take()
    assert sasl(world, outlet, Command("sasl", b"correct horse", "alice", "PLAIN")) == ["PROVEN Alice"]
    assert world.chat.nicks.find("alice") is None  # nobody is signed in before registering
    lines = world.send(outlet, "whatever")  # the IRC codec hands the nickname; the account's is used
    assert lines[0].startswith("WELCOME Alice ")
    assert outlet.session is not None and outlet.session.account == "alice"


def test_sasl_plain_is_refused_as_login_is() -> None:
    world = World()
    alice(world)
    outlet = world.connect()
    outlet.take()
    wrong = sasl(world, outlet, Command("sasl", b"wrong password", "alice", "PLAIN"))
    assert wrong == ["ERR auth_failed Wrong account name or password.", "NICK"]
    assert world.send(outlet, "bob")[0].startswith("WELCOME bob ")  # then a guest, as without SASL


def test_sasl_plain_of_an_account_disabled_before_registering_is_refused_then() -> None:
    world = World()
    account = alice(world)
    outlet = world.connect()
    outlet.take()
    assert sasl(world, outlet, Command("sasl", b"correct horse", "alice", "PLAIN")) == ["PROVEN Alice"]
    world.accounts.update(account.key, disabled="spam")
    assert world.send(outlet, "alice")[0] == "ERR account_disabled An operator disabled this account: spam"


def test_sasl_external_is_the_certificates_name_only_with_nick_from_cert() -> None:
    world = World()
    outlet = world.connect()
    outlet.take()
    assert sasl(world, outlet, Command("sasl", option="EXTERNAL"))[0].startswith("ERR auth_failed ")
    config = world.chat.config
    world.chat.config = dataclasses.replace(config, tls=dataclasses.replace(config.tls, nick_from_cert=True))
    proven = Outlet("192.0.2.9:1")
    proven.session = Session(world.chat, proven, {})
    proven.session.on_open(None, "carol")
    world.outlets.append(proven)
    proven.take()
    assert sasl(world, proven, Command("sasl", target="dave", option="EXTERNAL"))[0].startswith("ERR auth_failed ")
    assert sasl(world, proven, Command("sasl", target="Carol", option="EXTERNAL")) == ["PROVEN carol"]
