"""The registry of connections: every live endpoint by id, the admission
slots they hold (chatd/admission.py decides; this keeps the books under one
lock), the counters of rare events (accepted, refused by reason, rejected,
handshake failures, the totals of closed connections) and the signal that the
last connection of a stopping server has gone.

What does not live here: listening and accepting (chatd/listeners.py), which
worker serves a socket and the stop sequence (chatd/server.py), what the
figures mean and how they are added up (chatd/stats.py).

Every method may be called from any thread: the `chatd-io-N` workers register
and release, the control and metrics threads read.
"""

from __future__ import annotations

import collections
import itertools
import threading
from typing import Final

from chatd.admission import Admission
from chatd.config import LimitsConfig
from chatd.core.bans import covers
from chatd.stats import Tally
from chatd.transport.endpoint import Endpoint

MAX_PENDING_REJECTS: Final = 256  # rejected clients still being told why; beyond this, just close


class Connections:
    """Live connections, admission slots and the counters of rare events."""

    def __init__(self, limits: LimitsConfig) -> None:
        self._lock = threading.Lock()
        self._connections: dict[int, Endpoint] = {}
        self._admission = Admission(limits)  # under _lock
        self._rejecting = 0
        self._ids = itertools.count(1)
        self._totals = {"messages_in": 0, "messages_out": 0, "rate_limited": 0}
        self._handshake_failures = 0
        self._rejected = 0
        self._accepted = 0  # admitted; refused ones by reason in _refused
        self._refused: collections.Counter[str] = collections.Counter()
        self._stopping = False
        self._all_closed = threading.Event()

    def __len__(self) -> int:
        return len(self._connections)

    def admit(self, ip: str, now: float, refusal: str | None) -> tuple[int, str | None, bool]:
        """A new connection from `ip`: its id, why it is refused (None: served;
        `refusal` if given, else the admission policy's answer) and whether it
        is told why (False: too many are being told already, just close it)."""
        told = True
        with self._lock:
            reject = refusal if refusal is not None else self._admission.admit(ip, now)
            if reject is None:
                self._accepted += 1
            elif self._rejecting >= MAX_PENDING_REJECTS:
                self._rejected += 1
                told = False
            else:
                self._rejecting += 1
            if reject is not None:
                self._refused[reject] += 1
            conn_id = next(self._ids)
        return conn_id, reject, told

    def add(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._connections[endpoint.id] = endpoint

    def remove(self, endpoint: Endpoint) -> None:
        """`endpoint` has closed: its counts go into the totals, its slot back."""
        with self._lock:
            self._connections.pop(endpoint.id, None)
            self._totals["messages_in"] += endpoint.app.messages_in
            self._totals["messages_out"] += endpoint.messages_out
            self._totals["rate_limited"] += endpoint.app.rate_limited
        self.release(endpoint.ip, endpoint.reject)

    def release(self, ip: str, reject: str | None) -> None:
        """Give back the admission slot taken in `admit`."""
        with self._lock:
            if reject is not None:
                self._rejecting -= 1
            else:
                self._admission.release(ip)
            if self._stopping and not self._connections and not self._admission.admitted:
                self._all_closed.set()

    def apply(self, limits: LimitsConfig) -> None:
        """A reload's limits, for admission from now on."""
        with self._lock:
            self._admission.apply(limits)

    def note_handshake_failure(self) -> None:
        with self._lock:
            self._handshake_failures += 1

    def note_rejected(self) -> None:
        with self._lock:
            self._rejected += 1

    # -- stopping ---------------------------------------------------------------------

    def begin_stop(self) -> None:
        """From now on, the last release says that all have closed."""
        with self._lock:
            self._stopping = True

    def wait_closed(self, grace: float) -> None:
        """Wait until every connection has gone and every slot is back, at most `grace` seconds."""
        with self._lock:
            if not self._connections and not self._admission.admitted:
                self._all_closed.set()
        self._all_closed.wait(grace)

    # -- views ------------------------------------------------------------------------

    def live(self) -> list[Endpoint]:
        with self._lock:
            return list(self._connections.values())

    def tally(self, reloads: dict[str, int]) -> tuple[Tally, list[Endpoint]]:
        """The counters and the live connections, read together."""
        with self._lock:
            live = list(self._connections.values())
            tally = Tally(
                accepted=self._accepted,
                refused=dict(self._refused),
                handshake_failures=self._handshake_failures,
                rejected=self._rejected,
                reloads=reloads,
                closed=dict(self._totals),
            )
        return tally, live

    def close_from(self, network: str, reason: str, text: str) -> int:
        """Close every connection from an address in `network` (a new ban):
        `BYE <reason> <text>`; returns how many."""
        matching = [endpoint for endpoint in self.live() if covers(network, endpoint.ip)]
        for endpoint in matching:
            endpoint.close(reason, text)
        return len(matching)
