"""chatd/core/flood.py: the token bucket, held lines and the flood window
against docs/protocol.md ("Flow control"), with the clock passed in: every
`now` below is a number the test chooses."""

from __future__ import annotations

import pytest

from chatd.config import LimitsConfig
from chatd.core.flood import FLOOD_WINDOW, FloodControl


def flood(rate: float = 2.0, burst: int = 5, disconnect: int = 20, now: float = 100.0) -> FloodControl:
    return FloodControl(LimitsConfig(message_rate=rate, message_burst=burst, flood_disconnect=disconnect), now)


def test_a_new_bucket_holds_the_burst() -> None:
    bucket = flood(burst=5)
    assert [bucket.admit(100.0) for _ in range(6)] == [True] * 5 + [False]


def test_the_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    bucket = flood(rate=2.0, burst=5)
    assert all(bucket.admit(100.0) for _ in range(5))
    assert not bucket.admit(100.25)  # half a token
    assert bucket.admit(100.5)  # a whole one
    assert not bucket.admit(100.5)
    assert [bucket.admit(1000.0) for _ in range(6)] == [True] * 5 + [False]  # long idle: the burst, no more


def test_charge_takes_several_tokens_at_once_or_none() -> None:
    bucket = flood(burst=5)
    assert bucket.charge(3, 100.0)
    assert not bucket.charge(3, 100.0)  # two left: none taken
    assert bucket.charge(2, 100.0)
    assert not bucket.admit(100.0)


def test_held_lines_are_released_in_order_as_their_tokens_come() -> None:
    bucket = flood(rate=2.0, burst=5)
    assert all(bucket.admit(100.0) for _ in range(5))
    assert bucket.due is None and bucket.held == 0
    for line in (b"a", b"b", None, b"d"):  # None: a line that was too long
        assert not bucket.admit(100.0)
        assert bucket.hold(line, 100.0)
    assert bucket.held == 4
    assert bucket.due == 100.5  # the first held line's token
    assert bucket.release(100.4) == []
    assert bucket.due == pytest.approx(100.5)
    assert bucket.release(100.5) == [b"a"]
    assert bucket.due == 101.0
    assert bucket.release(101.6) == [b"b", None]  # two more tokens by then, and a fifth of one
    assert bucket.due == pytest.approx(101.6 + 0.4)
    assert bucket.release(102.0) == [b"d"]
    assert bucket.due is None and bucket.held == 0
    assert not bucket.admit(102.0)  # the released lines took the tokens


def test_a_line_waits_behind_held_lines_even_when_a_token_is_free() -> None:
    bucket = flood(rate=2.0, burst=5)
    assert all(bucket.admit(100.0) for _ in range(5))
    assert bucket.hold(b"first", 100.0)
    assert not bucket.admit(200.0)  # order: the held line goes first
    assert bucket.hold(b"second", 200.0)
    assert bucket.release(200.0) == [b"first", b"second"]


def test_no_more_than_the_burst_is_held() -> None:
    bucket = flood(rate=2.0, burst=3)
    assert all(bucket.admit(100.0) for _ in range(3))
    assert [bucket.hold(b"x", 100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.held == 3
    assert bucket.release(100.5) == [b"x"]
    assert bucket.hold(b"y", 100.5)  # room again


def test_refusals_end_the_connection_at_flood_disconnect_within_the_window() -> None:
    bucket = flood(disconnect=3)
    assert not bucket.refused(100.0)
    assert not bucket.refused(110.0)
    assert bucket.refused(100.0 + FLOOD_WINDOW)  # the first is 30 s old: still in the window


def test_refusals_older_than_the_window_no_longer_count() -> None:
    bucket = flood(disconnect=3)
    assert not bucket.refused(100.0)
    assert not bucket.refused(110.0)
    assert not bucket.refused(100.0 + FLOOD_WINDOW + 0.1)  # the first has left
    assert bucket.refused(139.0)  # 110, 130.1 and 139: three within 30 s


def test_flood_disconnect_zero_never_ends_a_connection() -> None:
    bucket = flood(disconnect=0)
    assert not any(bucket.refused(100.0) for _ in range(10_000))


def test_rate_zero_turns_the_bucket_off() -> None:
    bucket = flood(rate=0.0, burst=1)
    assert all(bucket.admit(100.0) for _ in range(10_000))
    assert bucket.charge(1_000_000, 100.0)
    assert bucket.held == 0 and bucket.due is None


def test_a_reload_to_no_rate_mid_hold_releases_everything_at_once() -> None:
    bucket = flood(rate=1.0, burst=5)
    assert all(bucket.admit(100.0) for _ in range(5))
    for line in (b"a", b"b", b"c"):
        assert bucket.hold(line, 100.0)
    assert bucket.due == 101.0
    bucket.apply(LimitsConfig(message_rate=0.0, message_burst=5))
    assert bucket.release(100.0) == [b"a", b"b", b"c"]
    assert bucket.due is None


def test_a_reload_mid_hold_sets_the_next_token_by_the_new_rate() -> None:
    bucket = flood(rate=1.0, burst=5)
    assert all(bucket.admit(100.0) for _ in range(5))
    assert bucket.hold(b"a", 100.0) and bucket.hold(b"b", 100.0)
    bucket.apply(LimitsConfig(message_rate=10.0, message_burst=5))
    assert bucket.release(100.0) == []
    assert bucket.due == pytest.approx(100.1)
    assert bucket.release(100.2) == [b"a", b"b"]


def test_a_reload_to_a_smaller_burst_caps_the_tokens_and_keeps_held_lines() -> None:
    bucket = flood(rate=1.0, burst=5)
    assert all(bucket.admit(100.0) for _ in range(5))
    for line in (b"a", b"b", b"c", b"d"):
        assert bucket.hold(line, 100.0)
    bucket.apply(LimitsConfig(message_rate=1.0, message_burst=2))
    assert not bucket.hold(b"e", 100.0)  # four held already, more than the new burst
    assert bucket.release(1000.0) == [b"a", b"b"]  # a long wait fills two tokens, not five
    assert bucket.held == 2


def test_a_reload_changes_the_flood_limit() -> None:
    bucket = flood(disconnect=0)
    assert not bucket.refused(100.0)  # not counted while off
    bucket.apply(LimitsConfig(flood_disconnect=2))
    assert not bucket.refused(101.0)
    assert bucket.refused(102.0)


def test_clear_drops_held_lines() -> None:
    bucket = flood(burst=1)
    assert bucket.admit(100.0)
    assert bucket.hold(b"a", 100.0)
    bucket.clear()
    assert bucket.held == 0 and bucket.due is None
