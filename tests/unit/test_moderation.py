"""Room roles and moderation in the core (issue 22; chatd/core/registry.py,
moderation.py, room_commands.py): sessions with in-memory outlets, a fake
wall clock for invites, passwords checked at once. What each command
answers, who may do what, what is private, and what reaches the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from chatd.config import Config, LimitsConfig, RoomsConfig
from chatd.config_accounts import AccountsConfig
from chatd.core.account_admin import AdminError
from chatd.core.accounts import Accounts
from chatd.core.chat import Chat
from chatd.core.registry import INVITE_MS, Registry, RoomBan, RoomInvite, StoredRegistration
from chatd.core.room_admin import RoomAdmin
from chatd.core.session import Session
from tests.support.chatclient import split_tags
from tests.support.rooms import InstantPasswords, MemoryRooms, NoAccountStore

WALL = 1_800_000_000.0


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
            self.session.on_close(reason, text)

    def set_deadline(self, when: float | None) -> None:
        pass

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.soon.append(callback)  # run by `World.settle`, as the session's worker would

    def pause_for_backlog(self) -> bool:
        return False

    def resume_after_backlog(self) -> None:
        pass

    def take(self) -> list[str]:
        lines, self.received = self.received, []
        return lines


class World:
    """A chat with accounts and registered rooms; `wall` is the registry's clock."""

    def __init__(self, stored: list[StoredRegistration] | None = None, **limits: object) -> None:
        self.wall = WALL
        self.store = MemoryRooms(stored)
        self.accounts = Accounts(AccountsConfig(), NoAccountStore(), InstantPasswords(), wall=lambda: self.wall)
        self.registry = Registry(self.store, wall=lambda: self.wall)
        config = Config(
            path=Path("chatd.yaml"),
            limits=dataclasses.replace(LimitsConfig(message_rate=0), **limits),  # type: ignore[arg-type]
            rooms=RoomsConfig(autojoin=("#lobby",), permanent=("#lobby",)),
        )
        self.chat = Chat(config, monotonic=lambda: 0.0, accounts=self.accounts, registry=self.registry)
        self.outlets: list[Outlet] = []

    def connect(self, ip: str = "192.0.2.1") -> Outlet:
        outlet = Outlet(f"{ip}:{40000 + len(self.outlets)}")
        outlet.session = Session(self.chat, outlet, {})
        outlet.session.on_open(None, None)
        outlet.take()
        self.outlets.append(outlet)
        return outlet

    def account(self, name: str, ip: str = "192.0.2.1") -> Outlet:
        """A connection signed in to account `name` (created if need be), past its autojoin."""
        if self.accounts.find(name) is None:
            self.accounts.create(name, "hash:pw")
        outlet = self.connect(ip)
        assert self.send(outlet, f"/login {name} pw")[-1] == "CURRENT #lobby"
        return outlet

    def guest(self, nick: str, ip: str = "192.0.2.1") -> Outlet:
        outlet = self.connect(ip)
        assert self.send(outlet, nick)[-1] == "CURRENT #lobby"
        return outlet

    def send(self, outlet: Outlet, *lines: str) -> list[str]:
        assert outlet.session is not None
        outlet.session.on_lines([line.encode() for line in lines])
        self.settle()
        return outlet.take()

    def settle(self) -> None:
        """Run what was handed to the sessions' own threads, until nothing is left."""
        while any(o.soon for o in self.outlets):
            for outlet in self.outlets:
                soon, outlet.soon = outlet.soon, []
                for callback in soon:
                    callback()

    def take_all(self) -> None:
        for outlet in self.outlets:
            outlet.take()


def owned_room(world: World, name: str = "#rust") -> tuple[Outlet, Outlet]:
    """alice registers `name` and bob (an account) joins it; their lines taken."""
    alice = world.account("alice")
    world.send(alice, f"/join {name}", f"/room register {name}")
    bob = world.account("bob", "192.0.2.2")
    world.send(bob, f"/join {name}")
    world.take_all()
    return alice, bob


def error_code(lines: list[str]) -> str:
    errors = [line for line in lines if line.startswith("ERR ")]
    assert len(errors) == 1, lines
    return errors[0].split(" ")[1]


