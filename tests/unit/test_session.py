"""chatd/core: sessions, rooms and announcements against docs/protocol.md, with
an in-memory outlet in place of the transport (the core has no sockets) and a
fake clock: flood control is on, at the default limits, and each exchange
below comes long enough after the last for the bucket to be full again."""

from __future__ import annotations

import dataclasses
import gc
import weakref
from pathlib import Path

import pytest

from chatd.config import Config, LimitsConfig, RoomsConfig, TLSConfig
from chatd.core.chat import Chat
from chatd.core.commands import COMMANDS
from chatd.core.session import Session
from tests.support.chatclient import Tags
from tests.support.sessions import PAUSE, FakeClock, FakeOutlet, clock_of, connect, make_chat


def say(outlet: FakeOutlet, *lines: str) -> list[str]:
    return [line for _, line in say_events(outlet, *lines)]


def say_events(outlet: FakeOutlet, *lines: str) -> list[tuple[Tags, str]]:
    assert outlet.session is not None
    clock_of(outlet).advance(PAUSE)
    outlet.session.on_lines([line.encode() for line in lines])
    return outlet.take_events()


@pytest.fixture
def chat() -> Chat:
    return make_chat()


def test_registration_greets_then_joins_the_autojoin_rooms(chat: Chat) -> None:
    outlet = FakeOutlet("127.0.0.1:1")
    session = Session(chat, outlet, {})
    outlet.session = session
    session.on_open(None, None)
    hello, ask = outlet.take()
    assert hello.startswith("HELLO 5 chatd ") and ask == "NICK"  # no accounts: no ACCOUNTS line
    session.on_lines([b"alice"])
    lines = outlet.take()
    assert lines[0].startswith("WELCOME alice ")
    assert lines[1:] == ["JOIN #lobby alice", "USERS #lobby alice", "HISTORY #lobby 0 end", "CURRENT #lobby"]


def test_text_goes_to_the_current_room_and_names_it(chat: Chat) -> None:
    alice, bob = connect(chat, "alice"), connect(chat, "bob")
    assert alice.take() == ["JOIN #lobby bob"]
    say(bob, "hello", "/me waves")
    events = alice.take_events()
    assert [line for _, line in events] == ["MSG #lobby bob hello", "ACTION #lobby bob waves"]
    assert all(tags.keys() == {"id", "time"} for tags, _ in events)  # live events: id and time
    first, second = (int(tags["id"]) for tags, _ in events)
    assert first < second


def test_join_creates_switches_and_parts(chat: Chat) -> None:
    alice, bob = connect(chat, "alice"), connect(chat, "bob")
    alice.take()
    assert say(alice, "/join #Rust") == [
        "JOIN #Rust alice",
        "USERS #Rust alice",
        "HISTORY #Rust 0 end",
        "CURRENT #Rust",
    ]
    assert say(bob, "/join #rust") == [
        "JOIN #Rust bob",
        "USERS #Rust alice bob",
        "HISTORY #Rust 0 end",
        "CURRENT #Rust",
    ]
    assert alice.take() == ["JOIN #Rust bob"]
    assert say(alice, "/join #lobby") == ["CURRENT #lobby"]  # already in it: a switch
    assert say(alice, "hi lobby") == ["MSG #lobby alice hi lobby"]
    assert say(alice, "/msg #rust in rust") == ["MSG #Rust alice in rust"]
    assert bob.take() == ["MSG #lobby alice hi lobby", "MSG #Rust alice in rust"]  # take checks their tags
    assert say(bob, "/part #rust bye now") == ["PART #Rust bob bye now", "CURRENT #lobby"]
    assert alice.take() == ["PART #Rust bob bye now"]
    say(alice, "/part #rust")
    assert chat.rooms.find("#rust") is None  # empty and not permanent: gone
    assert say(alice, "/part") == ["PART #lobby alice", "CURRENT *"]
    assert say(alice, "anyone?") == ["ERR not_in_room You are in no room; /join one first."]


