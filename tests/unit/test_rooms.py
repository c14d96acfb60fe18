"""chatd/core/rooms.py: rooms, their members and the fan-out of their lines, and the
server's room table (creation, limits, permanent rooms), with fake members."""

from __future__ import annotations

import pytest

from chatd import names
from chatd.core import protocol
from chatd.core.rooms import Room, Rooms
from chatd.errors import ProtocolError
from tests.conftest import run_threads
from tests.support.members import FakeMember


@pytest.fixture
def rooms() -> Rooms:
    return Rooms(["#lobby"])


def join(rooms: Rooms, name: str, *nicks: str, allow_create: bool = True, max_rooms: int = 1000) -> list[FakeMember]:
    members = [FakeMember(nick) for nick in nicks]
    for member in members:
        enter(rooms, member, name, allow_create, max_rooms)
    return members


def enter(rooms: Rooms, member: FakeMember, name: str, allow_create: bool, max_rooms: int) -> Room:
    """What Chat.join does with the room table: find or create, then add, as one step."""
    with rooms.changing:
        room = rooms.join(name, allow_create, max_rooms)
        with room.lock:
            rooms.add(room, member)
    return room


# -- Room: members and broadcast -------------------------------------------------------------


def test_a_new_room_is_empty_without_a_topic() -> None:
    room = Room("#Rust", permanent=False)
    assert (room.name, room.topic, room.topic_by) == ("#Rust", "", "*")
    assert len(room) == 0 and room.nicks() == []


def test_broadcast_reaches_every_member_in_join_order(rooms: Rooms) -> None:
    alice, bob, carol = join(rooms, "#lobby", "alice", "bob", "carol")
    room = rooms.find("#lobby")
    assert room is not None
    assert room.broadcast(b"MSG #lobby alice a\nMSG #lobby alice b\n", 2, sender="the sender") == 3
    for member in (alice, bob, carol):
        assert member.deliveries == [(b"MSG #lobby alice a\nMSG #lobby alice b\n", 2, "the sender")]
    assert room.nicks() == ["alice", "bob", "carol"]


def test_broadcast_excludes_one_member(rooms: Rooms) -> None:
    alice, bob = join(rooms, "#lobby", "alice", "bob")
    room = rooms.find("#lobby")
    assert room is not None
    assert room.broadcast(b"INFO x\n", exclude=alice) == 1
    assert alice.deliveries == [] and bob.deliveries == [(b"INFO x\n", 1, None)]
    assert room.broadcast(b"INFO y\n", exclude=FakeMember("stranger")) == 2


def test_broadcast_to_an_empty_room() -> None:
    assert Room("#empty", permanent=True).broadcast(b"INFO nobody\n") == 0


def test_members_who_parted_get_no_broadcasts(rooms: Rooms) -> None:
    alice, bob = join(rooms, "#lobby", "alice", "bob")
    room = rooms.find("#lobby")
    assert room is not None
    rooms.part(bob, room)
    room.broadcast(b"INFO x\n")
    assert bob.deliveries == [] and alice.deliveries == [(b"INFO x\n", 1, None)]


def test_a_broadcast_in_progress_keeps_the_members_it_started_with(rooms: Rooms) -> None:
    """The member tuple is replaced on join and part, never changed in place: a
    broadcast that is running holds the tuple it started with."""
    (alice,) = join(rooms, "#lobby", "alice")
    room = rooms.find("#lobby")
    assert room is not None
    before = room.members
    join(rooms, "#lobby", "bob")
    rooms.part(alice, room)
    assert before == (alice,)
    assert [m.nick for m in room.members] == ["bob"]


# -- Rooms: find, join, part -----------------------------------------------------------------


def test_permanent_rooms_exist_from_the_start(rooms: Rooms) -> None:
    lobby = rooms.find("#LOBBY")
    assert lobby is not None and lobby.permanent and lobby.name == "#lobby" and len(lobby) == 0
    assert len(rooms) == 1


