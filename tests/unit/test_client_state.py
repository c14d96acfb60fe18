"""chatctl/state.py: what the client knows of its session, fed with lines only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatctl.state import ClientState, Tags, line_room, line_tags, split_line

REGISTRATION = [
    "HELLO 2 chatd 0.2.0",
    "NICK",
    "WELCOME carol Welcome to chatd, carol!",
    "JOIN #lobby carol",
    "TOPIC #lobby alice welcome all",
    "USERS #lobby alice bob carol",
    "CURRENT #lobby",
]


def fed(*lines: str) -> ClientState:
    state = ClientState()
    for line in lines:
        state.on_line(line)
    return state


def in_rooms(*extra: str) -> ClientState:
    """carol, registered in #lobby, then in #rust and #ops, back in #lobby."""
    return fed(
        *REGISTRATION,
        "JOIN #rust carol",
        "USERS #rust bob carol",
        "CURRENT #rust",
        "JOIN #ops carol",
        "USERS #ops carol",
        "CURRENT #ops",
        "CURRENT #lobby",
        *extra,
    )


def unread(state: ClientState) -> dict[str, int]:
    return {room.name: room.unread for room in state.rooms.values()}


def test_registration_on_a_v2_server() -> None:
    state = fed(*REGISTRATION)
    assert state.version == 2
    assert state.registered and state.nick == "carol"
    assert list(state.rooms) == ["#lobby"]
    assert state.current == "#lobby"
    lobby = state.current_room
    assert lobby is not None
    assert lobby.members == ["alice", "bob", "carol"]
    assert lobby.topic == "welcome all"


def test_a_v1_server_sends_nick_first() -> None:
    state = fed("NICK", "WELCOME carol hi", "USERS alice carol", "JOIN bob", "MSG bob hello")
    assert state.version == 1
    assert state.registered and state.nick == "carol"
    assert state.rooms == {} and state.current is None
    assert state.everyone == ["alice", "carol", "bob"]
    assert state.nicks() == ["alice", "bob"]
    state.on_line("LEAVE alice quit")
    state.on_line("RENAME bob rob")
    assert state.everyone == ["carol", "rob"]


def test_before_registration_nothing_is_known() -> None:
    state = fed("HELLO 2 chatd 0.2.0", "NICK", "ERR nick_taken taken", "NICK")
    assert state.version == 2 and not state.registered and state.nick == ""
    assert state.rooms == {} and state.current is None


def test_rooms_are_kept_in_the_order_joined_and_current_follows_current() -> None:
    state = in_rooms()
    assert [room.name for room in state.rooms.values()] == ["#lobby", "#rust", "#ops"]
    assert state.current == "#lobby"
    state.on_line("CURRENT #OPS")  # rooms ignore case; the server's spelling is kept
    assert state.current == "#ops"
    state.on_line("CURRENT *")
    assert state.current is None and state.current_room is None


def test_messages_in_other_rooms_are_unread_until_the_room_is_current() -> None:
    state = in_rooms("MSG #rust bob one", "ACTION #rust bob two", "MSG #lobby bob here", "MSG #ops alice x")
    assert unread(state) == {"#lobby": 0, "#rust": 2, "#ops": 1}
    state.on_line("CURRENT #rust")
    assert unread(state) == {"#lobby": 0, "#rust": 0, "#ops": 1}
    state.on_line("MSG #rust bob three")
    assert unread(state)["#rust"] == 0


def test_your_own_lines_and_room_events_are_not_unread() -> None:
    state = in_rooms(
        "MSG #rust carol said from elsewhere",  # /msg #rust from #lobby
        "JOIN #rust alice",
        "PART #rust alice",
        "TOPIC #rust bob new",
        "USERS #rust bob carol",
    )
    assert unread(state) == {"#lobby": 0, "#rust": 0, "#ops": 0}