def test_topics(chat: Chat) -> None:
    alice, bob = connect(chat, "alice"), connect(chat, "bob")
    alice.take()
    assert say_events(alice, "/topic") == [({}, "TOPIC #lobby *")]  # a state: no tags
    set_by_alice = say_events(alice, "/topic welcome all")
    assert [line for _, line in set_by_alice] == ["TOPIC #lobby alice welcome all"]
    assert set_by_alice[0][0].keys() == {"id", "time"}  # a change of topic is an event
    assert bob.take_events() == set_by_alice
    carol = FakeOutlet("x")
    carol.session = Session(chat, carol, {})
    carol.session.on_open(None, None)
    carol.session.on_lines([b"carol"])
    joined = carol.take_events()[3:]
    assert [line for _, line in joined] == [
        "JOIN #lobby carol",
        "TOPIC #lobby alice welcome all",
        "USERS #lobby alice bob carol",
        "HISTORY #lobby 0 end",
        "CURRENT #lobby",
    ]
    assert all(tags == {} for tags, _ in joined)  # the TOPIC after a JOIN is a state: no tags
    assert alice.take() == ["JOIN #lobby carol"]
    assert say_events(alice, "/topic") == [({}, "TOPIC #lobby alice welcome all")]
    assert say(alice, "/topic #nowhere x")[0].startswith("ERR not_in_room ")


def test_rooms_and_who(chat: Chat) -> None:
    alice, bob = connect(chat, "alice"), connect(chat, "bob")
    say(bob, "/join #b", "/topic the b room")
    alice.take()
    assert say(alice, "/rooms") == ["ROOM #b 1 the b room", "ROOM #lobby 2", "ROOMS 2"]
    assert say(alice, "/who #b") == ["USERS #b bob"]
    assert say(alice, "/who") == ["USERS #lobby alice bob"]
    assert say(alice, "/who #none")[0].startswith("ERR no_such_room ")


def test_room_errors(chat: Chat) -> None:
    alice = connect(chat, "alice")
    alice.take()
    assert say(alice, "/join lobby")[0].startswith("ERR room_invalid ")
    assert say(alice, "/join #" + "x" * 33)[0].startswith("ERR room_invalid ")
    assert say(alice, "/join")[0].startswith("ERR missing_argument ")
    assert say(alice, "/msg #elsewhere hi")[0].startswith("ERR not_in_room ")


def test_a_joined_room_is_named_in_any_case_and_only_by_the_rules(chat: Chat) -> None:
    """`/msg #LOBBY` reaches #lobby; a name outside the rules is refused even
    where its lower case is a joined room's key (the Kelvin sign lowers to k)."""
    alice = connect(chat, "alice")
    bob = connect(chat, "bob")
    say(alice, "/join #k")
    bob.take()
    assert say(alice, "/msg #LOBBY hi")[-1] == "MSG #lobby alice hi"
    assert say(alice, "/msg #\u212a hi")[0].startswith("ERR room_invalid ")
    assert say(alice, "/msg #K hi")[-1] == "MSG #k alice hi"


def test_room_limits() -> None:
    chat = make_chat(max_rooms=3, max_rooms_per_client=2)
    alice = connect(chat, "alice")
    alice.take()
    assert say(alice, "/join #a")[-1] == "CURRENT #a"
    assert say(alice, "/join #b")[0].startswith("ERR too_many_rooms ")  # alice's own limit
    bob = connect(chat, "bob")
    bob.take()
    assert say(bob, "/join #b")[-1] == "CURRENT #b"
    carol = connect(chat, "carol")
    carol.take()
    assert say(carol, "/join #c")[0].startswith("ERR too_many_rooms ")  # the server's limit


def test_creating_rooms_can_be_turned_off() -> None:
    chat = make_chat(allow_create=False, permanent=("#lobby", "#help"))
    alice = connect(chat, "alice")
    alice.take()
    assert say(alice, "/join #new")[0].startswith("ERR no_such_room ")
    assert say(alice, "/join #help")[-1] == "CURRENT #help"
    say(alice, "/part #help")
    assert chat.rooms.find("#help") is not None  # permanent: stays when empty


