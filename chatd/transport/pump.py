"""The pump: one endpoint's bytes, from the TLS handshake's to the FIN after
its `BYE`: each step of the handshake as readiness comes (and its failure),
what a turn reads and hands to the codec, what it writes from the send
queue, what the worker watches the socket for, and what a socket that will
not take the output leads to (docs/architecture.md, "The life of a
connection" and "Fan-out without stalls").

It acts on what the endpoint's two flow-control parts answer: its `Intake`
(intake.py: how much a turn reads, and when the client is not read at all)
and its `SendQueue` (sendqueue.py: what waits, coalesced into TLS-record
writes, and whether the client is a slow consumer). A socket that refuses
output starts the stall deadline (`write_timeout`); one that has taken the
`BYE` gets the FIN after it and the linger begins (lifecycle.py keeps both
deadlines); a client that will not take its data is closed as a
`slow_consumer`.

Functions of the endpoint (endpoint.py), which passes itself on every call:
the pump keeps nothing of its own, so that an idle client costs no object
for it (docs/architecture.md, "Memory per connection"); what it acts on is
the endpoint's (`Pumped`). What is not here: what opening the connection
means (its codec, chosen by ALPN), closing it and the deadlines' other
consequences, and what the codec and session may ask of the endpoint (all
the endpoint's); what the bytes mean (the codec's).

# NOTE: `write` is on the fan-out path: the worker calls the endpoint's
# `flush`, which takes the queue and calls `write` once; keep it so, one
# call per flush.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Final, Protocol

import structlog

from chatd.config import LimitsConfig
from chatd.transport.codec import Codec
from chatd.transport.intake import Intake
from chatd.transport.iostats import IOStats
from chatd.transport.lifecycle import Lifecycle, Phase
from chatd.transport.sendqueue import SendQueue
from chatd.transport.tlsstream import TLSStream, describe_error
from chatd.transport.worker import Connection

log = structlog.get_logger(__name__)

# Plaintext read from one connection per turn, then the others have the thread:
# at most this, and at most an eighth of send_queue_bytes, so that what one
# sender's turn puts in everyone's queue stays small beside the queue's limit.
READ_BUDGET: Final = 65536


class Watcher(Protocol):
    """What the pump asks of the endpoint's worker (chatd.transport.worker.Worker)."""

    @property
    def stats(self) -> IOStats:
        """The worker's counters, written on its thread only."""

    def set_interest(self, conn: Connection, read: bool, write: bool) -> None: ...
    def mark_readable(self, conn: Connection) -> None: ...
    def arm_timer(self, conn: Connection, when: float) -> None: ...


class PumpHost(Protocol):
    """What the pump asks of the server: the limits (they change on reload),
    and a failed handshake counted."""

    @property
    def limits(self) -> LimitsConfig: ...

    def note_handshake_failure(self) -> None: ...


class Pumped(Connection, Protocol):
    """The endpoint, as its pump sees it (chatd.transport.endpoint.Endpoint)."""

    codec: Codec
    context: dict[str, object]  # for the logs
    drained_wanted: bool  # call `codec.drained()` once the queue is empty

    @property
    def tls(self) -> TLSStream: ...
    @property
    def send_queue(self) -> SendQueue[Any]: ...
    @property
    def intake(self) -> Intake: ...
    @property
    def life(self) -> Lifecycle: ...
    @property
    def worker(self) -> Watcher: ...
    @property
    def host(self) -> PumpHost: ...


# -- the TLS handshake ------------------------------------------------------------


def handshake(conn: Pumped) -> bool:
    """A step of the TLS handshake; True once it is done (then the endpoint
    opens the connection), False while it goes on or once it has failed
    (then the connection is closed)."""
    return handshake_input(conn) and handshake_answered(conn, conn.tls.handshake_call())


def handshake_input(conn: Pumped) -> bool:
    """The first part of a step whose OpenSSL part is handed over
    (`TLSStream.handshake_call`): True once OpenSSL has input to answer;
    False while it waits for the peer, or once it has failed."""
    try:
        conn.tls.handshake_input()
    except ssl.SSLWantReadError:
        _wait_for_peer(conn)
        return False
    except (ssl.SSLError, OSError) as exc:
        handshake_failed(conn, describe_error(exc))
        return False
    return True


def handshake_answered(conn: Pumped, error: ssl.SSLError | None) -> bool:
    """The rest of a step whose OpenSSL part returned `error`; as `handshake`."""
    try:
        error = conn.tls.handshake_continue(error)
    except (ssl.SSLError, OSError) as exc:
        handshake_failed(conn, describe_error(exc))
        return False
    return _stepped(conn, error)


