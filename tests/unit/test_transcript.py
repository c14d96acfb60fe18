"""chatctl/transcript.py: what the terminal client prints above the input
line (day separators, its own notices), without a terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from chatctl.render import Fragments, plain
from chatctl.transcript import Transcript, caught_up, nick_needed

NOW = datetime(2026, 12, 1, 9, 5)


def text(fragments: Fragments) -> list[str]:
    return plain(fragments).splitlines()


def no_roles(room: str, nick: str) -> str:
    return "member"


def test_a_day_separator_comes_before_the_first_line_of_each_new_day_only() -> None:
    transcript = Transcript(no_roles)
    now = datetime(2026, 12, 1, 9, 5, tzinfo=UTC)  # lines are shown in `now`'s time zone
    lines = [
        "@id=1;time=2026-11-30T23:58:00.000Z MSG #lobby alice late",
        "@id=2;time=2026-11-30T23:59:00.000Z MSG #lobby alice later",
        "@id=3;time=2026-12-01T00:01:00.000Z MSG #lobby alice early",
        "@id=4;time=2026-12-01T00:02:00.000Z MSG #lobby alice again",
    ]
    assert [text(transcript.line(line, "carol", "#lobby", now)) for line in lines] == [
        ["23:58 <alice> late"],
        ["23:59 <alice> later"],
        ["-- Tuesday 1 December 2026 --", "00:01 <alice> early"],
        ["00:02 <alice> again"],
    ]


def test_catch_up_notices() -> None:
    assert text(caught_up("#rust", 0, NOW)) == ["09:05 -- #rust: back, nothing missed"]
    assert text(caught_up("#rust", 1, NOW)) == ["09:05 -- #rust: back, 1 missed event above"]
    assert text(caught_up("#rust", 5, NOW)) == ["09:05 -- #rust: back, 5 missed events above"]


def test_a_nickname_is_asked_for_then_said_to_be_refused() -> None:
    assert text(nick_needed(None, False, NOW)) == ["09:05 -- choose a nickname: type it and press Enter"]
    assert text(nick_needed("carol", True, NOW)) == [
        "09:05 -- carol was refused: your old connection may linger at the server",
        "09:05 -- type carol again to retry, or choose another nickname",
    ]
