"""Flood control for one client: the token bucket, the lines it holds back,
and the window of refusals that ends a flood.

docs/protocol.md ("Flow control") is the contract. Each line after
registration takes a token from a bucket of `limits.message_burst` tokens
that refills at `limits.message_rate` per second (0: no limit). A line that
finds the bucket empty is held, and released in order as tokens come, while
at most `message_burst` lines are held; beyond that it is refused
(`ERR rate_limited`), and `limits.flood_disconnect` refusals within
`FLOOD_WINDOW` seconds end the connection (`BYE flood`). What a WebSocket
sends besides lines (pings, pongs, fragments) takes from the same bucket
(`charge`).

What is here: the policy as a value, with the clock passed in (`now`,
monotonic seconds), so that tests drive it with a fake one, in the manner of
Ergo's irc/fakelag.go. What is not: reading a clock, answering the client,
handling a released line, arming the timer that releases held lines, closing
the connection (all the session's: core/dispatch.py asks here for it).
One per session, used on its transport's thread only: not thread-safe.
"""

from __future__ import annotations

import collections
from typing import Final

from chatd.config import LimitsConfig
from chatd.outlet import Command

FLOOD_WINDOW: Final = 30.0  # seconds in which `flood_disconnect` refusals end a connection

# What a transport hands over: a line, None for one that was too long, or (from
# a transport with a grammar of its own, IRC) a `Command` already read.
Line = bytes | Command | None


class FloodControl:
    """One client's bucket, held lines and recent refusals.

    Memory: one of these per client, so the held lines wait in a deque made
    when the first is held and dropped when none is (an empty deque is 760
    bytes), and the refusals in a list made at the first
    (docs/architecture.md, "Memory per connection").
    """

    __slots__ = ("_burst", "_disconnect", "_held", "_rate", "_refusals", "_tokens", "_tokens_at", "due")

    def __init__(self, limits: LimitsConfig, now: float) -> None:
        self._rate = limits.message_rate
        self._burst = limits.message_burst
        self._disconnect = limits.flood_disconnect
        self._tokens = float(limits.message_burst)
        self._tokens_at = now
        self._held: collections.deque[Line] | None = None
        self._refusals: list[float] | None = None  # at most `flood_disconnect` of them
        self.due: float | None = None  # when the first held line's token comes; None: none held

    @property
    def held(self) -> int:
        return len(self._held) if self._held else 0

    def admit(self, now: float) -> bool:
        """A line may be handled now: none is held before it and it got a token."""
        return not self._held and self.charge(1, now)

    def charge(self, count: int, now: float) -> bool:
        """Take `count` tokens if the bucket has them (always, with no rate)."""
        rate = self._rate
        if rate <= 0:
            return True
        self._tokens = min(float(self._burst), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens >= count:
            self._tokens -= count
            return True
        return False

    def hold(self, line: Line, now: float) -> bool:
        """Keep a line that found no token, to go when one comes (`due`); False
        (the line is to be refused) when `message_burst` lines wait already."""
        if self._held is None:
            self._held = collections.deque()
        if len(self._held) >= self._burst:
            return False
        self._held.append(line)
        if self.due is None:
            self.due = self._next_token_at(now)
        return True

    def release(self, now: float) -> list[Line]:
        """The held lines whose tokens have come by `now`, oldest first; `due`
        becomes the time the next one's comes."""
        released = []
        held = self._held
        while held and self.charge(1, now):
            released.append(held.popleft())
        if held:
            self.due = self._next_token_at(now)
        else:
            self._held = self.due = None
        return released

    def refused(self, now: float) -> bool:
        """Count a line or frame refused at `now`; True when it makes
        `flood_disconnect` within `FLOOD_WINDOW` (0: never)."""
        if not self._disconnect:
            return False
        refusals = self._refusals
        if refusals is None:
            refusals = self._refusals = []
        refusals.append(now)
        while now - refusals[0] > FLOOD_WINDOW:
            del refusals[0]  # never the one just added
        return len(refusals) >= self._disconnect

    def apply(self, limits: LimitsConfig) -> None:
        """A reload: the new rate, burst and flood limit from now on. Held lines
        stay, and go by the new rate once `release` is asked again; the tokens
        are capped at the new burst as they are next counted."""
        self._rate = limits.message_rate
        self._burst = limits.message_burst
        self._disconnect = limits.flood_disconnect

    def clear(self) -> None:
        """The connection is ending: drop the held lines."""
        self._held = self.due = None

    def _next_token_at(self, now: float) -> float:
        rate = self._rate or 1.0  # 0 after a reload: the next `release` lets everything go
        return now + max(0.0, 1.0 - self._tokens) / rate
