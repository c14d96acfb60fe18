"""Rooms (protocol v2, issue 11; v3 lines) against a real chatd over TLS: each command and
error of docs/protocol.md's "Rooms" and "After registration", announcements to
the clients that share a room and to no one else, permanent and passing rooms,
limits, a reload, and the control socket's view of the rooms.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon, assert_healthy, wait_until, with_io_threads
from tests.support.chatclient import ChatClient, event_id, split_tags


def clients(daemon: Daemon, *nicks: str) -> list[ChatClient]:
    """Register `nicks` in order, then read what each was sent meanwhile (the
    later ones' JOINs), so that each starts from a clean slate."""
    registered = [daemon.client(nick) for nick in nicks]
    for client in registered:
        client.sync()
    return registered


def room_list(client: ChatClient) -> list[str]:
    """`/rooms`: the `ROOM` lines and the `ROOMS` line that ends them."""
    client.send("/rooms")
    lines = [client.readline()]
    while not lines[-1].startswith("ROOMS "):
        lines.append(client.readline())
    return lines


def error_code(client: ChatClient, line: str) -> str:
    """Send `line`; the code of the `ERR` that answers it."""
    client.send(line)
    answer = client.readline()
    assert answer.startswith("ERR "), (line, answer)
    return answer.split(" ")[1]


def reload(daemon: Daemon) -> None:
    """Write daemon.config and send SIGHUP; wait until it is applied."""
    daemon.write_config()
    before = len(daemon.find_events("config_reloaded"))
    daemon.signal(signal.SIGHUP)
    reloaded = wait_until(lambda: daemon.find_events("config_reloaded")[before:], 5, "config_reloaded")
    assert reloaded[0]["restart_needed"] == []


# -- /join -------------------------------------------------------------------------------


def test_join_creates_a_room_joins_it_case_insensitively_and_switches(daemon: Daemon) -> None:
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.expect("JOIN #lobby bob")
    assert alice.join("#Rust") == ["JOIN #Rust alice", "USERS #Rust alice", "HISTORY #Rust 0 end", "CURRENT #Rust"]
    # One room whatever the case, shown as it was created.
    assert bob.join("#rUST") == ["JOIN #Rust bob", "USERS #Rust alice bob", "HISTORY #Rust 0 end", "CURRENT #Rust"]
    assert alice.readline() == "JOIN #Rust bob"
    carol = daemon.client("carol")
    assert carol.join("#RUST") == [
        "JOIN #Rust carol",
        "USERS #Rust alice bob carol",
        "HISTORY #Rust 0 end",
        "CURRENT #Rust",
    ]
    assert [alice.readline(), alice.readline()] == ["JOIN #lobby carol", "JOIN #Rust carol"]
    assert [bob.readline(), bob.readline()] == ["JOIN #lobby carol", "JOIN #Rust carol"]
    # Already a member: a switch, nothing else, and nobody else hears of it.
    assert alice.join("#LOBBY") == ["CURRENT #lobby"]
    alice.send("back in the lobby")
    for client in (alice, bob, carol):
        assert client.readline() == "MSG #lobby alice back in the lobby"
    bob.send("still in rust")
    for client in (alice, bob, carol):
        assert client.readline() == "MSG #Rust bob still in rust"
    assert room_list(alice) == ["ROOM #lobby 3", "ROOM #Rust 3", "ROOMS 2"]
    assert alice.sync() == bob.sync() == carol.sync() == []


# -- /part ---------------------------------------------------------------------------------


def test_part_with_and_without_a_room_and_text(daemon: Daemon) -> None:
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.expect("JOIN #lobby bob")
    for room in ("#a", "#b"):
        alice.join(room)
        bob.join(room)
        assert alice.readline() == f"JOIN {room} bob"
    # A room that is not the current one: PART to its members, the leaver too; no CURRENT.
    alice.send("/part #A see you later")
    assert alice.readline() == bob.readline() == "PART #a alice see you later"
    # No room: the current one (#b); the room joined most recently of those left is current.
    alice.send("/part")
    assert alice.readline() == bob.readline() == "PART #b alice"
    assert alice.readline() == "CURRENT #lobby"
    # Text without a room: the current room, with the text.
    alice.send("/part bye all")
    assert alice.readline() == bob.readline() == "PART #lobby alice bye all"
    assert alice.readline() == "CURRENT *"
    assert alice.sync() == bob.sync() == []
    # In no room: everything that needs one says so, and the connection stays.
    for line in ("plain text", "/me waves", "/part", "/part #lobby", "/topic", "/topic a topic", "/who"):
        assert error_code(alice, line) == "not_in_room", line
    assert room_list(alice) == ["ROOM #a 1", "ROOM #b 1", "ROOM #lobby 1", "ROOMS 3"]
    assert bob.sync() == []  # none of that reached bob
    assert alice.join("#lobby") == [
        "JOIN #lobby alice",
        "USERS #lobby alice bob",
        "HISTORY #lobby 0 end",
        "CURRENT #lobby",
    ]
    assert bob.readline() == "JOIN #lobby alice"


def test_parting_the_current_room_makes_the_latest_joined_current(daemon: Daemon) -> None:
    alice = daemon.client("alice")
    for room in ("#x", "#y", "#z"):
        alice.join(room)
    assert alice.join("#x") == ["CURRENT #x"]  # a switch does not change the order of joining
    alice.send("/part")
    assert [alice.readline(), alice.readline()] == ["PART #x alice", "CURRENT #z"]
    alice.send("/part #y")
    assert alice.readline() == "PART #y alice"
    alice.send("/part #z")
    assert [alice.readline(), alice.readline()] == ["PART #z alice", "CURRENT #lobby"]
    alice.send("current room again")
    assert alice.readline() == "MSG #lobby alice current room again"


# -- /msg #room ------------------------------------------------------------------------------


def test_msg_to_a_room_does_not_switch_and_needs_membership(daemon: Daemon) -> None:
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.expect("JOIN #lobby bob")
    alice.join("#a")
    alice.send("/msg #LOBBY back in a minute")
    assert alice.readline() == bob.readline() == "MSG #lobby alice back in a minute"
    alice.send("still in a")  # the current room is still #a, where bob is not
    assert alice.readline() == "MSG #a alice still in a"
    assert bob.sync() == []
    bob.join("#bobs")
    assert error_code(alice, "/msg #bobs hello") == "not_in_room"  # exists, not a member
    assert error_code(alice, "/msg #nowhere hello") == "not_in_room"  # does not exist
    assert error_code(alice, "/msg #not/a/room hello") == "room_invalid"
    assert error_code(alice, "/msg #a") == "missing_argument"
    assert bob.sync() == []
    bob.send("/msg #lobby from bobs")
    assert alice.readline() == bob.readline() == "MSG #lobby bob from bobs"


# -- /topic ----------------------------------------------------------------------------------


def test_topic_shown_set_sent_to_members_and_on_join(daemon: Daemon) -> None:
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.expect("JOIN #lobby bob")
    alice.send("/topic")
    assert alice.read_event() == ({}, "TOPIC #lobby *")  # no topic yet, set by nobody; a state: untagged
    alice.send("/topic welcome all")
    change = alice.read_event()
    assert change[1] == "TOPIC #lobby alice welcome all" and change[0].keys() == {"id", "time"}  # an event
    assert bob.read_event() == change
    # A newcomer hears the topic between its JOIN and the members, and the
    # change itself in the backlog.
    carol = daemon.client("carol")
    assert carol.autojoin == [
        "JOIN #lobby carol",
        "TOPIC #lobby alice welcome all",
        "USERS #lobby alice bob carol",
        "HISTORY #lobby 1 end",
        "CURRENT #lobby",
    ]
    assert carol.backlog["#lobby"] == [({**change[0], "history": ""}, change[1])]
    assert alice.readline() == bob.readline() == "JOIN #lobby carol"
    bob.send("/topic #Lobby")  # shown to the asker only
    assert bob.read_event() == ({}, "TOPIC #lobby alice welcome all")
    # Another room's topic, set from outside it (by a member), and heard on /join.
    alice.join("#rust")
    alice.send("/topic borrow checker questions")
    assert alice.readline() == "TOPIC #rust alice borrow checker questions"
    assert bob.join("#rust") == [
        "JOIN #rust bob",
        "TOPIC #rust alice borrow checker questions",
        "USERS #rust alice bob",
        "HISTORY #rust 1 end",
        "CURRENT #rust",
    ]
    assert [line for _, line in bob.backlog["#rust"]] == ["TOPIC #rust alice borrow checker questions"]
    assert alice.readline() == "JOIN #rust bob"
    bob.send("/topic #lobby set from rust")
    for client in (alice, bob, carol):
        assert client.readline() == "TOPIC #lobby bob set from rust"
    assert error_code(carol, "/topic #rust") == "not_in_room"
    assert error_code(carol, "/topic #rust not mine to set") == "not_in_room"
    assert error_code(carol, "/topic #bad! x") == "room_invalid"
    assert alice.sync() == bob.sync() == carol.sync() == []
    assert room_list(carol) == ["ROOM #lobby 3 set from rust", "ROOM #rust 2 borrow checker questions", "ROOMS 2"]


# -- /rooms and /who ---------------------------------------------------------------------------


def test_rooms_are_listed_sorted_with_member_counts_and_topics(daemon: Daemon) -> None:
    alice, bob = clients(daemon, "alice", "bob")
    for room in ("#b", "#C", "#a"):
        alice.join(room)
    alice.send("/topic #C the c room")
    alice.expect("TOPIC #C alice the c room")
    bob.join("#A")
    assert room_list(bob) == ["ROOM #a 2", "ROOM #b 1", "ROOM #C 1 the c room", "ROOM #lobby 2", "ROOMS 4"]


def test_who_lists_any_room_sorted(daemon: Daemon) -> None:
    bob, alice, _carol = clients(daemon, "bob", "Alice", "carol")
    bob.join("#Rust")
    bob.send("/who")  # the current room
    assert bob.readline() == "USERS #Rust bob"
    alice.send("/who")
    assert alice.readline() == "USERS #lobby Alice bob carol"
    alice.send("/who #rust")  # a room alice is not in
    assert alice.readline() == "USERS #Rust bob"
    assert error_code(alice, "/who #nowhere") == "no_such_room"
    assert error_code(alice, "/who #no/way") == "room_invalid"
    assert error_code(alice, "/who #nowhere at all") == "no_such_room"  # the first word is the room


# -- errors -----------------------------------------------------------------------------------


def test_room_invalid_is_an_answer_not_a_strike(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"max_strikes": 1})
    alice = daemon.client("alice")
    for line in (
        "/join lobby",
        "/join #",
        "/join #" + "x" * 33,
        "/join #a.b",
        "/join #caf\u00e9",
        "/join #a #b",
        "/part #bad!",
        "/topic #bad! x",
        "/who #bad!",
        "/msg #bad! hi",
    ):
        assert error_code(alice, line) == "room_invalid", line
    assert error_code(alice, "/join") == "missing_argument"
    assert room_list(alice) == ["ROOM #lobby 1", "ROOMS 1"]
    assert error_code(alice, "/frobnicate") == "unknown_command"  # the one strike allowed
    assert alice.expect_closed() == ["BYE too_many_errors"]