def test_join_creates_a_room_spelled_as_its_creator_did(rooms: Rooms) -> None:
    (alice,) = join(rooms, "#Rust", "alice")
    (bob,) = join(rooms, "#RUST", "bob")
    room = rooms.find("#rust")
    assert room is not None and room.name == "#Rust" and not room.permanent
    assert room.members == (alice, bob)
    assert len(rooms) == 2


def test_join_refuses_to_create_when_creating_is_off(rooms: Rooms) -> None:
    with pytest.raises(ProtocolError) as info:
        join(rooms, "#new", "alice", allow_create=False)
    assert info.value.code == protocol.NO_SUCH_ROOM and "#new" in info.value.text
    assert rooms.find("#new") is None
    join(rooms, "#lobby", "alice", allow_create=False)  # an existing room can be joined


def test_join_refuses_a_room_beyond_max_rooms(rooms: Rooms) -> None:
    join(rooms, "#a", "alice", max_rooms=2)
    with pytest.raises(ProtocolError) as info:
        join(rooms, "#b", "bob", max_rooms=2)
    assert info.value.code == protocol.TOO_MANY_ROOMS
    assert rooms.find("#b") is None and len(rooms) == 2
    join(rooms, "#A", "bob", max_rooms=2)  # joining an existing room creates nothing
    join(rooms, "#lobby", "carol", max_rooms=2)


def test_an_empty_room_ends_unless_permanent(rooms: Rooms) -> None:
    alice, bob = join(rooms, "#rust", "alice", "bob")
    (carol,) = join(rooms, "#lobby", "carol")
    rust, lobby = rooms.find("#rust"), rooms.find("#lobby")
    assert rust is not None and lobby is not None
    rooms.part(alice, rust)
    assert rooms.find("#rust") is rust  # bob is still there
    rooms.part(bob, rust)
    assert rooms.find("#rust") is None
    rooms.part(carol, lobby)
    assert rooms.find("#lobby") is lobby and len(lobby) == 0
    # The name is free: joining it again makes a new room, with no old topic.
    rust.topic = "old"
    join(rooms, "#rust", "dave")
    again = rooms.find("#rust")
    assert again is not None and again is not rust and again.topic == ""


def test_part_returns_who_was_in_the_room_when_the_member_left(rooms: Rooms) -> None:
    """Chat.leave tells these, and only these: a client that joins after the
    part neither sees the leaver in USERS nor gets its LEAVE."""
    alice, bob = join(rooms, "#rust", "alice", "bob")
    rust = rooms.find("#rust")
    assert rust is not None
    assert rooms.part(alice, rust) == (alice, bob)
    (carol,) = join(rooms, "#rust", "carol")
    assert rooms.part(bob, rust) == (bob, carol)
    assert rooms.part(carol, rust) == (carol,)
    assert rooms.find("#rust") is None


def test_a_permanent_room_keeps_its_topic_when_empty(rooms: Rooms) -> None:
    (alice,) = join(rooms, "#lobby", "alice")
    lobby = rooms.find("#lobby")
    assert lobby is not None
    lobby.topic, lobby.topic_by = "welcome", "alice"
    rooms.part(alice, lobby)
    assert rooms.find("#lobby") is lobby and (lobby.topic, lobby.topic_by) == ("welcome", "alice")


def test_all_is_sorted_case_insensitively(rooms: Rooms) -> None:
    for name in ("#b", "#C", "#a", "#Lobby2"):
        join(rooms, name, f"n{name[1:]}")
    assert [room.name for room in rooms.all()] == ["#a", "#b", "#C", "#lobby", "#Lobby2"]


# -- Rooms.set_permanent (a reload) ---------------------------------------------------------