def test_members_follow_join_part_leave_and_rename() -> None:
    state = in_rooms("JOIN #rust alice", "JOIN #ops bob")
    rust, ops = state.rooms["#rust"], state.rooms["#ops"]
    assert rust.members == ["bob", "carol", "alice"]
    state.on_line("PART #rust alice bye")
    assert rust.members == ["bob", "carol"]
    state.on_line("RENAME BOB robert")  # once, for every room shared
    assert rust.members == ["robert", "carol"] and ops.members == ["carol", "robert"]
    state.on_line("LEAVE robert quit gone")
    assert rust.members == ["carol"] and ops.members == ["carol"]
    assert state.rooms["#lobby"].members == ["alice", "carol"]


def test_your_own_part_and_rename() -> None:
    state = in_rooms("RENAME carol Caro", "PART #rust Caro", "CURRENT #ops")
    assert state.nick == "Caro"
    assert list(state.rooms) == ["#lobby", "#ops"]
    assert state.rooms["#lobby"].members == ["alice", "bob", "Caro"]


def test_lines_about_rooms_you_are_not_in_change_no_membership() -> None:
    state = in_rooms("USERS #elsewhere dave erin", "MSG #elsewhere dave hi")
    assert "#elsewhere" not in state.rooms
    assert "#elsewhere" in state.room_names()  # but the name is known, for completion
    assert "dave" not in state.nicks()


def test_topics_are_kept_per_room() -> None:
    state = in_rooms("TOPIC #rust bob borrow checker questions", "TOPIC #lobby * ")
    assert state.rooms["#rust"].topic == "borrow checker questions"
    assert state.rooms["#lobby"].topic == ""


def test_room_names_yours_first_then_the_listed_ones() -> None:
    state = in_rooms("ROOM #zeta 3", "ROOM #Alpha 1 first", "ROOM #lobby 3 welcome all", "ROOMS 3")
    assert state.room_names() == ["#lobby", "#rust", "#ops", "#Alpha", "#zeta"]
    # A later /rooms answer replaces what the earlier one listed: #zeta has ended.
    state.on_line("ROOM #Alpha 1 first")
    state.on_line("ROOMS 1")
    assert state.room_names() == ["#lobby", "#rust", "#ops", "#Alpha"]


def test_nicks_of_the_current_room_come_first_without_your_own() -> None:
    state = in_rooms("JOIN #ops zed", "JOIN #rust Alice")
    assert state.nicks() == ["alice", "bob", "zed"]  # #lobby's, then #rust's, then #ops's
    state.on_line("CURRENT #ops")
    assert state.nicks() == ["zed", "alice", "bob"]


def test_next_room_prefers_unread_rooms_after_the_current_one() -> None:
    state = in_rooms()
    assert state.next_room() == "#rust"  # nothing unread: the next in order
    assert state.previous_room() == "#ops"  # wrapping
    state.on_line("MSG #ops bob ping")
    assert state.next_room() == "#ops"
    state.on_line("CURRENT #ops")
    assert state.next_room() == "#lobby"  # wrapping
    state.on_line("MSG #rust bob ping")
    assert state.next_room() == "#rust"
    assert state.previous_room() == "#rust"


def test_a_switch_in_flight_is_the_base_for_the_next_one() -> None:
    state = in_rooms()
    state.on_command("/join #rust")
    assert state.next_room() == "#ops"  # not #rust again, before CURRENT #rust arrives
    state.on_line("CURRENT #rust")
    assert state.next_room() == "#ops"
    state.on_command("/join #nowhere")
    state.on_line("ERR no_such_room There is no room #nowhere.")
    assert state.next_room() == "#ops"  # back to the current room


def test_no_next_room_when_in_one_room_or_none() -> None:
    state = fed(*REGISTRATION)
    assert state.next_room() is None and state.previous_room() is None
    assert fed("NICK", "WELCOME carol hi").next_room() is None


def test_other_commands_change_nothing() -> None:
    state = in_rooms()
    for text in ("hello", "/msg #rust hi", "/join", "/join rust", "/part #rust"):
        state.on_command(text)
    assert state.next_room() == "#rust"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("MSG #lobby alice hi", ("MSG", "#lobby alice hi")),
        ("@time=2026 MSG #lobby alice hi", ("MSG", "#lobby alice hi")),
        ("NICK\r", ("NICK", "")),
        ("", ("", "")),
    ],
)
def test_split_line_skips_tags(line: str, expected: tuple[str, str]) -> None:
    assert split_line(line) == expected


