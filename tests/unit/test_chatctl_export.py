"""chatctl/export.py without a database: --since, and how events are written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chatctl.export import ExportError, format_event, parse_since
from chatd.core.history import Event

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T18:00", datetime(2026, 12, 1, 18, tzinfo=UTC)),  # UTC without a zone
        ("2026-12-01 18:00:05", datetime(2026, 12, 1, 18, 0, 5, tzinfo=UTC)),
        ("2026-12-01T18:04:05.123Z", datetime(2026, 12, 1, 18, 4, 5, 123000, tzinfo=UTC)),
        ("2026-12-01T19:00+01:00", datetime(2026, 12, 1, 18, tzinfo=UTC)),
        ("90s", NOW - timedelta(seconds=90)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        (" 1w ", NOW - timedelta(weeks=1)),
    ],
)
def test_since_accepts_dates_times_and_durations(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == ms(expected)


@pytest.mark.parametrize("text", ["yesterday", "", "2h ago", "-2h", "2026-13-01", "7y", "99999999999w"])
def test_since_refuses_anything_else_with_a_usage_error(text: str) -> None:
    with pytest.raises(ExportError) as caught:
        parse_since(text, NOW)
    assert caught.value.status == 2
    assert repr(text.strip()) in str(caught.value)


def event(kind: str, text: str, nick: str = "bob") -> Event:
    return Event(
        1042, ms(datetime(2026, 12, 1, 18, 4, 5, 7000, tzinfo=UTC)), "#lobby", "#Lobby", nick, kind, text.encode()
    )


def test_jsonl_has_the_six_fields_and_the_protocols_time() -> None:
    line = format_event(event("msg", 'héllo "there"'), "jsonl")
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "id": 1042,
        "time": "2026-12-01T18:04:05.007Z",
        "room": "#Lobby",
        "nick": "bob",
        "kind": "msg",
        "text": 'héllo "there"',
    }
    assert "héllo" in line  # UTF-8 as it is, not \u escapes


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("msg", "hello", "2026-12-01 18:04:05Z #Lobby <bob> hello"),
        ("action", "waves", "2026-12-01 18:04:05Z #Lobby * bob waves"),
        ("topic", "rust talk", "2026-12-01 18:04:05Z #Lobby -- bob set the topic: rust talk"),
        ("topic", "", "2026-12-01 18:04:05Z #Lobby -- bob cleared the topic"),
        ("msg", "bidi \u202e and \x1b[2J", "2026-12-01 18:04:05Z #Lobby <bob> bidi <U+202E> and ^[[2J"),
    ],
)
def test_text_is_one_readable_line_per_event(kind: str, text: str, expected: str) -> None:
    assert format_event(event(kind, text), "text") == expected + "\n"
