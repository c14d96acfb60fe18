"""Lifecycle: an endpoint's phases and deadlines, everything that decides when
a connection moves on or ends (the shape of h11's `_state.py`).

A connection goes HANDSHAKE → OPEN → CLOSING → CLOSED, or straight to CLOSED
from any of them. It has four deadlines:

- the phase's: `handshake_timeout` for the handshake; once a `BYE` is queued,
  BYE_SECONDS for it to leave and for the linger after it (a cap on both);
- the stall: `write_timeout` after the socket last refused output, while it
  still refuses it;
- the linger: LINGER_SECONDS of reading after the FIN that follows the `BYE`;
- the application's: its one `on_timer`, while the connection is open.

`Lifecycle.expired(now)` says which of them has passed and what it calls for
(an `Expiry`); the endpoint (endpoint.py) acts on it, arms its worker's timer
at `next_deadline()`, and tells this object what happened. Nothing here reads
a clock, touches a socket or knows of the endpoint: `now` is passed in, so a
test drives it with plain numbers.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Final

LINGER_SECONDS: Final = 2.0  # after BYE and FIN, how long to drain the peer before closing
BYE_SECONDS: Final = LINGER_SECONDS + 1.0  # how long a queued BYE may take to leave


class Phase(Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"  # BYE queued; flushing, then lingering
    CLOSED = "closed"


class Expiry(Enum):
    """What a deadline that has passed calls for."""

    HANDSHAKE = "handshake"  # the handshake took too long: it failed ("timeout")
    BYE = "bye"  # the BYE did not leave in time: close now
    STALL = "stall"  # the socket took nothing for write_timeout: close (`write_timeout`)
    LINGER = "linger"  # the peer has been drained long enough: close
    APP = "app"  # the application's deadline: its `on_timer`


class Lifecycle:
    """One connection's phase, why it is closing, and its deadlines (monotonic seconds)."""

    __slots__ = ("_app", "_linger", "_phase_deadline", "_stall", "phase", "reason")

    def __init__(self, now: float, handshake_timeout: float) -> None:
        self.phase = Phase.HANDSHAKE
        self.reason = ""  # why the connection is closing, once it is
        self._phase_deadline: float | None = now + handshake_timeout
        self._stall: float | None = None
        self._app: float | None = None
        self._linger: float | None = None

    # -- transitions ----------------------------------------------------------------

    def opened(self) -> None:
        """The handshake is done: its deadline goes."""
        self.phase = Phase.OPEN
        self._phase_deadline = None

    def closing(self, reason: str, now: float) -> None:
        """The `BYE` is queued: it has BYE_SECONDS to leave, linger included."""
        self.phase = Phase.CLOSING
        self.reason = reason
        self._linger = None
        self._phase_deadline = now + BYE_SECONDS

    def lingering(self, now: float) -> None:
        """The `BYE` and the FIN after it have left: drain the peer for LINGER_SECONDS."""
        self._linger = now + LINGER_SECONDS

    def closed(self, reason: str) -> str:
        """The connection is gone; returns why: the reason it was closing for, if
        it was, else `reason`."""
        self.phase = Phase.CLOSED
        self.reason = self.reason or reason
        self._phase_deadline = self._stall = self._app = self._linger = None
        return self.reason

    def awaits_linger(self) -> bool:
        """Whether all is written after a `BYE` and the linger has not begun."""
        return self.phase is Phase.CLOSING and self._linger is None

    # -- the other deadlines ------------------------------------------------------------

    def write_refused(self, now: float, write_timeout: float) -> bool:
        """The socket refused output; True if that starts the stall deadline
        (which runs from the first refusal, not the last)."""
        if self._stall is not None:
            return False
        self._stall = now + write_timeout
        return True

    def written(self) -> None:
        """The socket took everything: no stall."""
        self._stall = None

    def set_app_deadline(self, when: float | None) -> None:
        self._app = when

    # -- the clock --------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """The earliest deadline; `math.inf` if there is none."""
        earliest = math.inf
        for when in (self._phase_deadline, self._stall, self._app, self._linger):
            if when is not None and when < earliest:
                earliest = when
        return earliest

    def expired(self, now: float) -> Expiry | None:
        """The deadline that has passed by `now` and what it calls for, the
        most final first; None if none has (or none that matters in this phase).

        A passed phase or application deadline is spent here; the stall and
        the linger stay, since the connection ends on them.
        """
        if self._phase_deadline is not None and now >= self._phase_deadline:
            self._phase_deadline = None
            if self.phase is Phase.HANDSHAKE:
                return Expiry.HANDSHAKE
            if self.phase is Phase.CLOSING:
                return Expiry.BYE
        if self._stall is not None and now >= self._stall:
            return Expiry.STALL
        if self._linger is not None and now >= self._linger:
            return Expiry.LINGER
        if self._app is not None and now >= self._app:
            self._app = None
            if self.phase is Phase.OPEN:
                return Expiry.APP
        return None