@pytest.mark.parametrize(
    ("line", "room"),
    [
        ("MSG #lobby alice hi", "#lobby"),
        ("USERS #r a b", "#r"),
        ("MSG alice hi", None),  # v1
        ("DM alice bob hi", None),
        ("CURRENT #lobby", None),  # about you, not something said in the room
        ("ROOM #lobby 2", None),
    ],
)
def test_line_room(line: str, room: str | None) -> None:
    assert line_room(*split_line(line)) == room


def test_unknown_and_malformed_lines_are_ignored() -> None:
    state = in_rooms("FROB #lobby x", "MSG", "JOIN", "RENAME x", "USERS", "CURRENT", "@only-tags")
    assert state.current == "#lobby"
    assert list(state.rooms) == ["#lobby", "#rust", "#ops"]


# -- protocol v3: tags, history --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "tags"),
    [
        (
            "@id=1042;time=2026-12-01T18:04:05.123Z MSG #lobby alice hello",
            Tags(1042, datetime(2026, 12, 1, 18, 4, 5, 123000, tzinfo=UTC), False),
        ),
        (
            "@id=7;time=2026-12-01T18:04:05.000Z;history MSG #lobby a b",
            Tags(7, datetime(2026, 12, 1, 18, 4, 5, tzinfo=UTC), True),
        ),
        ("@history;id=3 TOPIC #r a t", Tags(3, None, True)),  # any order
        ("@id=9;future=x;flag MSG #r a b", Tags(9)),  # unknown keys are ignored
        ("@id=0 MSG #r a b", Tags()),  # ids are positive
        ("@id=-1;id2=5 MSG #r a b", Tags()),
        ("@id=١٢ MSG #r a b", Tags()),  # digits, but not ASCII ones
        ("@time=2026-12-01T18:04:05Z MSG #r a b", Tags()),  # milliseconds are required
        ("@time=2026-12-01T18:04:05.123+01:00 MSG #r a b", Tags()),  # and Z
        ("@time=2026-13-01T18:04:05.123Z MSG #r a b", Tags()),
        ("MSG #lobby alice @id=1", Tags()),
        ("", Tags()),
    ],
)
def test_line_tags(line: str, tags: Tags) -> None:
    assert line_tags(line) == tags


def test_history_lines_are_never_unread_and_change_nothing() -> None:
    state = in_rooms(
        "@id=1;time=2026-12-01T18:04:05.123Z;history MSG #rust bob old news",
        "@id=2;time=2026-12-01T18:04:05.123Z;history ACTION #rust bob waved",
        "@id=3;time=2026-12-01T18:04:05.123Z;history TOPIC #rust bob an old topic",
        "@id=4;time=2026-12-01T18:04:05.123Z;history MSG #elsewhere bob x",
    )
    assert unread(state) == {"#lobby": 0, "#rust": 0, "#ops": 0}
    assert state.rooms["#rust"].topic == ""  # a backlog TOPIC is not the topic
    assert "#elsewhere" in state.room_names()
    state.on_line("@id=5;time=2026-12-01T18:04:06.000Z MSG #rust bob new")
    state.on_line("@id=6;time=2026-12-01T18:04:06.000Z TOPIC #rust bob a new topic")
    assert unread(state)["#rust"] == 1
    assert state.rooms["#rust"].topic == "a new topic"


def test_a_lost_connection_forgets_the_rooms_but_not_the_nick() -> None:
    state = in_rooms("ROOM #zeta 1", "ROOMS 1")
    state.connection_lost()
    assert not state.registered and state.version is None
    assert state.rooms == {} and state.current is None and state.current_room is None
    assert state.nick == "carol"
    assert "#zeta" in state.room_names()
    for line in REGISTRATION:
        state.on_line(line)
    assert state.registered and list(state.rooms) == ["#lobby"]


def test_reorder_puts_rooms_back_in_their_old_order() -> None:
    state = in_rooms("JOIN #new carol", "USERS #new carol", "CURRENT #new")
    state.reorder(["#ops", "#LOBBY", "#gone"])
    assert list(state.rooms) == ["#ops", "#lobby", "#rust", "#new"]
