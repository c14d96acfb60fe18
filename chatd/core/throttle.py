"""Login throttles: failed password checks per address and per account, and
registrations per address, as values with the clock passed in (`now`,
monotonic seconds), in the manner of Ergo's irc/connection_limits/.

A key (an address's source, or an account) that reaches its limit of
failures within the window is locked out for `lockout_s`; each further
lockout of the same key doubles it, up to `lockout_max_s`; the doubling is
forgotten once the key has been quiet for `lockout_max_s` after its last
lockout ended. Checks in flight count: `attempt` before the hash, then
`failed` or `succeeded` when it is known, so that many attempts at once from
one address are limited as if they came one after the other (a sixth check
that starts while five are running is refused as the sixth failure would be).

The session asks (`Throttles.wait`) before it queues a password check: a
throttled attempt is answered at once and costs no hash. A token (`/resume`)
is never throttled, so an attacker who locks an account out does not lock
its owner out.

Memory: a key is kept while it counts (failures in the window, a lockout, a
doubling to remember, a check in flight); the table is swept from its least
recently touched end at each attempt, and holds at most `MAX_KEYS` (the
least recently touched go first), so a flood from many addresses is bounded.
Not thread-safe: `Accounts` (core/accounts.py) calls it under its lock.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Final

from chatd.config_accounts import ThrottleConfig

MAX_KEYS: Final = 100_000  # per table
HOUR: Final = 3600.0


@dataclass(slots=True)
class _Key:
    failures: collections.deque[float] = field(default_factory=collections.deque)
    pending: int = 0  # checks started and not yet known
    locked_until: float = 0.0
    level: int = 0  # lockouts so far: the next lasts lockout_s * 2**level
    forget_at: float = 0.0


class Counter:
    """Failures of one kind of key (addresses, or accounts) and their lockouts."""

    def __init__(self, limit: int, config: ThrottleConfig) -> None:
        self.limit = limit
        self.config = config
        self._keys: collections.OrderedDict[str, _Key] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0: now)."""
        state = self._keys.get(key)
        if state is None:
            return 0.0
        if state.locked_until > now:
            return state.locked_until - now
        self._expire(state, now)
        if len(state.failures) + state.pending >= self.limit:
            # Full with checks in flight: the earliest failure to leave the window frees a place.
            return max(0.001, state.failures[0] + self.config.window_s - now) if state.failures else 1.0
        return 0.0

    def attempt(self, key: str, now: float) -> None:
        self._sweep(now)
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key()
        self._keys.move_to_end(key)
        state.pending += 1

    def failed(self, key: str, now: float) -> bool:
        """A check of `key` failed; True if that locked it out."""
        state = self._finished(key)
        if state is None:
            return False
        self._expire(state, now)
        state.failures.append(now)
        locked = len(state.failures) >= self.limit
        if locked:
            duration = min(self.config.lockout_max_s, self.config.lockout_s * 2**state.level)
            state.level += 1
            state.locked_until = now + duration
            state.failures.clear()
        state.forget_at = max(now + self.config.window_s, state.locked_until) + (
            self.config.lockout_max_s if state.level else 0.0
        )
        return locked

    def succeeded(self, key: str, now: float) -> None:
        """A check of `key` succeeded: it leaves its place (failures stay counted)."""
        self._finished(key)

    def _finished(self, key: str) -> _Key | None:
        state = self._keys.get(key)
        if state is not None and state.pending:
            state.pending -= 1
        return state

    def _expire(self, state: _Key, now: float) -> None:
        window = self.config.window_s
        while state.failures and state.failures[0] <= now - window:
            state.failures.popleft()

    def _sweep(self, now: float) -> None:
        keys = self._keys
        while keys:
            key, state = next(iter(keys.items()))
            if len(keys) < MAX_KEYS and (state.pending or state.forget_at > now):
                break
            del keys[key]


class Throttles:
    """The three throttles a sign-in asks: failures per address source and per
    account, and open registrations per address source."""

    def __init__(self, config: ThrottleConfig) -> None:
        self.addresses = Counter(config.address_failures, config)
        self.accounts = Counter(config.account_failures, config)
        self._registrations: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self.config = config

    def configure(self, config: ThrottleConfig) -> None:
        """A reload: new limits from the next check on; what is counted stays."""
        self.config = self.addresses.config = self.accounts.config = config
        self.addresses.limit = config.address_failures
        self.accounts.limit = config.account_failures

    def wait(self, source: str, account: str, now: float) -> float:
        """Seconds until a password check for `account` from `source` may run (0: now)."""
        return max(self.addresses.wait(source, now), self.accounts.wait(account, now))

    def attempt(self, source: str, account: str, now: float) -> None:
        self.addresses.attempt(source, now)
        self.accounts.attempt(account, now)

    def failed(self, source: str, account: str, now: float) -> bool:
        """True if this failure locked the address or the account out."""
        by_address = self.addresses.failed(source, now)
        return self.accounts.failed(account, now) or by_address

    def succeeded(self, source: str, account: str, now: float) -> None:
        self.addresses.succeeded(source, now)
        self.accounts.succeeded(account, now)

    def registration_wait(self, source: str, now: float) -> float:
        """Seconds until `source` may register another account (0: now)."""
        limit = self.config.registrations_per_address_per_hour
        times = self._registrations.get(source)
        if not limit or times is None:
            return 0.0
        while times and times[0] <= now - HOUR:
            times.popleft()
        return max(0.001, times[0] + HOUR - now) if len(times) >= limit else 0.0

    def registered(self, source: str, now: float) -> None:
        """`source` started a registration (counted whether or not it succeeds)."""
        table = self._registrations
        while table:
            oldest = next(iter(table.values()))
            if len(table) < MAX_KEYS and oldest and oldest[-1] > now - HOUR:
                break
            table.popitem(last=False)
        times = table.setdefault(source, collections.deque())
        table.move_to_end(source)
        times.append(now)