def test_no_such_room_when_creating_is_off(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(rooms={"allow_create": False, "permanent": ["#lobby", "#help"]})
    alice = daemon.client("alice")
    assert error_code(alice, "/join #new") == "no_such_room"
    assert error_code(alice, "/who #new") == "no_such_room"
    assert alice.join("#HELP") == ["JOIN #help alice", "USERS #help alice", "HISTORY #help 0 end", "CURRENT #help"]
    assert room_list(alice) == ["ROOM #help 1", "ROOM #lobby 1", "ROOMS 2"]
    alice.send("/part")
    assert [alice.readline(), alice.readline()] == ["PART #help alice", "CURRENT #lobby"]
    assert room_list(alice) == ["ROOM #help 0", "ROOM #lobby 1", "ROOMS 2"]


def test_too_many_rooms_for_one_client(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"max_rooms_per_client": 3})  # #lobby is one of them
    alice, bob = clients(daemon, "alice", "bob")
    alice.join("#a")
    alice.join("#b")
    assert error_code(alice, "/join #c") == "too_many_rooms"
    assert error_code(alice, "/join #lobby2") == "too_many_rooms"
    assert alice.join("#A") == ["CURRENT #a"]  # switching between one's rooms is not joining
    # The refused room was not created; another client's limit is its own.
    assert room_list(bob) == ["ROOM #a 1", "ROOM #b 1", "ROOM #lobby 2", "ROOMS 3"]
    assert bob.join("#c")[-1] == "CURRENT #c"
    alice.send("/part #b")
    alice.expect("PART #b alice")
    assert alice.join("#c") == ["JOIN #c alice", "USERS #c alice bob", "HISTORY #c 0 end", "CURRENT #c"]
    assert error_code(alice, "/join #d") == "too_many_rooms"


