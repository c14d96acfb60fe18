"""Room roles and moderation against a real chatd over real TLS (issue 22,
docs/protocol.md "Room roles"): what a private room shows strangers,
invites, topic_ops, moderated rooms, kicks, bans by nickname, account and
address, what survives a restart, and the audit events."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Daemon, chatctl_for
from tests.support.accounts import FAST_ARGON2, rows, signed_in
from tests.support.chatclient import ChatClient

PASSWORD = "correct horse battery staple"


@pytest.fixture
def chatd(start_daemon: Callable[..., Daemon], short_dir: Any) -> Daemon:
    """A chatd with accounts (cheap argon2, open registration from one address),
    a control socket, and no autojoin room: every client's lines are its rooms'.
    Two I/O threads, so that a kick often crosses from one to the other."""
    return start_daemon(
        server={"io_threads": 2},
        accounts={"argon2": FAST_ARGON2, "throttle": {"registrations_per_address_per_hour": 0}},
        control={"socket": str(short_dir / "control.sock")},
        rooms={"autojoin": []},
    )


def account(daemon: Daemon, name: str, source: str | None = None) -> ChatClient:
    """A new account `name`, signed in (from `source`, an address of 127/8)."""
    extra = {"source": source} if source else {}
    client = signed_in(daemon, f"/register {name} * {PASSWORD}", name, **extra)
    daemon.clients.append(client)
    return client


def login(daemon: Daemon, name: str, source: str | None = None) -> ChatClient:
    extra = {"source": source} if source else {}
    client = signed_in(daemon, f"/login {name} {PASSWORD}", name, **extra)
    daemon.clients.append(client)
    return client


def answer(client: ChatClient, line: str) -> list[str]:
    """What the server answers `line` with (the lines before a `/ping`'s `PONG`)."""
    client.send(line)
    return client.sync()


def refusal(client: ChatClient, line: str) -> str:
    """`line` is answered with exactly one `ERR`: its code."""
    lines = answer(client, line)
    assert len(lines) == 1 and lines[0].startswith("ERR "), lines
    return lines[0].split(" ")[1]


def owned(daemon: Daemon, room: str) -> ChatClient:
    """alice, signed in, owns `room` (she is in it)."""
    alice = account(daemon, "alice")
    alice.join(room)
    assert answer(alice, f"/room register {room}")[0] == f"REGISTERED {room} alice"
    return alice


def test_a_private_room_does_not_exist_for_strangers(chatd: Daemon) -> None:
    alice = owned(chatd, "#secret")
    answer(alice, "/topic #secret the plan")
    assert answer(alice, "/room #secret private on") == ["FLAG #secret private on alice"]
    strangers = [account(chatd, "mallory"), chatd.client("guest")]
    for stranger in strangers:
        for command in ("/who {}", "/history {}", "/topic {}", "/topic {} new topic", "/room {}", "/bans {}"):
            secret = answer(stranger, command.format("#secret"))
            nowhere = answer(stranger, command.format("#Nowhere"))
            assert secret == [line.replace("#Nowhere", "#secret") for line in nowhere], command
            assert len(secret) == 1 and secret[0].startswith("ERR "), secret
        assert answer(stranger, "/who #secret") == ["ERR no_such_room There is no room #secret."]
        assert not any("#secret" in line for line in answer(stranger, "/rooms"))
        assert refusal(stranger, "/join #secret") == "invite_only"
    assert "ROOM #secret 1 the plan" in answer(alice, "/rooms")  # its members see it


def test_an_invite_lets_one_person_in_once(chatd: Daemon) -> None:
    alice = owned(chatd, "#secret")
    answer(alice, "/room #secret private on")
    bob = account(chatd, "bob")
    carol = chatd.client("carol")
    assert answer(alice, "/invite #secret bob") == ["INVITE #secret bob alice"]
    assert bob.readline() == "INVITE #secret bob alice"
    assert bob.join("#secret")[0] == "JOIN #secret bob"
    assert refusal(carol, "/join #secret") == "invite_only"  # bob's invite was bob's
    assert answer(bob, "/part #secret") == ["PART #secret bob", "CURRENT *"]
    assert refusal(bob, "/join #secret") == "invite_only"  # used up
    assert chatd.wait_for_event("room_invite", room="#secret", nick="bob", by="alice")


def test_topic_ops_and_moderated(chatd: Daemon) -> None:
    alice = owned(chatd, "#rust")
    bob = account(chatd, "bob")
    bob.join("#rust")
    assert alice.readline() == "JOIN #rust bob"
    assert refusal(bob, "/topic #rust bob was here") == "not_allowed"
    assert answer(alice, "/room #rust moderated on") == ["FLAG #rust moderated on alice"]
    assert bob.readline() == "FLAG #rust moderated on alice"
    assert refusal(bob, "hello?") == "moderated"
    assert answer(alice, "/voice #rust bob") == ["ROLE #rust bob voice alice"]
    assert bob.readline() == "ROLE #rust bob voice alice"
    assert answer(bob, "now I may") == ["MSG #rust bob now I may"]
    assert alice.readline() == "MSG #rust bob now I may"  # and the refused line never reached her
    assert chatd.wait_for_event("room_flag", room="#rust", flag="moderated", value="on", by="alice")
    assert chatd.wait_for_event("room_role", room="#rust", account="bob", role="voice", by="alice")


def test_a_kicked_member_is_out_and_may_rejoin(chatd: Daemon) -> None:
    alice = owned(chatd, "#rust")
    troll = chatd.client("troll")
    troll.join("#rust")
    assert alice.readline() == "JOIN #rust troll"
    alice.send("/kick #rust troll spamming links")  # carried out by troll's own thread: the KICK may come late
    assert alice.expect_eventually("KICK ") == "KICK #rust troll alice kicked spamming links"
    assert troll.readline() == "KICK #rust troll alice kicked spamming links"
    assert troll.readline() == "CURRENT *"
    assert refusal(troll, "/msg #rust still here?") == "not_in_room"
    assert refusal(troll, "/history #rust") == "not_in_room"
    assert troll.join("#rust")[0] == "JOIN #rust troll"
    assert chatd.wait_for_event("room_kick", room="#rust", nick="troll", reason="kicked", by="alice")


@pytest.mark.parametrize(("mask", "source"), [("mallory", None), ("account:mallory", None), ("127.0.0.7", "127.0.0.7")])
def test_a_ban_removes_a_present_member_and_keeps_them_out(chatd: Daemon, mask: str, source: str | None) -> None:
    alice = owned(chatd, "#rust")
    mallory = account(chatd, "mallory", source)
    mallory.join("#rust")
    assert alice.readline() == "JOIN #rust mallory"
    alice.send(f"/ban #rust {mask} trolling")
    assert alice.expect_eventually("KICK ") == "KICK #rust mallory alice banned trolling"
    assert mallory.readline() == "KICK #rust mallory alice banned trolling"
    assert mallory.readline() == "CURRENT *"
    answer(alice, "/invite #rust mallory")  # a ban wins over an invite
    assert mallory.readline() == "INVITE #rust mallory alice"
    assert refusal(mallory, "/join #rust") == "banned_from_room"
    bans = answer(alice, "/bans #rust")
    assert bans[-1] == "BANS #rust 1" and bans[0].startswith("BAN #rust ")
    assert chatd.wait_for_event("room_ban", room="#rust", by="alice", removed=1)


def test_roles_flags_and_bans_survive_a_restart(chatd: Daemon) -> None:
    alice = owned(chatd, "#Rust")
    bob = account(chatd, "bob")
    account(chatd, "mallory").close()
    bob.join("#rust")
    answer(alice, "/op #rust bob")
    answer(alice, "/room #rust private on")
    answer(alice, "/room #rust moderated on")
    answer(alice, "/ban #rust account:mallory")
    answer(alice, "/topic #rust kept")
    assert chatd.process is not None
    chatd.process.send_signal(signal.SIGTERM)
    assert chatd.process.wait(15) == 0
    chatd.log_path.rename(chatd.log_path.with_suffix(".first"))
    for client in chatd.clients:
        client.close()
    chatd.clients.clear()
    chatd.start()
    assert rows(chatd, "SELECT name, owner, flags FROM registered_rooms") == [
        ("#Rust", "alice", "moderated private topic_ops")
    ]
    bob = login(chatd, "bob")
    joined = bob.join("#rust")  # an op needs no invite
    assert joined[:5] == [
        "JOIN #Rust bob",
        "TOPIC #Rust alice kept",
        "USERS #Rust bob",
        "ROLES #Rust bob:op",
        "FLAGS #Rust topic_ops private moderated",
    ]
    assert refusal(login(chatd, "mallory"), "/join #rust") == "banned_from_room"
    assert refusal(chatd.client("guest"), "/join #rust") == "invite_only"
    alice = login(chatd, "alice")
    assert alice.join("#rust")[0] == "JOIN #Rust alice"
    assert bob.readline() == "JOIN #Rust alice"
    assert bob.readline() == "ROLE #Rust alice owner *"


def test_every_action_is_in_the_audit_log(chatd: Daemon) -> None:
    alice = owned(chatd, "#rust")
    bob = account(chatd, "bob")
    bob.join("#rust")
    for line in ("/op #rust bob", "/room #rust accounts_only on", "/kick #rust bob"):
        answer(alice, line)
    assert bob.expect_eventually("KICK ") == "KICK #rust bob alice kicked"  # out, on its own thread
    for line in ("/invite #rust bob", "/ban #rust eve"):
        answer(alice, line)
    answer(alice, "/unban #rust eve")
    answer(alice, "/room drop #rust")
    for event, fields in [
        ("room_registered", {"owner": "alice"}),
        ("room_role", {"account": "bob", "role": "op"}),
        ("room_flag", {"flag": "accounts_only", "value": "on"}),
        ("room_invite", {"nick": "bob"}),
        ("room_kick", {"nick": "bob"}),
        ("room_ban", {"mask": "eve"}),
        ("room_unban", {"mask": "eve"}),
        ("room_dropped", {}),
    ]:
        assert chatd.wait_for_event(event, room="#rust", by="alice", **fields), event


def test_the_operator_runs_any_room_with_chatctl(chatd: Daemon) -> None:
    alice = account(chatd, "alice")
    bob = account(chatd, "bob")
    mallory = account(chatd, "mallory")
    for client in (alice, bob, mallory):
        client.join("#lobby")
    alice.sync()
    assert "is one of the server's own rooms" in answer(alice, "/room register #lobby")[0]

    def room(*args: str) -> str:
        result = chatctl_for(chatd, "room", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert room("owner", "#lobby", "alice") == "#lobby: owner alice, topic_ops\n"
    assert alice.expect_eventually("REGISTERED ") == "REGISTERED #lobby alice"
    assert alice.readline() == "ROLE #lobby alice owner *"
    room("role", "#lobby", "bob", "op")
    assert alice.expect_eventually("ROLE ") == "ROLE #lobby bob op *"
    room("flag", "#lobby", "private", "on")
    assert alice.expect_eventually("FLAG ") == "FLAG #lobby private on *"
    assert room("ban", "#lobby", "account:mallory", "--reason", "trolling") == (
        "banned account:mallory; 1 removed from the room\n"
    )
    assert mallory.expect_eventually("KICK ") == "KICK #lobby mallory * banned trolling"
    shown = json.loads(room("show", "#lobby", "--json"))
    assert (shown["owner"], shown["flags"], shown["members"]) == ("alice", ["topic_ops", "private"], 2)
    assert shown["roles"] == [{"name": "alice", "role": "owner"}, {"name": "bob", "role": "op"}]
    assert [b["mask"] for b in shown["bans"]] == ["account:mallory"]
    assert room("roles", "#lobby").splitlines()[1:] == ["alice  owner", "bob    op", "2 accounts with a role"]
    assert "account:mallory  *" in room("bans", "#lobby")
    assert room("list").splitlines()[1].split() == ["#lobby", "alice", "topic_ops", "private", "2"]
    assert room("owner", "#lobby", "bob") == "#lobby: owner bob, topic_ops private\n"  # alice becomes an op
    assert bob.expect_eventually("ROLE #lobby alice op *")  # after the one saying bob owns it
    assert answer(bob, "/deop #lobby alice") == ["ROLE #lobby alice member bob"]
    room("unban", "#lobby", "account:mallory")
    refused = chatctl_for(chatd, "room", "role", "#lobby", "nobody", "op")
    assert refused.returncode == 1 and "there is no account nobody" in refused.stderr
    refused = chatctl_for(chatd, "room", "show", "#nothing")
    assert refused.returncode == 1 and "#nothing is not registered" in refused.stderr
    assert room("drop", "#lobby") == "#lobby is no longer registered\n"
    assert bob.expect_eventually("REGISTERED ") == "REGISTERED #lobby *"
    for event in ("room_registered", "room_role", "room_flag", "room_ban", "room_kick", "room_unban", "room_dropped"):
        assert chatd.wait_for_event(event, room="#lobby", by="*"), event
