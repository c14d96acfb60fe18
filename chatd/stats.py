"""Stats: the daemon's figures at one moment, for `/metrics` and `chatctl status`.

Nothing here counts anything on the message path. The counters live where
their events happen, each written by one thread: the I/O workers' `IOStats`
(lines, bytes, slow consumers, disconnects), each session's and endpoint's
own (chat messages, rate-limited lines, lines queued for a client), and the
server's for rare events under the lock it already takes for them (accepts,
refusals, handshake failures, reloads). `take_snapshot` reads them all when
asked, once per scrape or `chatctl status`, and adds what it finds by
walking the live connections (clients by state, send queues).

No metrics library is imported here: chatd/metrics.py turns a `Snapshot`
into Prometheus metrics, and chatd/operations.py into `chatctl status`, every
figure of which comes from one `Snapshot` (`headline` is the newer half).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from chatd.core import protocol
from chatd.core.chat import Chat
from chatd.transport.endpoint import Endpoint
from chatd.transport.lifecycle import Phase
from chatd.transport.worker import Worker

# The reasons a connection ends (the `disconnect` event's `reason`): the reason
# codes of docs/protocol.md, and those that never reach the client in a BYE.
# Listed so that each series exists from the start, at 0; a reason not listed
# here is still counted under its own name.
DISCONNECT_REASONS = (
    "quit",
    "shutdown",
    "kicked",
    "connection_lost",
    "slow_consumer",
    "write_timeout",
    "flood",
    "too_many_errors",
    "register_timeout",
    "nick_failed",
    protocol.SERVER_FULL,
    protocol.TOO_MANY_CONNECTIONS,
    protocol.THROTTLED,
    protocol.BANNED,
    "replaced",
    "logout",
    "tls_handshake_failed",
    "internal_error",
)
REFUSE_REASONS = (protocol.SERVER_FULL, protocol.TOO_MANY_CONNECTIONS, protocol.THROTTLED, protocol.BANNED)
RELOAD_RESULTS = ("success", "failure")
CLIENT_STATES = ("handshaking", "registering", "registered", "closing")


class StatsSource(Protocol):
    """A component with figures of its own (the history store): `stats()` maps
    snake_case names to numbers, read at each scrape on the metrics thread.

    Each name becomes `chatd_<source>_<name>` (see chatd/metrics.py): a name
    ending in `_total` is a counter and must never go down; any other is a
    gauge. Units go in the name (`_seconds`, `_bytes`). `stats()` must be
    cheap and must not block: it runs while a scrape waits.
    """

    def stats(self) -> Mapping[str, float]: ...


class Counting(Protocol):
    """What StoreStats reads: the history store (`EventStore.stats()`)."""

    def stats(self) -> Mapping[str, float]: ...


class StoreStats:
    """The history store's counters under metric names: its `written`,
    `write_failures`, `dropped` and `waiting` become
    `chatd_history_rows_written_total`, `..._write_failures_total`,
    `..._dropped_total` and `..._waiting_events`. Register it as
    `server.stats_sources["history"] = StoreStats(store)`.

    A store key for the age of its oldest waiting event
    (`oldest_waiting_seconds`) would become `..._write_lag_seconds`, which the
    dashboard already shows.
    """

    NAMES: ClassVar[Mapping[str, str]] = {
        "written": "rows_written_total",
        "write_failures": "write_failures_total",
        "dropped": "dropped_total",
        "waiting": "waiting_events",
        "oldest_waiting_seconds": "write_lag_seconds",
    }

    def __init__(self, store: Counting) -> None:
        self._store = store

    def stats(self) -> dict[str, float]:
        figures = self._store.stats()
        return {name: figures[key] for key, name in self.NAMES.items() if key in figures}


@dataclass(frozen=True)
class Tally:
    """The server's own counters, copied under its lock."""

    accepted: int = 0  # connections that passed admission
    refused: Mapping[str, int] = field(default_factory=dict)  # by ERR code
    handshake_failures: int = 0
    rejected: int = 0  # refused clients told so after their handshake, or closed untold
    reloads: Mapping[str, int] = field(default_factory=dict)  # success, failure
    closed: Mapping[str, int] = field(default_factory=dict)  # messages_in/out, rate_limited of gone clients


@dataclass(frozen=True)
class AccountFigures:
    """The accounts' figures (chatd/account_service.py reads them)."""

    logins: Mapping[tuple[str, str], int]  # (method, result) -> sign-ins
    throttled: int  # sign-ins refused by a throttle
    hashes: int  # password hashes computed
    hash_seconds: float  # CPU time they took
    queue_waiting: int  # password checks queued, not started
    queue_running: int
    accounts: int  # not deleted
    disabled: int
    tokens: int


@dataclass(frozen=True)
class WorkerFigures:
    name: str
    running: bool
    lag_seconds: float