def test_too_many_rooms_on_the_server(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"max_rooms": 3})  # the permanent #lobby is one of them
    alice, bob, carol = clients(daemon, "alice", "bob", "carol")
    alice.join("#a")
    bob.join("#b")
    assert error_code(carol, "/join #c") == "too_many_rooms"
    assert carol.join("#A")[0] == "JOIN #a carol"  # an existing room takes no new place
    assert room_list(carol) == ["ROOM #a 2", "ROOM #b 1", "ROOM #lobby 3", "ROOMS 3"]
    bob.send("/part #b")  # its last member: the room ends, and its place is free
    assert [bob.readline(), bob.readline()] == ["PART #b bob", "CURRENT #lobby"]
    assert carol.join("#c")[0] == "JOIN #c carol"
    assert error_code(bob, "/join #d") == "too_many_rooms"


# -- a client in many rooms -------------------------------------------------------------------


@with_io_threads(1, 2)
def test_a_client_in_twenty_rooms_hears_each_with_its_name(
    start_daemon: Callable[..., Daemon], io_threads: int
) -> None:
    # No autojoin: each speaker is in its own room only, so it hears nothing else.
    daemon = start_daemon(server={"io_threads": io_threads}, rooms={"autojoin": []})
    listener = daemon.client("listener")
    assert listener.autojoin == ["CURRENT *"]
    rooms = [f"#r{n:02d}" for n in range(1, 21)]
    for room in rooms:
        assert listener.join(room) == [
            f"JOIN {room} listener",
            f"USERS {room} listener",
            f"HISTORY {room} 0 end",
            f"CURRENT {room}",
        ]
    assert error_code(listener, "/join #r21") == "too_many_rooms"  # the default limit is 20
    speakers = []
    for n, room in enumerate(rooms, 1):
        speaker = daemon.client(f"s{n:02d}")
        assert speaker.join(room) == [
            f"JOIN {room} s{n:02d}",
            f"USERS {room} listener s{n:02d}",
            f"HISTORY {room} 0 end",
            f"CURRENT {room}",
        ]
        assert listener.readline() == f"JOIN {room} s{n:02d}"
        speakers.append(speaker)
    for n, speaker in enumerate(speakers, 1):
        speaker.send(f"hello from {n}")
    heard = sorted(listener.readline() for _ in speakers)
    assert heard == sorted(f"MSG #r{n:02d} s{n:02d} hello from {n}" for n in range(1, 21))
    for n, speaker in enumerate(speakers, 1):
        assert speaker.readline() == f"MSG #r{n:02d} s{n:02d} hello from {n}"
        assert speaker.sync() == []  # nothing from the other nineteen rooms
    listener.send("/msg #r07 to seven only")
    assert listener.readline() == speakers[6].readline() == "MSG #r07 listener to seven only"
    listener.send("/me is in the last room joined")
    assert listener.readline() == speakers[19].readline() == "ACTION #r20 listener is in the last room joined"
    assert all(speaker.sync() == [] for speaker in speakers)
    assert_healthy(daemon)