# -- registering ---------------------------------------------------------------------------


def test_registering_makes_the_owner_and_tells_the_members() -> None:
    world = World()
    alice = world.account("alice")
    bob = world.guest("bob", "192.0.2.2")
    world.send(alice, "/join #rust")
    world.send(bob, "/join #rust")
    alice.take()
    expected = ["REGISTERED #rust alice", "ROLE #rust alice owner alice", "FLAG #rust topic_ops on alice"]
    assert world.send(alice, "/room register #rust") == expected
    assert bob.take() == expected
    registration = world.registry.find("#RUST")
    assert registration is not None and registration.owner == "alice" and registration.flags == {"topic_ops"}
    assert ("role", "#rust", "alice", "owner") in world.store.writes
    assert world.send(alice, "/room #rust") == ["FLAGS #rust topic_ops"]


def test_who_may_register() -> None:
    world = World(rooms_per_account=1)
    guest = world.guest("guest")
    world.send(guest, "/join #g")
    assert error_code(world.send(guest, "/room register #g")) == "not_logged_in"
    alice = world.account("alice")
    assert error_code(world.send(alice, "/room register #nowhere")) == "not_in_room"
    assert error_code(world.send(alice, "/room register #lobby")) == "not_allowed"  # the operator's
    world.send(alice, "/join #one", "/room register #one", "/join #two")
    assert error_code(world.send(alice, "/room register #two")) == "too_many_rooms"
    bob = world.account("bob")
    world.send(bob, "/join #one")
    assert "registered to alice" in world.send(bob, "/room register #one")[0]


def test_a_join_shows_roles_and_flags_and_a_role_holder_joining_is_announced() -> None:
    world = World()
    alice, _ = owned_room(world)
    world.send(alice, "/op #rust bob", "/part #rust")
    world.take_all()
    carol = world.guest("carol")
    world.send(carol, "/join #rust")
    lines = world.send(alice, "/join #rust")
    assert lines[lines.index("USERS #rust alice bob carol") + 1 :][:2] == [
        "ROLES #rust alice:owner bob:op",
        "FLAGS #rust topic_ops",
    ]
    assert carol.take() == ["JOIN #rust alice", "ROLE #rust alice owner *"]
    assert world.send(carol, "/who #rust") == ["USERS #rust alice bob carol", "ROLES #rust alice:owner bob:op"]
    assert world.send(carol, "/who #lobby") == ["USERS #lobby alice bob carol"]  # not registered: no ROLES


# -- roles ---------------------------------------------------------------------------------


def test_owners_make_ops_ops_make_voices_and_nobody_acts_upwards() -> None:
    world = World()
    alice, bob = owned_room(world)
    carol = world.account("carol")
    world.send(carol, "/join #rust")
    world.take_all()
    assert error_code(world.send(bob, "/op #rust carol")) == "not_allowed"
    assert world.send(alice, "/op #rust bob") == ["ROLE #rust bob op alice"]
    assert carol.take() == ["ROLE #rust bob op alice"]
    bob.take()
    assert world.send(bob, "/voice #rust carol") == ["ROLE #rust carol voice bob"]
    assert error_code(world.send(bob, "/deop #rust bob")) == "not_allowed"  # owners only
    assert error_code(world.send(bob, "/kick #rust alice")) == "not_allowed"  # the owner outranks
    assert error_code(world.send(carol, "/kick #rust bob")) == "not_allowed"  # a voice is no op
    assert world.send(bob, "/voice #rust carol")[0].startswith("INFO carol is voice")
    world.take_all()
    assert world.send(bob, "/devoice #rust carol") == ["ROLE #rust carol member bob"]
    world.take_all()
    assert world.send(alice, "/deop #rust bob") == ["ROLE #rust bob member alice"]
    assert ("remove_role", "#rust", "bob") in world.store.writes