def test_leave_and_rename_reach_each_sharer_once(chat: Chat) -> None:
    alice, bob, carol = connect(chat, "alice"), connect(chat, "bob"), connect(chat, "carol")
    say(carol, "/part #lobby")  # carol shares nothing with alice
    say(alice, "/join #a", "/join #b")
    say(bob, "/join #a", "/join #b")
    for outlet in (alice, bob, carol):
        outlet.take()
    assert say(alice, "/nick Alicia") == ["RENAME alice Alicia"]
    assert bob.take() == ["RENAME alice Alicia"]
    assert carol.take() == []
    say(alice, "/quit lunch")
    assert alice.closed == ("quit", "lunch")
    assert bob.take() == ["LEAVE Alicia quit lunch"]
    assert carol.take() == []
    assert chat.nicks.find("alicia") is None
    assert [len(chat.rooms.find(name) or ()) for name in ("#lobby", "#a", "#b")] == [1, 1, 1]


def test_a_rejected_client_is_told_why(chat: Chat) -> None:
    outlet = FakeOutlet("x")
    outlet.session = Session(chat, outlet, {})
    outlet.session.on_open("server_full", None)
    assert outlet.take() == ["ERR server_full The server is full; try again later."]
    assert outlet.closed == ("server_full", "")


def test_reload_makes_new_permanent_rooms(chat: Chat) -> None:
    chat.configure(dataclasses.replace(chat.config, rooms=RoomsConfig(permanent=("#lobby", "#news"))))
    assert [room.name for room in chat.rooms.all()] == ["#lobby", "#news"]


def test_parting_the_current_room_makes_the_latest_joined_current(chat: Chat) -> None:
    alice = connect(chat, "alice")
    say(alice, "/join #a", "/join #b", "/join #c")
    assert say(alice, "/join #a") == ["CURRENT #a"]  # a switch does not reorder
    assert say(alice, "/part") == ["PART #a alice", "CURRENT #c"]
    assert say(alice, "/part #b gone") == ["PART #b alice gone"]  # not current: no CURRENT
    assert say(alice, "/part #c") == ["PART #c alice", "CURRENT #lobby"]
    assert say(alice, "/part") == ["PART #lobby alice", "CURRENT *"]
    for line in ("hello", "/me waves", "/part", "/topic", "/topic new", "/who"):
        assert say(alice, line)[0].startswith("ERR not_in_room "), line
    assert say(alice, "/part #lobby")[0].startswith("ERR not_in_room ")
    assert say(alice, "/join #lobby") == [
        "JOIN #lobby alice",
        "USERS #lobby alice",
        "HISTORY #lobby 0 end",
        "CURRENT #lobby",
    ]


def test_msg_to_a_room_does_not_switch(chat: Chat) -> None:
    alice = connect(chat, "alice")
    say(alice, "/join #a")
    events = say_events(alice, "/msg #LOBBY over there", "right here")
    assert [line for _, line in events] == ["MSG #lobby alice over there", "MSG #a alice right here"]
    assert all(tags.keys() == {"id", "time"} for tags, _ in events)


def test_who_of_a_room_one_is_not_in(chat: Chat) -> None:
    alice, bob = connect(chat, "alice"), connect(chat, "bob")
    say(bob, "/join #b")
    alice.take()
    assert say(alice, "/who #B") == ["USERS #b bob"]
    assert say(alice, "/topic #b")[0].startswith("ERR not_in_room ")  # /topic needs membership
    assert say(alice, "/who #bad!")[0].startswith("ERR room_invalid ")


def test_autojoin_joins_each_room_in_order_and_the_last_is_current() -> None:
    chat = make_chat(autojoin=("#lobby", "#help"), permanent=("#lobby", "#help"))
    outlet = FakeOutlet("x")
    outlet.session = Session(chat, outlet, {})
    outlet.session.on_open(None, None)
    outlet.take()
    outlet.session.on_lines([b"alice"])
    assert outlet.take()[1:] == [
        "JOIN #lobby alice",
        "USERS #lobby alice",
        "HISTORY #lobby 0 end",
        "JOIN #help alice",
        "USERS #help alice",
        "HISTORY #help 0 end",
        "CURRENT #help",
    ]


