"""Backoff: how long to wait before reconnecting to Redis, as a value.

Doubling from `first` to `cap`, each delay spread by ±25% so that the nodes
of a cluster do not all reconnect in the same instant after a Redis restart.
The random source is passed in, so tests get fixed delays.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, first: float = 0.05, cap: float = 2.0, rng: random.Random | None = None) -> None:
        self._first = first
        self._cap = cap
        self._rng = rng or random.Random()
        self._failures = 0

    def next(self) -> float:
        """The delay before the next attempt, after one more failure."""
        delay = min(self._cap, self._first * 2.0 ** min(self._failures, 30))
        self._failures += 1
        return delay * self._rng.uniform(0.75, 1.25)

    def reset(self) -> None:
        """A success: the next failure waits `first` again."""
        self._failures = 0