def test_roles_are_for_accounts_never_guests() -> None:
    world = World()
    alice, _ = owned_room(world)
    guest = world.guest("guest")
    world.send(guest, "/join #rust")
    world.take_all()
    lines = world.send(alice, "/op #rust guest")
    assert error_code(lines) == "not_allowed" and "sign in" in lines[0]
    assert error_code(world.send(alice, "/voice #rust nobody")) == "no_such_nick"
    world.accounts.create("dave", "hash:pw")  # an account that is not connected gets a role by its name
    assert world.send(alice, "/op #rust dave") == ["ROLE #rust dave op alice"]


def test_topic_ops_leaves_the_topic_to_ops() -> None:
    world = World()
    alice, bob = owned_room(world)
    lines = world.send(bob, "/topic #rust mine now")
    assert error_code(lines) == "not_allowed"
    assert world.send(alice, "/topic #rust ours") == ["TOPIC #rust alice ours"]
    world.send(alice, "/op #rust bob")
    world.take_all()
    assert world.send(bob, "/topic #rust bob's") == ["TOPIC #rust bob bob's"]
    carol = world.guest("carol")
    world.send(carol, "/join #rust")
    assert error_code(world.send(carol, "/topic #rust guests too?")) == "not_allowed"
    world.send(alice, "/room #rust topic_ops off")
    assert world.send(carol, "/topic #rust guests too") == [
        "FLAG #rust topic_ops off alice",
        "TOPIC #rust carol guests too",
    ]


def test_moderated_only_voices_speak() -> None:
    world = World()
    alice, bob = owned_room(world)
    assert world.send(alice, "/room #rust moderated on") == ["FLAG #rust moderated on alice"]
    bob.take()
    world.send(bob, "/join #rust")  # a switch: #rust is bob's current room
    assert error_code(world.send(bob, "hello?", "/me waves")[:1]) == "moderated"
    assert alice.take() == []
    world.send(alice, "/voice #rust bob")
    world.take_all()
    assert world.send(bob, "now I may") == ["MSG #rust bob now I may"]
    assert alice.take() == ["MSG #rust bob now I may"]
    assert world.send(alice, "owners speak") == ["MSG #rust alice owners speak"]


# -- private rooms -------------------------------------------------------------------------


def test_a_private_room_does_not_exist_for_strangers() -> None:
    world = World()
    alice, bob = owned_room(world, "#secret")
    world.send(alice, "/topic #secret plans", "/room #secret private on")
    stranger = world.account("mallory", "198.51.100.9")
    for command in ("/who {}", "/topic {}", "/history {}", "/kick {} bob", "/room {}"):
        assert world.send(stranger, command.format("#secret")) == [
            line.replace("#nothere", "#secret") for line in world.send(stranger, command.format("#nothere"))
        ], command
    assert "#secret" not in " ".join(world.send(stranger, "/rooms"))
    assert "ROOM #secret 2 plans" in world.send(bob, "/rooms")  # its members see it
    assert error_code(world.send(stranger, "/join #secret")) == "invite_only"


def test_an_invite_lets_one_in_once_for_a_day() -> None:
    world = World()
    alice, _ = owned_room(world, "#secret")
    world.send(alice, "/room #secret private on")
    carol = world.account("carol", "198.51.100.3")
    guest = world.guest("guest", "198.51.100.4")
    world.take_all()
    assert world.send(alice, "/invite #secret carol") == ["INVITE #secret carol alice"]
    assert carol.take() == ["INVITE #secret carol alice"]
    assert world.send(carol, "/join #secret")[0] == "JOIN #secret carol"
    world.send(carol, "/part #secret")
    assert error_code(world.send(carol, "/join #secret")) == "invite_only"  # used up
    world.send(alice, "/invite #secret carol", "/invite #secret guest")
    world.wall += INVITE_MS / 1000 + 1
    assert error_code(world.send(carol, "/join #secret")) == "invite_only"  # expired
    assert error_code(world.send(guest, "/join #secret")) == "invite_only"
    world.send(alice, "/invite #secret guest")
    assert guest.take() == ["INVITE #secret guest alice"]
    assert world.send(guest, "/join #secret")[0] == "JOIN #secret guest"
    assert any(w[0] == "invite" and w[2].account == "carol" for w in world.store.writes)