def test_an_autojoin_room_beyond_the_server_limit_is_an_error_not_a_failure() -> None:
    # Not permanent, so created on the first registration; max_rooms leaves no room for it.
    chat = make_chat(autojoin=("#lobby", "#extra"), max_rooms=1)
    outlet = FakeOutlet("x")
    outlet.session = Session(chat, outlet, {})
    outlet.session.on_open(None, None)
    outlet.take()
    outlet.session.on_lines([b"alice"])
    lines = outlet.take()
    assert lines[1:4] == ["JOIN #lobby alice", "USERS #lobby alice", "HISTORY #lobby 0 end"]
    assert lines[4].startswith("ERR too_many_rooms ")
    assert lines[5:] == ["CURRENT #lobby"]


def test_a_dropped_connection_is_announced_once_to_sharers(chat: Chat) -> None:
    alice, bob = connect(chat, "alice"), connect(chat, "bob")
    say(alice, "/join #a")
    say(bob, "/join #a")
    alice.take()
    assert bob.session is not None
    bob.session.on_close("connection_lost", "")
    assert alice.take() == ["LEAVE bob connection_lost"]
    assert chat.nicks.find("bob") is None


def test_rename_case_only_and_to_the_same_nick(chat: Chat) -> None:
    alice, bob = connect(chat, "alice"), connect(chat, "bob")
    alice.take()
    assert say(alice, "/nick ALICE") == ["RENAME alice ALICE"]
    assert bob.take() == ["RENAME alice ALICE"]
    assert say(alice, "/nick ALICE") == ["INFO You are already ALICE."]
    assert say(alice, "/nick bob")[0].startswith("ERR nick_taken ")
    assert say(alice, "hi") == ["MSG #lobby ALICE hi"]  # the new spelling, tagged (take checks)


# -- nicknames from certificates: one spelling per identity (core/identities.py) ----------


def certified_chat() -> Chat:
    tls = TLSConfig(client_auth="required", client_ca=Path("ca.crt"), nick_from_cert=True)
    return Chat(Config(path=Path("chatd.yaml"), tls=tls), monotonic=FakeClock())


def open_with(chat: Chat, cert_name: str) -> FakeOutlet:
    outlet = FakeOutlet("127.0.0.1:40000")
    outlet.session = Session(chat, outlet, {"session": 1})
    outlet.session.on_open(None, cert_name)
    hello, nick = outlet.take()
    assert hello.startswith("HELLO ") and nick == "NICK"
    return outlet


def send(outlet: FakeOutlet, line: str) -> list[str]:
    assert outlet.session is not None
    clock_of(outlet).advance(PAUSE)
    outlet.session.on_lines([line.encode()])
    return outlet.take()


def test_a_certificate_for_another_spelling_is_refused() -> None:
    chat = certified_chat()
    alice = open_with(chat, "alice")
    assert send(alice, "alice")[0].startswith("WELCOME alice ")
    alice.session.on_close("quit", "")  # type: ignore[union-attr]  # gone: the spelling stays
    shouting = open_with(chat, "ALICE")
    lines = send(shouting, "ALICE")
    assert len(lines) == 1, lines  # then BYE nick_failed, which the transport writes
    assert lines[0].startswith("ERR nick_invalid Your certificate names you ALICE, but this server knows")
    assert "certificate for alice" in lines[0]
    assert shouting.closed == ("nick_failed", "")
    assert chat.nicks.find("alice") is None


def test_the_refusal_comes_whatever_nickname_is_sent() -> None:
    chat = certified_chat()
    send(open_with(chat, "alice"), "alice")
    shouting = open_with(chat, "ALICE")
    assert send(shouting, "alice")[0].startswith("ERR nick_invalid Your certificate names you ALICE")
    assert shouting.closed == ("nick_failed", "")