# -- LEAVE and RENAME: once to each client sharing a room, to no one else ------------------------


def _sharing(daemon: Daemon) -> tuple[ChatClient, ChatClient, ChatClient, ChatClient]:
    """alice; bob shares three rooms with her (#lobby, #a, #b); dave one (#b);
    carol none (she is in #c only). Everything so far has been read."""
    alice, bob, dave, carol = clients(daemon, "alice", "bob", "dave", "carol")
    for room in ("#a", "#b"):
        alice.join(room)
        bob.join(room)
    dave.join("#b")
    dave.send("/part #lobby")
    dave.expect_eventually("PART #lobby dave")  # sent to the room's members as one piece of work
    carol.join("#c")
    carol.send("/part #lobby")
    carol.expect_eventually("PART #lobby carol")
    for client in (alice, bob, dave, carol):
        client.sync()  # the JOINs and PARTs of the set-up
    return alice, bob, dave, carol


@with_io_threads(1, 2)
@pytest.mark.parametrize("how", ["quit", "dropped"])
def test_leave_reaches_each_sharer_once_and_no_one_else(
    start_daemon: Callable[..., Daemon], io_threads: int, how: str
) -> None:
    daemon = start_daemon(server={"io_threads": io_threads})
    alice, bob, dave, carol = _sharing(daemon)
    if how == "quit":
        alice.send("/quit gone for lunch")
        assert alice.expect_closed() == ["BYE quit"]
        alice.close()
        leave = "LEAVE alice quit gone for lunch"
    else:
        alice.close()  # no /quit: the connection just ends
        leave = "LEAVE alice connection_lost"
    # Logged once chatd has announced it: whatever it sent is queued by then.
    daemon.wait_for_event("disconnect", nick="alice")
    assert bob.readline() == leave
    assert dave.readline() == leave
    assert bob.sync() == dave.sync() == carol.sync() == []
    assert room_list(carol) == ["ROOM #a 1", "ROOM #b 2", "ROOM #c 1", "ROOM #lobby 1", "ROOMS 4"]
    assert_healthy(daemon)