def test_voices_enter_a_private_room_without_invites() -> None:
    world = World()
    alice, bob = owned_room(world, "#secret")
    world.send(alice, "/voice #secret bob", "/room #secret private on")
    world.send(bob, "/part #secret")
    assert world.send(bob, "/join #secret")[0] == "JOIN #secret bob"


# -- kicks and bans ------------------------------------------------------------------------


def test_a_kicked_member_is_out_and_may_come_back() -> None:
    world = World()
    alice, bob = owned_room(world)
    world.send(alice, "/op #rust bob")
    carol = world.guest("carol")
    world.send(carol, "/join #rust")
    world.take_all()
    assert world.send(bob, "/kick #rust carol spamming links") == ["KICK #rust carol bob kicked spamming links"]
    assert carol.take() == ["KICK #rust carol bob kicked spamming links", "CURRENT #lobby"]
    assert alice.take() == ["KICK #rust carol bob kicked spamming links"]
    assert error_code(world.send(carol, "/msg #rust still here?")) == "not_in_room"
    assert error_code(world.send(carol, "/history #rust")) == "not_in_room"
    assert world.send(carol, "/join #rust")[0] == "JOIN #rust carol"
    assert error_code(world.send(bob, "/kick #rust nobody")) == "no_such_nick"


@pytest.mark.parametrize("mask", ["mallory", "account:Mallory", "203.0.113.7", "203.0.113.0/24"])
def test_a_ban_removes_a_present_member_and_keeps_them_out(mask: str) -> None:
    world = World()
    alice, _ = owned_room(world)
    mallory = world.account("mallory", "203.0.113.7")
    world.send(mallory, "/join #rust")
    world.take_all()
    lines = world.send(alice, f"/ban #rust {mask} trolling")
    assert lines[0].startswith("INFO Banned ") and lines[0].endswith("; 1 removed.")
    assert lines[1:] == ["KICK #rust mallory alice banned trolling"]  # from mallory's own thread, after
    assert mallory.take() == ["KICK #rust mallory alice banned trolling", "CURRENT #lobby"]
    world.send(alice, "/invite #rust mallory")  # a ban wins over an invite
    assert error_code(world.send(mallory, "/join #rust")) == "banned_from_room"
    bans = world.send(alice, "/bans #rust")
    assert len(bans) == 2 and bans[0].startswith("BAN #rust ") and " alice 2027-01-15T" in bans[0]
    assert bans[-1] == "BANS #rust 1"
    shown = bans[0].split(" ")[2]
    assert world.send(alice, f"/unban #rust {shown}")[0].startswith("INFO Lifted")
    assert world.send(mallory, "/join #rust")[0] == "JOIN #rust mallory"


def test_bans_refuse_what_is_no_mask_and_what_outranks() -> None:
    world = World()
    alice, bob = owned_room(world)
    world.send(alice, "/op #rust bob")
    world.take_all()
    assert error_code(world.send(bob, "/ban #rust not/a/mask")) == "bad_argument"
    assert error_code(world.send(bob, "/ban #rust account:alice")) == "not_allowed"
    assert error_code(world.send(bob, "/ban #rust 192.0.2.0/24")) == "not_allowed"  # covers alice (and bob)
    assert error_code(world.send(bob, "/unban #rust nobody")) == "bad_argument"
    assert world.registry.find("#rust") is not None and world.registry.find("#rust").bans == ()  # type: ignore[union-attr]


def test_accounts_only_keeps_guests_out() -> None:
    world = World()
    alice, _ = owned_room(world)
    world.send(alice, "/room #rust accounts_only on")
    guest = world.guest("guest")
    assert error_code(world.send(guest, "/join #rust")) == "accounts_only"
    assert error_code(world.send(alice, "/room #rust loud on")) == "bad_argument"
    assert error_code(world.send(alice, "/room #rust private maybe")) == "bad_argument"


# -- the owner -----------------------------------------------------------------------------


def test_handing_over_and_dropping() -> None:
    world = World()
    alice, bob = owned_room(world)
    assert world.send(alice, "/room #rust owner bob") == ["ROLE #rust bob owner alice", "ROLE #rust alice op alice"]
    bob.take()
    assert error_code(world.send(alice, "/room drop #rust")) == "not_allowed"
    assert world.send(bob, "/room drop #rust") == ["REGISTERED #rust *"]
    assert world.registry.find("#rust") is None
    assert world.send(bob, "/topic #rust anyone may again") == ["TOPIC #rust bob anyone may again"]
    assert error_code(world.send(alice, "/kick #rust bob")) == "not_allowed"  # no roles any more