def _stepped(conn: Pumped, error: ssl.SSLError | None) -> bool:
    if isinstance(error, ssl.SSLWantReadError):
        _wait_for_peer(conn)
        return False
    if error is not None:
        handshake_failed(conn, describe_error(error))
        return False
    tls = conn.tls
    cipher = tls.cipher()
    log.info("connect", **conn.context, tls_version=tls.version(), cipher=cipher[0] if cipher else None)
    return True


def _wait_for_peer(conn: Pumped) -> None:
    conn.worker.set_interest(conn, read=True, write=conn.tls.pending_out > 0)


def handshake_failed(conn: Pumped, error: str) -> None:
    """The handshake failed (or took too long): logged, counted, and the
    connection closed without a word."""
    log.info("tls_handshake_failed", **conn.context, error=error)
    conn.host.note_handshake_failure()
    conn.finish("tls_handshake_failed", error, quiet=True)


# -- reading ----------------------------------------------------------------------


def read(conn: Pumped) -> None:
    """Take what has arrived, up to the read budget, and hand it to the codec
    in one piece: people send one line per TLS record, and lines read
    together leave together (one block per room, not per line)."""
    intake = conn.intake
    if intake.paused:
        return
    received = intake.read(conn.tls, min(READ_BUDGET, conn.host.limits.send_queue_bytes // 8))
    if received is None:
        watch(conn)  # paused
        return
    data, ended, more = received
    if more:
        conn.worker.mark_readable(conn)  # the budget ran out; come back next turn
    if data:
        conn.worker.stats.bytes_in += len(data)
        if conn.life.phase is Phase.OPEN:
            conn.codec.on_data(data)
    if ended:
        conn.finish("connection_lost", ended)


def backlog_taken(conn: Pumped) -> None:
    """The recipient this client waited for was taken: read it again."""
    conn.intake.waiting = False
    resume(conn)


def release(conn: Pumped) -> None:
    """Read again what the codec held back (`Intake.held`)."""
    conn.intake.held = False
    resume(conn)


def resume(conn: Pumped) -> None:
    """Read again, if reading was paused and nothing holds it back now."""
    if conn.life.phase is not Phase.CLOSED and conn.intake.resume():
        watch(conn)
        conn.worker.mark_readable(conn)


def watch(conn: Pumped) -> None:
    """Watch readability unless input is paused, writability while the socket
    holds back our ciphertext."""
    if conn.life.phase in (Phase.HANDSHAKE, Phase.CLOSED):
        return
    conn.worker.set_interest(conn, read=not conn.intake.paused, write=conn.send_queue.refused)


# -- writing ----------------------------------------------------------------------


def write(conn: Pumped) -> None:
    """Hand what was taken from the queue to TLS and the socket, as far as it
    takes it, and act on how far that was."""
    queue = conn.send_queue
    life = conn.life
    was_refused = queue.refused
    try:
        written = queue.write(conn.tls, conn.codec.cut)
    except OSError as exc:  # ssl.SSLError included
        conn.finish("connection_lost", describe_error(exc))
        return
    if not written:
        watch(conn)  # watch for writability
        if life.write_refused(time.monotonic(), conn.host.limits.write_timeout):
            conn.worker.arm_timer(conn, life.next_deadline())
        return
    life.written()
    if was_refused:
        watch(conn)
    resume(conn)
    if life.awaits_linger():
        _start_linger(conn)
    elif conn.drained_wanted and queue.queued == 0 and life.phase is Phase.OPEN:
        # NOTE: last, for the codec may queue more or begin closing here.
        conn.drained_wanted = False
        conn.codec.drained()


def pending(conn: Pumped) -> bool:
    """Whether bytes queued for this client have not all gone to the socket yet."""
    return conn.send_queue.queued > 0 or conn.tls.pending_out > 0


def overflowed(conn: Pumped) -> None:
    """The client does not take its data (`SendQueue.slow_consumer`): close it."""
    queue = conn.send_queue
    log.info("slow_consumer", **conn.context, nick=conn.codec.app.nick, queued=queue.queued)
    conn.worker.stats.slow_consumers += 1
    # What is queued goes, but a line already half handed to TLS is
    # finished, so that the BYE starts a line of its own.
    queue.drop(conn.codec.rest_of_unit)
    conn.begin_close("slow_consumer")


def _start_linger(conn: Pumped) -> None:
    life = conn.life
    try:
        conn.tls.shutdown_write()  # FIN after the BYE; reading goes on, to drain the peer
    except OSError:
        conn.finish(life.reason)
        return
    life.lingering(time.monotonic())
    conn.worker.arm_timer(conn, life.next_deadline())