def test_set_permanent_adds_rooms_and_lets_unlisted_empty_ones_go(rooms: Rooms) -> None:
    (alice,) = join(rooms, "#rust", "alice")
    rooms.set_permanent(["#news", "#Rust"])
    news, rust, lobby = rooms.find("#news"), rooms.find("#rust"), rooms.find("#lobby")
    assert news is not None and news.permanent and len(news) == 0
    assert rust is not None and rust.permanent and rust.name == "#rust"  # kept as created
    assert lobby is None  # no longer permanent, and empty
    rooms.part(alice, rust)
    assert rooms.find("#rust") is rust  # permanent now: stays empty


def test_set_permanent_keeps_an_unlisted_room_while_it_has_members(rooms: Rooms) -> None:
    (alice,) = join(rooms, "#lobby", "alice")
    rooms.set_permanent(["#news"])
    lobby = rooms.find("#lobby")
    assert lobby is not None and not lobby.permanent
    rooms.part(alice, lobby)
    assert rooms.find("#lobby") is None


# -- threads ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_joins_and_parts_leave_a_consistent_table(rooms: Rooms) -> None:
    """Eight threads join and part ten shared rooms in turn, against a room limit:
    no member is lost or doubled, rooms end exactly when they empty, and the limit holds."""
    threads, rounds, room_names, max_rooms = 8, 200, [f"#r{i}" for i in range(10)], 8
    stayed: list[dict[str, FakeMember]] = [{} for _ in range(threads)]

    def work(t: int) -> None:
        for i in range(rounds):
            name = room_names[(t + i) % len(room_names)]
            member = FakeMember(f"t{t}_{i}")
            try:
                room = enter(rooms, member, name, True, max_rooms)
            except ProtocolError as error:
                assert error.code == protocol.TOO_MANY_ROOMS
                continue
            assert len(rooms) <= max_rooms
            if i % 4 == 0 and name not in stayed[t]:
                stayed[t][name] = member
            else:
                rooms.part(member, room)

    run_threads(threads, work)
    expected: dict[str, set[FakeMember]] = {}
    for per_thread in stayed:
        for name, member in per_thread.items():
            expected.setdefault(names.room_key(name), set()).add(member)
    table = {names.room_key(room.name): room for room in rooms.all()}
    assert set(table) == {"#lobby", *expected}, "a room outlived its members, or vanished with some"
    for key, members in expected.items():
        assert len(table[key].members) == len(set(table[key].members)) == len(members)
        assert set(table[key].members) == members
    assert len(rooms) <= max_rooms


# -- rooms that ended with history ------------------------------------------------------------


def test_a_room_long_ended_is_recalled_from_the_store_with_its_topic_and_backlog() -> None:
    from chatd.core.history import Event, StoredRoom

    asked: list[str] = []
    stored = StoredRoom(
        "#Old", "old news", "carol", [Event(i, 0, "#old", "#Old", "carol", "msg", b"x") for i in (4, 5)]
    )

    def recall(key: str) -> StoredRoom | None:
        asked.append(key)
        return stored if key == "#old" else None

    rooms = Rooms(["#lobby"], backlog=2, recall=recall)
    old = enter(rooms, FakeMember("alice"), "#OLD", True, 10)
    new = enter(rooms, FakeMember("alice"), "#new", True, 10)
    assert asked == ["#old", "#new"]
    assert (old.name, old.topic, old.topic_by, [e.id for e in old.recent]) == ("#Old", "old news", "carol", [4, 5])
    assert old.durable and old.older  # a full backlog: there may be more
    assert (new.topic, list(new.recent), new.durable) == ("", [], False)


def test_an_ended_room_with_history_sleeps_and_only_rooms_with_members_count() -> None:
    rooms = Rooms(["#lobby"], backlog=5)
    alice = FakeMember("alice")
    room = enter(rooms, alice, "#a", True, 2)
    room.durable, room.topic = True, "kept"
    rooms.part(alice, room)
    assert rooms.find("#a") is None and len(rooms) == 1
    again = enter(rooms, alice, "#a", True, 2)
    assert again is room and again.topic == "kept"