@dataclass(frozen=True)
class Snapshot:
    clients: Mapping[str, int]  # by CLIENT_STATES
    accepted: int
    refused: Mapping[str, int]
    disconnects: Mapping[str, int]
    tls_handshake_failures: int
    lines_received: int
    lines_delivered: int  # queued for a client, one per recipient
    bytes_received: int
    bytes_sent: int
    messages_in: int  # chat messages (MSG, ACTION, DM) clients sent
    rate_limited_lines: int
    slow_consumers: int
    rooms: int
    room_members: int
    send_queue_bytes: int
    send_queue_largest_bytes: int
    workers: Sequence[WorkerFigures]
    reloads: Mapping[str, int]
    cert_expiry: float | None  # the server certificate's notAfter, Unix time
    sources: Mapping[str, Mapping[str, float]]
    # For `chatctl status` (not exported as metrics: the series above cover them).
    connections: int = 0  # live connections, in any state
    nicks: int = 0  # registered nicknames
    rejected: int = 0
    accounts: AccountFigures | None = None  # None: accounts are off


def take_snapshot(
    tally: Tally,
    live: Sequence[Endpoint],
    workers: Sequence[Worker],
    chat: Chat,
    cert_expiry: float | None,
    sources: Mapping[str, StatsSource],
    accounts: AccountFigures | None = None,
) -> Snapshot:
    """Read every counter once, taking no lock (the caller copied `live` and
    `tally` under the server's). Called on the metrics or the control thread."""
    clients = dict.fromkeys(CLIENT_STATES, 0)
    messages_in = messages_out = rate_limited = queued_total = queued_max = 0
    for conn in live:
        state = conn.state
        if state is Phase.HANDSHAKE:
            clients["handshaking"] += 1
        elif state is Phase.OPEN:
            clients["registered" if conn.app.nick else "registering"] += 1
        elif state is Phase.CLOSING:
            clients["closing"] += 1
        app = conn.app
        messages_in += app.messages_in
        rate_limited += app.rate_limited
        messages_out += conn.messages_out
        queued = conn.queued
        queued_total += queued
        queued_max = max(queued_max, queued)
    disconnects = dict.fromkeys(DISCONNECT_REASONS, 0)
    lines_in = bytes_in = bytes_out = slow = 0
    now = time.monotonic()
    figures = []
    for worker in workers:
        io = worker.stats
        lines_in += io.lines_in
        bytes_in += io.bytes_in
        bytes_out += io.bytes_out
        slow += io.slow_consumers
        for reason, count in dict(io.disconnects).items():  # dict(): one C-level copy
            disconnects[reason] = disconnects.get(reason, 0) + count
        figures.append(WorkerFigures(worker.name, worker.running, worker.loop_lag(now)))
    rooms = chat.rooms.all()
    return Snapshot(
        clients=clients,
        accepted=tally.accepted,
        refused={**dict.fromkeys(REFUSE_REASONS, 0), **tally.refused},
        disconnects=disconnects,
        tls_handshake_failures=tally.handshake_failures,
        lines_received=lines_in,
        lines_delivered=tally.closed.get("messages_out", 0) + messages_out,
        bytes_received=bytes_in,
        bytes_sent=bytes_out,
        messages_in=tally.closed.get("messages_in", 0) + messages_in,
        rate_limited_lines=tally.closed.get("rate_limited", 0) + rate_limited,
        slow_consumers=slow,
        rooms=len(rooms),
        room_members=sum(len(room) for room in rooms),
        send_queue_bytes=queued_total,
        send_queue_largest_bytes=queued_max,
        workers=tuple(figures),
        reloads={**dict.fromkeys(RELOAD_RESULTS, 0), **tally.reloads},
        cert_expiry=cert_expiry,
        sources={name: dict(source.stats()) for name, source in sources.items()},
        connections=len(live),
        nicks=len(chat.nicks),
        rejected=tally.rejected,
        accounts=accounts,
    )


def headline(snapshot: Snapshot) -> dict[str, object]:
    """The figures `chatctl status` adds to its older fields (which it keeps).
    A source's figures are not repeated here: the component reports its own
    to status (the history store does, as `history`)."""
    fields: dict[str, object] = {
        "handshaking": snapshot.clients["handshaking"],
        "registering": snapshot.clients["registering"],
        "room_members": snapshot.room_members,
        "connections_accepted": snapshot.accepted,
        "connections_refused": _nonzero(snapshot.refused),
        "disconnects": _nonzero(snapshot.disconnects),
        "lines_received": snapshot.lines_received,
        "bytes_received": snapshot.bytes_received,
        "bytes_sent": snapshot.bytes_sent,
        "rate_limited": snapshot.rate_limited_lines,
        "slow_consumers": snapshot.slow_consumers,
        "send_queue_bytes": snapshot.send_queue_bytes,
        "send_queue_largest_bytes": snapshot.send_queue_largest_bytes,
        "loop_lag_ms": {w.name: round(w.lag_seconds * 1000, 1) for w in snapshot.workers},
        "reloads": dict(snapshot.reloads),
        "cert_expires": _iso(snapshot.cert_expiry),
    }
    return fields


def _nonzero(counts: Mapping[str, int]) -> dict[str, int]:
    return {key: value for key, value in counts.items() if value}


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")
