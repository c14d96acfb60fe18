"""chatctl/render.py: how server lines look to people, without a terminal."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from chatctl.render import (
    STYLE,
    line_time,
    plain,
    render_day,
    render_line,
    render_notice,
    render_plain,
    sanitize,
)
from chatctl.state import ClientState
from chatctl.status import render_status  # moved out of chatctl/render.py (issue 22)

NOW = datetime(2026, 11, 25, 9, 5, 59)


def styles_of(fragments: list[tuple[str, str]], text: str) -> list[str]:
    """The styles of the fragments whose text is exactly `text`."""
    return [style for style, fragment in fragments if fragment == text]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # Lines in the current room (#lobby) look as they did before rooms.
        ("MSG #lobby alice hello there", "09:05 <alice> hello there"),
        ("MSG #lobby alice /not a command", "09:05 <alice> /not a command"),
        ("ACTION #lobby alice waves", "09:05 * alice waves"),
        ("JOIN #lobby alice", "09:05 -- alice joined"),
        ("PART #lobby alice", "09:05 -- alice left the room"),
        ("PART #lobby alice back later", "09:05 -- alice left the room: back later"),
        ("USERS #lobby alice bob carol", "09:05 -- 3 here: alice, bob, carol"),
        ("TOPIC #lobby alice no spoilers", "09:05 -- topic: no spoilers (set by alice)"),
        ("TOPIC #lobby * no spoilers", "09:05 -- topic: no spoilers"),
        ("TOPIC #lobby *", "09:05 -- no topic"),
        # Lines from another room start with its name.
        ("MSG #rust alice hello there", "09:05 #rust <alice> hello there"),
        ("ACTION #rust alice waves", "09:05 #rust * alice waves"),
        ("JOIN #rust alice", "09:05 #rust -- alice joined"),
        ("PART #rust alice bye", "09:05 #rust -- alice left the room: bye"),
        ("USERS #rust alice carol", "09:05 #rust -- 2 here: alice, carol"),
        ("TOPIC #rust alice borrowing", "09:05 #rust -- topic: borrowing (set by alice)"),
        # Your own joins and parts name the room themselves.
        ("JOIN #rust carol", "09:05 -- you joined #rust"),
        ("PART #rust Carol", "09:05 -- you left #rust"),
        ("PART #lobby carol see you", "09:05 -- you left #lobby: see you"),
        # Lines about you, not said in a room.
        ("CURRENT #rust", "09:05 -- now talking in #rust"),
        ("CURRENT *", "09:05 -- you are in no room; /join one"),
        ("ROOM #lobby 2", "09:05 -- #lobby (2)"),
        ("ROOM #rust 1 borrow checker questions", "09:05 -- #rust (1): borrow checker questions"),
        ("ROOMS 2", "09:05 -- 2 rooms"),
        ("ROOMS 1", "09:05 -- 1 room"),
        ("HELLO 2 chatd 0.2.0", "09:05 -!- chatd 0.2.0 (protocol version 2)"),
        ("DM alice carol psst", "09:05 [DM alice → you] psst"),
        # Tags (reserved for a later version) are skipped.
        ("@id=7 MSG #lobby alice hi", "09:05 <alice> hi"),
    ],
)
def test_each_v2_line_reads_as_text_for_people(line: str, expected: str) -> None:
    assert render_plain(line, "carol", NOW, "#lobby") == expected


def test_without_a_current_room_every_room_is_named() -> None:
    assert render_plain("MSG #lobby alice hi", "carol", NOW) == "09:05 #lobby <alice> hi"
    assert render_plain("MSG #lobby alice hi", "carol", NOW, "#LOBBY") == "09:05 <alice> hi"


def test_the_room_name_has_its_own_style() -> None:
    fragments = render_line("MSG #rust alice hi", "carol", NOW, "#lobby")
    assert styles_of(fragments, "#rust") == ["class:room"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # What a v1 server (no rooms) sends is shown too.
        ("MSG alice hello there", "09:05 <alice> hello there"),
        ("MSG alice /not a command", "09:05 <alice> /not a command"),
        ("ACTION alice waves", "09:05 * alice waves"),
        ("DM alice carol psst", "09:05 [DM alice → you] psst"),
        ("DM carol bob hi bob", "09:05 [DM you → bob] hi bob"),
        ("JOIN alice", "09:05 -- alice joined"),
        ("LEAVE alice quit", "09:05 -- alice left"),
        ("LEAVE alice quit gone for lunch", "09:05 -- alice left: gone for lunch"),
        ("LEAVE alice connection_lost", "09:05 -- alice lost the connection"),
        ("LEAVE alice kicked spamming links", "09:05 -- alice was kicked: spamming links"),
        ("LEAVE alice brand_new", "09:05 -- alice left (brand_new)"),
        ("RENAME alice alicia", "09:05 -- alice is now known as alicia"),
        ("RENAME carol Carol", "09:05 -- you are now known as Carol"),
        ("USERS alice bob carol", "09:05 -- 3 online: alice, bob, carol"),
        ("PONG", "09:05 -- pong"),
        ("PONG abc", "09:05 -- pong abc"),
        ("INFO the server restarts at noon", "09:05 -!- the server restarts at noon"),
        ("WELCOME carol Welcome to chatd, carol!", "09:05 -!- Welcome to chatd, carol!"),
        ("NICK", "09:05 -!- the server asks for a nickname"),
        ("ERR nick_taken The nickname bob is taken.", "09:05 error (nick_taken): The nickname bob is taken."),
        ("BYE quit", "09:05 -- goodbye"),
        ("BYE shutdown", "09:05 -- disconnected: the server is shutting down"),
        ("BYE kicked be nice", "09:05 -- disconnected: an operator removed you (be nice)"),
        ("BYE some_future_code", "09:05 -- disconnected: some_future_code"),
    ],
)
def test_each_v1_line_reads_as_text_for_people(line: str, expected: str) -> None:
    assert render_plain(line, "carol", NOW) == expected


@pytest.mark.parametrize(
    "line",
    ["FROB a b c", "MSG", "MSG alice", "DM alice bob", "JOIN", "ERR", "", "JOIN #r a b", "MSG #r", "CURRENT"],
)
def test_unknown_or_malformed_lines_are_shown_as_they_are(line: str) -> None:
    fragments = render_line(line, "carol", NOW)
    assert plain(fragments) == f"09:05 {line}"
    assert fragments[-1][0] == "class:unknown"


def test_the_time_is_hours_and_minutes() -> None:
    fragments = render_line("JOIN alice", "carol", datetime(2026, 1, 2, 23, 7, 1))
    assert fragments[0] == ("class:time", "23:07")


def test_kinds_of_line_have_distinct_styles() -> None:
    kinds = {
        "msg": render_line("MSG alice hi", "carol", NOW)[-1][0],
        "action": render_line("ACTION alice waves", "carol", NOW)[-1][0],
        "dm": render_line("DM alice carol hi", "carol", NOW)[-1][0],
        "event": render_line("JOIN alice", "carol", NOW)[-1][0],
        "info": render_line("INFO notice", "carol", NOW)[-1][0],
        "error": render_line("ERR rate_limited slow down", "carol", NOW)[-1][0],
        "bye": render_line("BYE kicked", "carol", NOW)[-1][0],
    }
    assert len(set(kinds.values())) == len(kinds), kinds
    for style in kinds.values():
        assert style.removeprefix("class:") in STYLE


def test_every_style_class_used_is_defined() -> None:
    lines = [
        "MSG carol hi alice",
        "MSG alice hi carol",
        "ACTION carol waves",
        "DM alice carol x",
        "JOIN carol",
        "LEAVE bob quit",
        "RENAME bob rob",
        "USERS alice carol",
        "PONG",
        "INFO x",
        "WELCOME carol hi",
        "NICK",
        "ERR x y",
        "BYE quit",
        "BYE flood",
        "???",
        "MSG #rust carol hi",
        "JOIN #rust carol",
        "PART #rust bob x",
        "TOPIC #rust bob t",
        "CURRENT #r",
        "CURRENT *",
        "ROOM #r 1 t",
        "ROOMS 1",
        "HELLO 2 x",
        "USERS #r carol",
        "HISTORY #r 1 end",
        "@id=1;time=2026-12-01T18:04:05.123Z;history MSG #rust alice hi carol",
    ]
    for line in lines:
        for style, _text in render_line(line, "carol", NOW):
            for name in style.split():
                assert name.removeprefix("class:") in STYLE, (line, style)


def test_own_messages_highlight_the_own_nick() -> None:
    own = render_line("MSG Carol hello", "carol", NOW)  # nicknames ignore case
    other = render_line("MSG alice hello", "carol", NOW)
    assert styles_of(own, "Carol") == ["class:own"]
    assert styles_of(other, "alice") == ["class:nick"]


def test_mentions_of_the_own_nick_are_highlighted_as_whole_words() -> None:
    fragments = render_line("MSG alice hey CAROL, carolyn and xcarol: carol!", "carol", NOW)
    assert styles_of(fragments, "CAROL") == ["class:mention"]
    assert styles_of(fragments, "carol") == ["class:mention"]
    assert plain(fragments) == "09:05 <alice> hey CAROL, carolyn and xcarol: carol!"
    assert "carolyn" in "".join(text for style, text in fragments if style == "class:text")


def test_own_nick_is_highlighted_in_actions_dms_events_and_users() -> None:
    assert styles_of(render_line("ACTION carol waves", "carol", NOW), "carol") == ["class:own"]
    assert styles_of(render_line("DM alice carol hi", "carol", NOW), "you") == ["class:own"]
    assert styles_of(render_line("USERS alice carol", "carol", NOW), "carol") == ["class:own"]
    assert styles_of(render_line("RENAME carol caro", "carol", NOW), "caro") == ["class:own"]


def test_before_registration_nothing_is_highlighted() -> None:
    fragments = render_line("MSG alice hi", "", NOW)
    assert "class:own" not in {style for style, _ in fragments}
    assert "class:mention" not in {style for style, _ in fragments}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("\x1b[2J\x1b]0;owned\x07", "^[[2J^[]0;owned^G"),
        ("bell\x07 backspace\x08 del\x7f", "bell^G backspace^H del^?"),
        ("nul\x00 cr\r lf\n", "nul^@ cr^M lf^J"),
        ("c1 \x9b31m csi", "c1 <U+009B>31m csi"),
        ("bidi \u202egnp.exe", "bidi <U+202E>gnp.exe"),
        ("isolate \u2067x\u2069", "isolate <U+2067>x<U+2069>"),
        ("tab\there", "tab here"),
        ("line\u2028sep", "line sep"),
        ("emoji 👩\u200d💻 ünïcödé", "emoji 👩\u200d💻 ünïcödé"),  # ZWJ is not a control
    ],
)
def test_sanitize_makes_control_characters_visible_and_inert(text: str, expected: str) -> None:
    assert sanitize(text) == expected


def test_no_escape_character_reaches_the_terminal() -> None:
    hostile = [
        "MSG \x1b[31mmallory \x1b[2J\x1b[H you have been \x1b]0;pwned\x07",
        "DM mallory carol \x9b2J",
        "INFO \x1bc reset",
        "LEAVE mallory quit \x1b[1A\x1b[2K",
        "ERR x \x1b[?1049h",
        "BYE kicked \x1b[5m",
        "FROB \x1b[6n",
    ]
    for line in hostile:
        text = render_plain(line, "carol", NOW)
        assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text, text


def test_a_trailing_carriage_return_is_dropped() -> None:
    assert render_plain("MSG alice hi\r", "carol", NOW) == "09:05 <alice> hi"


def test_notices_from_chatctl_itself_are_styled_apart() -> None:
    fragments = render_notice("choose a nickname \x1b[2J", NOW)
    assert plain(fragments) == "09:05 -- choose a nickname ^[[2J"
    assert fragments[-1][0] == "class:local"


def status_of(*lines: str, width: int = 80) -> str:
    state = ClientState()
    for line in ("HELLO 2 chatd 0.2.0", "NICK", "WELCOME carol hi", *lines):
        state.on_line(line)
    return plain(render_status(state, width))


IN_THREE_ROOMS = (
    "JOIN #lobby carol",
    "TOPIC #lobby alice welcome, all",
    "USERS #lobby alice carol",
    "CURRENT #lobby",
    "JOIN #rust carol",
    "USERS #rust carol",
    "CURRENT #rust",
    "JOIN #ops carol",
    "USERS #ops carol",
    "CURRENT #ops",
    "MSG #rust bob one",
    "MSG #rust bob two",
    "MSG #rust bob three",
    "CURRENT #lobby",
)


def test_the_status_line_shows_the_current_room_the_others_and_their_unread_lines() -> None:
    assert status_of(*IN_THREE_ROOMS) == " [#lobby] #rust(3) #ops | welcome, all"
    assert status_of(*IN_THREE_ROOMS, "CURRENT #rust") == " #lobby [#rust] #ops"


def test_the_topic_is_cut_to_fit_or_left_out() -> None:
    assert status_of(*IN_THREE_ROOMS, width=36) == " [#lobby] #rust(3) #ops | welcome, …"
    assert status_of(*IN_THREE_ROOMS, width=33) == " [#lobby] #rust(3) #ops"


def test_the_status_line_before_registration_in_no_room_and_on_a_v1_server() -> None:
    state = ClientState()
    state.on_line("HELLO 2 chatd 0.2.0")
    assert plain(render_status(state, 80)) == " not registered yet"
    assert status_of("JOIN #lobby carol", "CURRENT #lobby", "PART #lobby carol", "CURRENT *") == " [no room]"
    v1 = ClientState()
    v1.on_line("NICK")
    assert "v1" in plain(render_status(v1, 80))


def test_the_status_line_styles_unread_rooms_apart() -> None:
    state = ClientState()
    for line in ("HELLO 2 x", "NICK", "WELCOME carol hi", *IN_THREE_ROOMS):
        state.on_line(line)
    fragments = render_status(state, 80)
    assert styles_of(fragments, "[#lobby]") == ["class:status-current"]
    assert styles_of(fragments, "#rust(3)") == ["class:status-unread"]
    assert styles_of(fragments, "#ops") == ["class:status"]
    for style, _text in fragments:
        assert style.removeprefix("class:") in STYLE


# -- protocol v3: event times, history -----------------------------------------------------


PARIS = timezone(timedelta(hours=1))
NOW_IN_PARIS = datetime(2026, 12, 2, 9, 5, 59, tzinfo=PARIS)


def test_an_event_shows_its_own_time_in_local_time() -> None:
    line = "@id=5;time=2026-12-01T18:04:05.123Z MSG #lobby alice hi"
    assert render_plain(line, "carol", NOW_IN_PARIS, "#lobby") == "19:04 <alice> hi"
    assert line_time(line, NOW_IN_PARIS) == datetime(2026, 12, 1, 19, 4, 5, 123000, tzinfo=PARIS)
    # A naive `now` means the machine's local time: the result is naive too.
    assert line_time(line, NOW).tzinfo is None
    # No time (or a malformed one): when it arrived.
    assert render_plain("@id=5 MSG #lobby alice hi", "carol", NOW_IN_PARIS, "#lobby") == "09:05 <alice> hi"
    assert line_time("@time=soon MSG #lobby alice hi", NOW_IN_PARIS) == NOW_IN_PARIS


def test_history_lines_are_grey_throughout_and_read_the_same() -> None:
    live = "@id=5;time=2026-12-01T18:04:05.123Z MSG #rust alice hi carol"
    old = "@id=5;time=2026-12-01T18:04:05.123Z;history MSG #rust alice hi carol"
    assert render_plain(old, "carol", NOW_IN_PARIS, "#lobby") == render_plain(live, "carol", NOW_IN_PARIS, "#lobby")
    for style, _text in render_line(old, "carol", NOW_IN_PARIS, "#lobby"):
        assert style.split()[-1] == "class:history", style
    for style, _text in render_line(live, "carol", NOW_IN_PARIS, "#lobby"):
        assert "class:history" not in style
    assert list(STYLE)[-1] == "history"  # its rule comes last, so its colour wins


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("HISTORY #lobby 5 more", "09:05 -- 5 events from the history of #lobby; there are more"),
        ("HISTORY #lobby 1 end", "09:05 -- 1 event from the history of #lobby"),
        ("HISTORY bob 0 end", "09:05 -- 0 events from your direct messages with bob"),
        ("HISTORY #lobby x end", "09:05 HISTORY #lobby x end"),
    ],
)
def test_history_ends(line: str, expected: str) -> None:
    assert render_plain(line, "carol", NOW, "#lobby") == expected


def test_the_day_separator() -> None:
    fragments = render_day(date(2026, 12, 1))
    assert plain(fragments) == "-- Tuesday 1 December 2026 --"
    assert fragments[0][0] == "class:day"
