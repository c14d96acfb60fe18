"""chatd/core/throttle.py with a fake clock: failures per key within the
window, lockouts that double, checks in flight counted, registrations per hour."""

from __future__ import annotations

from chatd.config_accounts import ThrottleConfig
from chatd.core import throttle
from chatd.core.throttle import Counter, Throttles

CONFIG = ThrottleConfig(address_failures=5, account_failures=10, window_s=300, lockout_s=60, lockout_max_s=3600)


def fail(counter: Counter, key: str, now: float, times: int = 1) -> bool:
    locked = False
    for _ in range(times):
        assert counter.wait(key, now) == 0
        counter.attempt(key, now)
        locked = counter.failed(key, now)
    return locked


def test_the_fifth_failure_locks_out_and_the_sixth_attempt_waits() -> None:
    counter = Counter(5, CONFIG)
    assert not fail(counter, "a", 0.0, 4)
    assert fail(counter, "a", 1.0)
    assert counter.wait("a", 1.0) == 60.0
    assert counter.wait("a", 60.9) > 0
    assert counter.wait("a", 61.0) == 0
    assert counter.wait("b", 1.0) == 0  # another key is not touched


def test_each_further_lockout_doubles_up_to_the_maximum() -> None:
    counter = Counter(1, CONFIG)
    now, durations = 0.0, []
    for _ in range(8):
        fail(counter, "a", now)
        durations.append(counter.wait("a", now))
        now += durations[-1]
    assert durations == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_failures_leave_the_window() -> None:
    counter = Counter(5, CONFIG)
    fail(counter, "a", 0.0, 4)
    assert not fail(counter, "a", 301.0)  # the first four are out of the window
    assert counter.wait("a", 301.0) == 0


def test_checks_in_flight_take_places() -> None:
    """Five checks started at once from one address: a sixth waits, before any has failed."""
    counter = Counter(5, CONFIG)
    for _ in range(5):
        assert counter.wait("a", 0.0) == 0
        counter.attempt("a", 0.0)
    assert counter.wait("a", 0.0) > 0
    counter.succeeded("a", 0.1)  # one was the right password: its place is free again
    assert counter.wait("a", 0.1) == 0


def test_a_lockout_needs_failures_not_successes() -> None:
    counter = Counter(2, CONFIG)
    for _ in range(10):
        counter.attempt("a", 0.0)
        counter.succeeded("a", 0.0)
    assert counter.wait("a", 0.0) == 0


def test_quiet_keys_are_forgotten_and_the_table_is_bounded(monkeypatch: object) -> None:
    counter = Counter(5, CONFIG)
    fail(counter, "old", 0.0)
    counter.attempt("new", 10_000.0)  # the sweep at each attempt drops what no longer counts
    assert len(counter) == 1
    setattr(throttle, "MAX_KEYS", 3)  # noqa: B010
    try:
        for n in range(10):
            fail(counter, f"k{n}", 10_000.0)
        assert len(counter) <= 3
    finally:
        setattr(throttle, "MAX_KEYS", 100_000)  # noqa: B010


def test_address_and_account_together() -> None:
    throttles = Throttles(CONFIG)
    for n in range(10):  # ten addresses, one account
        throttles.attempt(f"10.0.0.{n}", "alice", 0.0)
        throttles.failed(f"10.0.0.{n}", "alice", 0.0)
    assert throttles.wait("10.0.0.99", "alice", 0.0) == 60  # the account is locked
    assert throttles.wait("10.0.0.99", "bob", 0.0) == 0


def test_registrations_per_address_per_hour() -> None:
    throttles = Throttles(ThrottleConfig(registrations_per_address_per_hour=3))
    for n in range(3):
        assert throttles.registration_wait("a", float(n)) == 0
        throttles.registered("a", float(n))
    assert throttles.registration_wait("a", 10.0) == 3590.0
    assert throttles.registration_wait("a", 3600.0) == 0
    assert Throttles(ThrottleConfig(registrations_per_address_per_hour=0)).registration_wait("a", 0) == 0


def test_a_reload_changes_the_limits() -> None:
    throttles = Throttles(CONFIG)
    for _ in range(2):
        throttles.attempt("a", "x", 0.0)
        throttles.failed("a", "x", 0.0)
    throttles.configure(ThrottleConfig(address_failures=3, account_failures=10))
    throttles.attempt("a", "x", 1.0)
    assert throttles.failed("a", "x", 1.0)  # the third failure locks out under the new limit