def test_the_first_spelling_keeps_working_and_a_wrong_nickname_is_the_usual_error() -> None:
    chat = certified_chat()
    first = open_with(chat, "Dave")
    lines = send(first, "dave")  # not the certificate's spelling: as before, ask again
    assert lines[0].startswith("ERR nick_invalid Your certificate allows only the nickname Dave")
    assert lines[1] == "NICK"
    assert send(first, "Dave")[0].startswith("WELCOME Dave ")
    assert chat.identities.claim("Dave") is None


def test_frames_without_a_line_take_tokens_as_lines_do_before_registration_too() -> None:
    """WebSocket pings, pongs and fragments (Session.charge): one line's worth each,
    refused ones counted as lines refused for the rate, flood_disconnect of them the end."""
    limits = LimitsConfig(message_rate=0.001, message_burst=3, flood_disconnect=4)  # no refill meanwhile
    chat = Chat(Config(path=Path("chatd.yaml"), limits=limits))
    outlet = FakeOutlet("127.0.0.1:1")
    session = Session(chat, outlet, {})
    outlet.session = session
    session.on_open(None, None)
    outlet.take()
    assert session.charge(2) and session.charge(1)  # the burst
    assert not session.charge(1)
    assert outlet.take() == ["ERR rate_limited Slow down; that frame was dropped."]
    assert session.rate_limited == 1 and outlet.closed is None
    assert not session.charge(1) and not session.charge(1) and outlet.closed is None
    assert not session.charge(1)
    assert outlet.closed == ("flood", "")
    assert not session.charge(1)  # closed: nothing more is taken
    assert session.rate_limited == 4


def test_frames_are_free_when_the_rate_is_off() -> None:
    alice = connect(make_chat(message_rate=0), "alice")
    assert alice.session is not None
    assert all(alice.session.charge(1) for _ in range(1000))
    assert alice.take() == []


# -- flood control (core/flood.py decides, the session acts), on the fake clock ----------


def paste(outlet: FakeOutlet, count: int, start: int = 0) -> None:
    """`count` lines in one read, after a pause that fills the bucket."""
    assert outlet.session is not None
    clock_of(outlet).advance(PAUSE)
    outlet.session.on_lines([b"line %d" % i for i in range(start, start + count)])


def test_a_paste_beyond_the_burst_is_held_and_released_in_order_as_tokens_come(chat: Chat) -> None:
    alice, bob = connect(chat, "alice"), connect(chat, "bob")  # burst 5, 2 tokens a second
    alice.take()
    clock = clock_of(bob)
    paste(bob, 8)
    assert bob.take() == [f"MSG #lobby bob line {i}" for i in range(5)]
    assert bob.deadline == clock.now + 0.5  # the next token
    assert bob.session is not None
    bob.session.on_timer(clock.now + 0.4)  # early: nothing yet
    assert bob.take() == []
    clock.advance(0.5)
    bob.session.on_timer(clock.now)
    assert bob.take() == ["MSG #lobby bob line 5"]
    assert bob.deadline == clock.now + 0.5
    clock.advance(1.0)
    bob.session.on_timer(clock.now)
    assert bob.take() == ["MSG #lobby bob line 6", "MSG #lobby bob line 7"]
    assert bob.deadline is None
    assert alice.take() == [f"MSG #lobby bob line {i}" for i in range(8)]
    assert bob.session.rate_limited == 0


def test_a_line_beyond_the_held_burst_is_refused_and_the_rest_still_go(chat: Chat) -> None:
    alice = connect(chat, "alice")
    paste(alice, 11)  # 5 at once, 5 held, 1 refused
    assert alice.take() == [
        *(f"MSG #lobby alice line {i}" for i in range(5)),
        "ERR rate_limited Slow down; that line was dropped.",
    ]
    assert alice.session is not None and alice.session.rate_limited == 1
    clock_of(alice).advance(10)
    alice.session.on_timer(clock_of(alice).now)
    assert alice.take() == [f"MSG #lobby alice line {i}" for i in range(5, 10)]
    assert alice.closed is None