@with_io_threads(1, 2)
def test_rename_reaches_the_renamer_and_each_sharer_once(start_daemon: Callable[..., Daemon], io_threads: int) -> None:
    daemon = start_daemon(server={"io_threads": io_threads})
    alice, bob, dave, carol = _sharing(daemon)
    alice.send("/nick Alicia")
    assert alice.readline() == "RENAME alice Alicia"
    daemon.wait_for_event("rename", old="alice", new="Alicia")  # logged once all were told
    assert bob.readline() == dave.readline() == "RENAME alice Alicia"
    assert alice.sync() == bob.sync() == dave.sync() == carol.sync() == []
    # The new nick is the one the rooms show.
    carol.send("/who #b")
    assert carol.readline() == "USERS #b Alicia bob dave"
    alice.send("/msg #b said by Alicia")
    assert alice.readline() == bob.readline() == dave.readline() == "MSG #b Alicia said by Alicia"


# -- following a busy room: USERS, then JOIN and PART, add up -----------------------------------

CHURNERS = 8
CHURN_SECONDS = 6.0


def _follow(me: str, lines: list[str], problems: list[str]) -> None:
    """Replay what `me` was told about #busy; note each line that contradicts it."""
    present: set[str] | None = None  # the others in #busy, by USERS, JOIN and PART
    for line in lines:
        verb, _, rest = line.partition(" ")
        words = rest.split(" ")
        if verb not in ("JOIN", "PART", "USERS") or words[0] != "#busy":
            continue
        if verb == "USERS":
            present = set(words[1:]) - {me}
        elif words[1] == me:
            present = None  # its own JOIN: the view starts at USERS; its own PART: it ends
        elif present is not None:
            who = words[1]
            if (verb == "JOIN") == (who in present):
                listed = "already listed" if who in present else "not listed"
                problems.append(f"{me} got {line!r} with {who} {listed}")
            if verb == "JOIN":
                present.add(who)
            else:
                present.discard(who)


def _churn(client: ChatClient, deadline: float, problems: list[str]) -> None:
    """Join and part #busy, one round trip each, until `deadline`."""
    try:
        while time.monotonic() < deadline:
            lines = []
            client.send("/join #busy")
            while (line := client.readline(timeout=30)) != "CURRENT #busy":
                lines.append(line)
            client.send("/part #busy")
            while (line := client.readline(timeout=30)) != f"PART #busy {client.nick}":
                lines.append(line)
            _follow(client.nick, [*lines, line], problems)
    except BaseException as exc:  # reported by the test thread
        problems.append(repr(exc))


def test_members_can_follow_a_busy_room(start_daemon: Callable[..., Daemon]) -> None:
    """docs/protocol.md: USERS lists a room's members after one's own JOIN, and
    every later JOIN and PART of the room reaches every member. A client that
    keeps a member list from these is never told that someone joined who is
    already listed, or left who is not, however busy the room.

    Eight clients join and part one room as fast as their round trips allow,
    on two I/O workers (with one, each join and part runs start to end without
    another in between), and each replays what it was told.
    """
    daemon = start_daemon(server={"io_threads": 2}, rooms={"autojoin": []})
    churners = [daemon.client(f"c{i}") for i in range(CHURNERS)]
    problems: list[str] = []
    deadline = time.monotonic() + CHURN_SECONDS
    threads = [threading.Thread(target=_churn, args=(c, deadline, problems), name=c.nick) for c in churners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CHURN_SECONDS + 60)
    assert not any(thread.is_alive() for thread in threads), "a churner hung"
    assert not problems, f"{len(problems)} contradictions, e.g. {problems[:5]}"
    assert_healthy(daemon)


