"""chatctl connect and room roles (issue 22): how the lines of a registered
room read (chatctl/roles.py through chatctl/render.py), what the state keeps
of roles and flags (chatctl/state.py), the marks on messages, the prompt's
and the status line's, and a kick as the timeline sees it."""

from __future__ import annotations

from datetime import datetime

import pytest

from chatctl.render import plain, render_line, render_plain
from chatctl.state import ClientState
from chatctl.status import render_status
from chatctl.timeline import Timeline

NOW = datetime(2026, 11, 25, 9, 5, 59)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "ROLES #rust alice:owner bob:op carol:voice",
            "09:05 -- roles in #rust: @alice (owner), @bob (op), +carol (voice)",
        ),
        ("ROLES #rust", "09:05 -- nobody holds a role in #rust"),
        ("ROLE #rust bob op alice", "09:05 -- bob is an op of #rust (by alice)"),
        ("ROLE #rust bob member alice", "09:05 -- bob is a member of #rust (by alice)"),
        ("ROLE #rust dave voice *", "09:05 -- dave is a voice of #rust (by the server)"),
        ("ROLE #rust carol op alice", "09:05 -- you is an op of #rust (by alice)"),
        (
            "FLAGS #rust topic_ops private",
            "09:05 -- #rust: topic_ops (only ops set the topic); private (invite-only and hidden)",
        ),
        ("FLAGS #rust", "09:05 -- #rust: no flags"),
        ("FLAG #rust moderated on alice", "09:05 -- #rust: moderated (only voiced members speak) (by alice)"),
        ("FLAG #rust moderated off *", "09:05 -- #rust: moderated is off (by the server)"),
        (
            "KICK #rust troll alice kicked spamming links",
            "09:05 -- troll was kicked from #rust (by alice): spamming links",
        ),
        ("KICK #rust troll * banned", "09:05 -- troll was banned from #rust (by the server)"),
        ("KICK #rust carol alice kicked", "09:05 -- you were kicked from #rust (by alice)"),
        ("INVITE #secret carol alice", "09:05 -!- alice invites you to #secret: /join #secret (within 24 hours)"),
        ("INVITE #secret dave carol", "09:05 -- dave may join #secret once (invited) (by carol)"),
        (
            "BAN #rust account:mallory bob 2026-11-25T08:00:00.000Z trolling",
            "09:05 -- #rust bans account:mallory (by bob since 2026-11-25T08:00:00.000Z): trolling",
        ),
        ("BANS #rust 1", "09:05 -- 1 ban in #rust"),
        ("REGISTERED #rust alice", "09:05 -- #rust is registered to alice"),
        ("REGISTERED #rust *", "09:05 -- #rust is no longer registered: no roles, no flags"),
        ("ROLE #rust", "09:05 ROLE #rust"),  # malformed: shown as it came
    ],
)
def test_the_lines_of_a_registered_room(line: str, expected: str) -> None:
    assert render_plain(line, "carol", NOW, "#rust") == expected


def test_a_line_of_another_room_names_it_once() -> None:
    assert render_plain("ROLE #ops bob op alice", "carol", NOW, "#rust") == "09:05 -- bob is an op of #ops (by alice)"


def joined(*lines: str) -> ClientState:
    state = ClientState()
    for line in ("HELLO 5 chatd 0.5.0", "NICK", "WELCOME carol hi", "JOIN #rust carol", "USERS #rust alice bob carol"):
        state.on_line(line)
    for line in (*lines, "CURRENT #rust"):
        state.on_line(line)
    return state


def test_the_state_follows_roles_and_flags() -> None:
    state = joined("ROLES #rust alice:owner bob:op", "FLAGS #rust topic_ops moderated")
    room = state.rooms["#rust"]
    assert (room.roles, room.flags) == ({"alice": "owner", "bob": "op"}, ["topic_ops", "moderated"])
    for line in ("ROLE #rust carol voice alice", "ROLE #rust bob member alice", "FLAG #rust private on alice"):
        state.on_line(line)
    assert state.role("#RUST", "Carol") == "voice" and state.role("#rust", "bob") == "member"
    assert room.flags == ["topic_ops", "moderated", "private"]
    state.on_line("RENAME alice Alice")
    assert state.role("#rust", "alice") == "owner"
    state.on_line("KICK #rust Alice * banned")
    assert "Alice" not in room.members and state.role("#rust", "alice") == "member"
    state.on_line("REGISTERED #rust *")
    assert (room.roles, room.flags) == ({}, [])
    state.on_line("KICK #rust carol bob kicked")
    assert "#rust" not in state.rooms
    state.on_line("ERR invite_only #secret is invite-only")  # an answer to a /join: no switch pending


def test_messages_show_their_authors_marks() -> None:
    state = joined("ROLES #rust alice:owner bob:voice")
    assert plain(render_line("MSG #rust alice hi", "carol", NOW, "#rust", state.role)) == "09:05 <@alice> hi"
    assert plain(render_line("ACTION #rust bob waves", "carol", NOW, "#rust", state.role)) == "09:05 * +bob waves"
    assert plain(render_line("MSG #rust carol hello", "carol", NOW, "#rust", state.role)) == "09:05 <carol> hello"
    history = "@id=3;time=2026-11-25T08:00:00.000Z;history MSG #rust alice earlier"
    assert plain(render_line(history, "carol", NOW, "#rust", state.role)).endswith(" <alice> earlier")  # then, not now


def test_the_status_line_shows_your_mark_and_the_rooms_flags() -> None:
    state = joined("ROLES #rust carol:op", "FLAGS #rust topic_ops private moderated")
    assert plain(render_status(state, 80)) == " [@#rust private moderated]"


def test_a_kick_ends_the_rooms_timeline_as_a_part_does() -> None:
    timeline = Timeline()
    for line in ("JOIN #rust carol", "USERS #rust carol", "HISTORY #rust 0 end"):
        timeline.feed(line, "carol")
    timeline.feed("KICK #rust carol alice kicked", "carol")
    timeline.on_command("/history #rust")
    assert timeline.feed("HISTORY #rust 0 end", "carol").show  # not taken for a request of ours