def test_flood_disconnect_refusals_within_30_seconds_end_the_connection() -> None:
    chat = make_chat(flood_disconnect=3)
    alice, bob = connect(chat, "alice"), connect(chat, "bob")
    alice.take()
    paste(bob, 12)  # 5 said, 5 held, 2 refused
    assert bob.closed is None
    clock_of(bob).advance(31)  # the held lines wait for a timer; the refusals leave the window
    assert bob.session is not None
    bob.session.on_lines([b"more", b"more"])
    assert bob.closed is None
    bob.session.on_lines([b"more"])
    assert bob.closed == ("flood", "")
    assert bob.session.rate_limited == 5
    assert alice.take() == [*(f"MSG #lobby bob line {i}" for i in range(5)), "LEAVE bob flood"]


def test_a_reload_mid_hold_releases_held_lines_by_the_new_rate(chat: Chat) -> None:
    alice = connect(chat, "alice")
    paste(alice, 8)
    alice.take()
    clock = clock_of(alice)
    assert alice.deadline == clock.now + 0.5
    assert alice.session is not None
    faster = dataclasses.replace(chat.config.limits, message_rate=100.0)
    chat.configure(dataclasses.replace(chat.config, limits=faster))
    alice.session.limits_changed()
    assert alice.take() == []
    assert alice.deadline == pytest.approx(clock.now + 0.01)  # the next token, at the new rate
    chat.configure(dataclasses.replace(chat.config, limits=dataclasses.replace(faster, message_rate=0)))
    alice.session.limits_changed()  # no limit: all of them, at once
    assert alice.take() == [f"MSG #lobby alice line {i}" for i in range(5, 8)]
    assert alice.deadline is None
    paste(alice, 20)
    assert len(alice.take()) == 20


# -- the command table (core/commands.py) ---------------------------------------------------


def test_before_registration_a_command_without_a_row_for_it_is_taken_for_a_nickname(chat: Chat) -> None:
    outlet = FakeOutlet("x")
    outlet.session = Session(chat, outlet, {})
    outlet.session.on_open(None, None)
    outlet.take()
    assert send(outlet, "/join #lobby") == [
        "ERR nick_invalid Nicknames are 1-32 characters of A-Z, a-z, 0-9, _ and -.",
        "NICK",
    ]
    send(outlet, "/quit see you")
    assert outlet.closed == ("quit", "see you")


def test_a_row_usable_before_registration_is_run_there() -> None:
    """What accounts' /login will do: a row, not a branch in the session."""
    chat = make_chat(max_nick_attempts=1)
    ping = dataclasses.replace(COMMANDS["ping"], before_registration=True)
    outlet = FakeOutlet("x")
    outlet.session = Session(chat, outlet, {}, commands={**COMMANDS, "ping": ping})
    outlet.session.on_open(None, None)
    outlet.take()
    assert send(outlet, "/ping 42") == ["PONG 42"]  # not a nickname attempt: the one allowed is left
    assert send(outlet, "alice")[0].startswith("WELCOME alice ")
    assert send(outlet, "/ping") == ["PONG"]


def test_a_closed_session_is_freed_at_once_without_a_gc_pass(chat: Chat) -> None:
    """A finished connection's session goes with its last reference, not at the
    next collection of the cyclic GC: under churn those would pile up (RSS,
    tests/integration/test_churn.py). So nothing a session has may keep it."""
    alice, bob = connect(chat, "alice"), connect(chat, "bob")
    say(alice, "/join #a", "hello", "/msg bob hi")
    assert alice.session is not None
    session = weakref.ref(alice.session)
    alice.session.on_close("quit", "")
    gc.collect()
    gc.disable()
    try:
        alice.session = None  # the transport lets go of it (its codec becomes Idle)
        del alice
        assert session() is None
    finally:
        gc.enable()
    assert bob.session is not None