def test_an_owner_is_never_kept_out() -> None:
    world = World()
    alice, _ = owned_room(world)
    world.send(alice, "/room #rust private on", "/room #rust accounts_only on", "/part #rust")
    assert world.send(alice, "/join #rust")[0] == "JOIN #rust alice"


# -- what is kept --------------------------------------------------------------------------


def test_a_registry_loaded_from_its_store_has_every_role_flag_ban_and_invite() -> None:
    stored = StoredRegistration(
        "#rust",
        "#Rust",
        "alice",
        frozenset({"private", "moderated"}),
        1,
        "the topic",
        "alice",
        roles={"bob": "op", "carol": "voice"},
        bans=[RoomBan("account:mallory", "trolling", "bob", 2)],
        invites=[RoomInvite("dave", "bob", int(WALL * 1000) + 1000)],
    )
    world = World([stored])
    dave = world.account("dave")
    lines = world.send(dave, "/join #rust")
    assert lines[:2] == ["JOIN #Rust dave", "TOPIC #Rust alice the topic"]
    assert "FLAGS #Rust private moderated" in lines
    assert error_code(world.send(dave, "/msg #rust hi")) == "moderated"
    mallory = world.account("mallory")
    assert error_code(world.send(mallory, "/join #rust")) == "banned_from_room"
    registration = world.registry.find("#rust")
    assert registration is not None and registration.role("carol") == "voice" and registration.rank(None) == 0


# -- the operator (core/room_admin.py) -----------------------------------------------------


def test_the_operator_owns_permanent_rooms_and_is_above_every_role() -> None:
    world = World(rooms_per_account=0)  # users register nothing; the operator still may
    alice = world.account("alice")
    admin = RoomAdmin(world.chat)
    admin.set_owner("#lobby", "alice")
    assert alice.take() == ["REGISTERED #lobby alice", "ROLE #lobby alice owner *", "FLAG #lobby topic_ops on *"]
    bob = world.account("bob")
    admin.set_role("#lobby", "bob", "op")
    admin.set_flag("#lobby", "private", "on")
    assert alice.take()[-2:] == ["ROLE #lobby bob op *", "FLAG #lobby private on *"]
    with pytest.raises(AdminError, match="owns #lobby"):
        admin.set_role("#lobby", "alice", "member")
    with pytest.raises(AdminError, match="no account guest"):
        admin.set_role("#lobby", "guest", "op")
    with pytest.raises(AdminError, match="a role is one of owner, op, voice, member"):
        admin.set_role("#lobby", "bob", "admin")
    with pytest.raises(AdminError, match="not registered"):
        admin.registration("#elsewhere")
    with pytest.raises(AdminError, match="not a room name"):
        admin.registration("lobby")
    _, removed = admin.ban("#lobby", "account:alice", "even owners")  # the operator outranks owners
    world.settle()
    assert removed == 1 and "KICK #lobby alice * banned even owners" in alice.take()
    world.take_all()
    admin.set_owner("#lobby", "bob")
    assert bob.take() == ["ROLE #lobby bob owner *", "ROLE #lobby alice op *"]
    assert admin.drop("#lobby").name == "#lobby" and world.registry.find("#lobby") is None
    assert bob.take() == ["REGISTERED #lobby *"]


def test_a_room_is_registered_as_it_was_created_whatever_the_case_typed() -> None:
    world = World()
    alice = world.account("alice")
    world.send(alice, "/join #Rust")
    assert world.send(alice, "/room register #RUST")[0] == "REGISTERED #Rust alice"
    RoomAdmin(world.chat).set_owner("#LOBBY", "alice")
    assert [r.name for r in world.registry.all()] == ["#lobby", "#Rust"]
    assert [w[1].name for w in world.store.writes if w[0] == "room"] == ["#Rust", "#lobby"]