# -- permanent and passing rooms -------------------------------------------------------------------


def test_permanent_rooms_survive_being_empty_and_others_vanish(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(rooms={"permanent": ["#lobby", "#help"]})
    alice, bob = clients(daemon, "alice", "bob")
    assert room_list(alice) == ["ROOM #help 0", "ROOM #lobby 2", "ROOMS 2"]
    alice.join("#help")
    alice.send("/topic ask here")
    alice.expect("TOPIC #help alice ask here")
    alice.join("#tmp")
    bob.join("#bobs")
    assert room_list(alice) == ["ROOM #bobs 1", "ROOM #help 1 ask here", "ROOM #lobby 2", "ROOM #tmp 1", "ROOMS 4"]
    alice.send("/part #help")
    assert alice.readline() == "PART #help alice"
    alice.send("/part #tmp")
    assert [alice.readline(), alice.readline()] == ["PART #tmp alice", "CURRENT #lobby"]
    bob.send("/quit")  # its last member leaves the server: #bobs ends too
    assert bob.expect_closed() == ["BYE quit"]
    assert alice.readline() == "LEAVE bob quit"
    alice.send("/part #lobby")
    assert [alice.readline(), alice.readline()] == ["PART #lobby alice", "CURRENT *"]
    # Empty permanent rooms stay, with their topics; the others are gone.
    assert room_list(alice) == ["ROOM #help 0 ask here", "ROOM #lobby 0", "ROOMS 2"]
    assert alice.join("#help") == [
        "JOIN #help alice",
        "TOPIC #help alice ask here",
        "USERS #help alice",
        "HISTORY #help 1 end",
        "CURRENT #help",
    ]
    assert [line for _, line in alice.backlog["#help"]] == ["TOPIC #help alice ask here"]
    assert alice.join("#tmp") == [  # a new #tmp
        "JOIN #tmp alice",
        "USERS #tmp alice",
        "HISTORY #tmp 0 end",
        "CURRENT #tmp",
    ]
    alice.send("/topic")
    assert alice.readline() == "TOPIC #tmp *"


# -- reload --------------------------------------------------------------------------------------


def test_reload_adds_a_permanent_room_and_lowers_the_per_client_limit(daemon: Daemon) -> None:
    alice, bob = clients(daemon, "alice", "bob")
    alice.join("#a")
    alice.join("#b")  # three rooms with #lobby
    daemon.config["rooms"] = {"permanent": ["#lobby", "#news"]}
    daemon.config["limits"]["max_rooms_per_client"] = 2
    reload(daemon)
    # Connected clients see the new room at once, and the new limit on their next /join.
    assert room_list(bob) == ["ROOM #a 1", "ROOM #b 1", "ROOM #lobby 2", "ROOM #news 0", "ROOMS 4"]
    assert error_code(alice, "/join #news") == "too_many_rooms"  # 3 rooms, 2 allowed
    alice.send("hello from b")  # rooms already joined are kept
    assert alice.readline() == "MSG #b alice hello from b"
    for room in ("#a", "#b"):
        alice.send(f"/part {room}")
        alice.expect(f"PART {room} alice")
    alice.expect("CURRENT #lobby")
    assert alice.join("#news")[0] == "JOIN #news alice"
    assert error_code(alice, "/join #c") == "too_many_rooms"  # 2 of 2
    assert bob.join("#news") == ["JOIN #news bob", "USERS #news alice bob", "HISTORY #news 0 end", "CURRENT #news"]
    alice.send("/part #news")
    assert [alice.readline() for _ in range(3)] == ["JOIN #news bob", "PART #news alice", "CURRENT #lobby"]
    assert bob.readline() == "PART #news alice"
    bob.send("/part #news")
    assert [bob.readline(), bob.readline()] == ["PART #news bob", "CURRENT #lobby"]
    assert room_list(bob) == ["ROOM #lobby 2", "ROOM #news 0", "ROOMS 2"]  # #a, #b ended; #news stays


# -- the control socket --------------------------------------------------------------------------


def ask(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """One request to the control socket, as chatctl sends it: a JSON line each way."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n") and (chunk := sock.recv(65536)):
            answer += chunk
    reply: dict[str, Any] = json.loads(answer)
    return reply


def test_control_socket_rooms_and_the_status_room_count(start_daemon: Callable[..., Daemon], short_dir: Path) -> None:
    path = short_dir / "control.sock"
    daemon = start_daemon(control={"socket": str(path)}, rooms={"permanent": ["#lobby", "#help"]})
    daemon.wait_for_event("control_listening")
    bob, alice = clients(daemon, "bob", "Alice")
    alice.join("#Rust")
    alice.send("/topic borrow checker questions")
    alice.expect("TOPIC #Rust Alice borrow checker questions")
    bob.join("#rust")
    reply = ask(path, {"cmd": "rooms"})
    assert reply == {
        "ok": True,
        "result": [
            {"room": "#help", "members": [], "topic": ""},
            {"room": "#lobby", "members": ["Alice", "bob"], "topic": ""},
            {"room": "#Rust", "members": ["Alice", "bob"], "topic": "borrow checker questions"},
        ],
    }
    status = ask(path, {"cmd": "status"})
    assert status["ok"] and (status["result"]["rooms"], status["result"]["clients"]) == (3, 2)
    for client in (alice, bob):
        client.send("/part #rust")
        client.expect_eventually(f"PART #Rust {client.nick}")
    assert [room["room"] for room in ask(path, {"cmd": "rooms"})["result"]] == ["#help", "#lobby"]
    assert ask(path, {"cmd": "status"})["result"]["rooms"] == 2
    refused = ask(path, {"cmd": "rooms", "room": "#lobby"})
    assert refused == {"ok": False, "error": "rooms takes no field 'room' (it takes: none)"}


# -- typeable: a raw TLS client, as from openssl s_client ----------------------------------------


def test_a_raw_tls_client_types_the_protocol(daemon: Daemon) -> None:
    """What a person typing into `openssl s_client -crlf` sends and sees: lines
    ending in CRLF, answered by self-contained lines that name their room."""
    watcher = daemon.client("watcher")
    context = ssl.create_default_context(cafile=str(daemon.pki.ca))
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            typed = [
                "typist",
                "hello from a terminal",
                "/join #Rust",
                "/topic borrow checker questions",
                "/msg #lobby back in a minute",
                "/me waves",
                "/rooms",
                "/part #rust bye",
                "/quit",
            ]
            tls.sendall("".join(f"{line}\r\n" for line in typed).encode())
            received = b""
            while not received.endswith(b"BYE quit\n"):
                chunk = tls.recv(65536)
                assert chunk, received
                received += chunk
    events = [split_tags(line) for line in received.decode().split("\n")[:-1]]  # checks the tags
    lines = [line for _, line in events]
    assert lines[0].startswith("HELLO 5 chatd ") and lines[1].startswith("ACCOUNTS ") and lines[2] == "NICK"
    del lines[1]  # the ACCOUNTS line of a server with accounts
    assert lines[2].startswith("WELCOME typist ")
    assert lines[3:] == [
        "JOIN #lobby typist",
        "USERS #lobby typist watcher",
        "HISTORY #lobby 0 end",
        "CURRENT #lobby",
        "MSG #lobby typist hello from a terminal",
        "JOIN #Rust typist",
        "USERS #Rust typist",
        "HISTORY #Rust 0 end",
        "CURRENT #Rust",
        "TOPIC #Rust typist borrow checker questions",
        "MSG #lobby typist back in a minute",
        "ACTION #Rust typist waves",
        "ROOM #lobby 2",
        "ROOM #Rust 1 borrow checker questions",
        "ROOMS 2",
        "PART #Rust typist bye",
        "CURRENT #lobby",
        "BYE quit",
    ]
    # The events (and only they) carry id and time, live (no history tag), in the order said.
    tagged = [(tags, line) for tags, line in events if tags]
    assert [line.split(" ")[0] for _, line in tagged] == ["MSG", "TOPIC", "MSG", "ACTION"]
    assert all(tags.keys() == {"id", "time"} for tags, _ in tagged)
    ids = [event_id(tags) for tags, _ in tagged]
    assert ids == sorted(set(ids))
    assert [watcher.readline() for _ in range(4)] == [
        "JOIN #lobby typist",
        "MSG #lobby typist hello from a terminal",
        "MSG #lobby typist back in a minute",
        "LEAVE typist quit",
    ]
