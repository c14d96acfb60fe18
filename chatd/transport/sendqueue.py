"""SendQueue: what waits to be sent to one client, from `deliver` on any thread
to its TLS stream on its worker's: the queue and its byte counts, coalescing
into TLS-record-sized writes, the senders paused behind it (backpressure),
and the slow-consumer rule (docs/architecture.md, "Fan-out without stalls").

An endpoint (endpoint.py) has one. The queue sees nothing of it: it is given
its worker, to have it flush the owner this turn (`Scheduler.mark_dirty`,
handed the owner back: a bound method or a `functools.partial` per client
cost 65 and 275 bytes), the limits to read, the worker's counters, and, at
each write, the stream and where a unit (a line, a frame) may be cut. What the endpoint does about a socket that
refuses data, a broken connection or a slow consumer is the endpoint's: this
module answers with values (`write`, `slow_consumer`) or an `OSError`.

The reading side of flow control (not reading a client while its own queue
is over half full, or while it waits for a recipient's worker) is the
endpoint's `Intake` (intake.py); the queue only says `over_half()`.

# NOTE: `deliver()` is the fan-out hot path: every line to every member of a
# room goes through it, as this object's bound method (an endpoint's
# `deliver` *is* its queue's, and so is its session's). It takes the lock
# around the queue only, and schedules the worker outside it, once per turn
# at most. Keep it one call, without a hop.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from typing import Any, Final, Generic, Protocol, TypeVar

from chatd.config import SEND_QUEUE_MIN, LimitsConfig
from chatd.outlet import Sender
from chatd.transport.worker import IOStats

WRITE_CHUNK: Final = 16384  # one TLS record: progress is visible per chunk
_HALF_THE_LEAST_QUEUE: Final = SEND_QUEUE_MIN // 2  # a queue holding less is under half of any limit


class Limited(Protocol):
    """Where the queue reads its limit (the server: it changes on reload)."""

    @property
    def limits(self) -> LimitsConfig: ...


class Stream(Protocol):
    """What the queue writes to: chatd.transport.tlsstream.TLSStream."""

    def send(self, data: bytes) -> int:
        """Take all of `data`; ssl.SSLWantWriteError (and nothing taken) while full."""

    def flush(self) -> bool:
        """Send what was taken; True once the socket has taken all of it."""


OwnerT = TypeVar("OwnerT")
OwnerT_contra = TypeVar("OwnerT_contra", contravariant=True)


class Scheduler(Protocol[OwnerT_contra]):
    """Who flushes the queue's owner: its worker (chatd.transport.worker.Worker)."""

    def mark_dirty(self, conn: OwnerT_contra) -> None:
        """Flush `conn` at the end of this turn (any thread)."""


class _Unscheduled:
    """A closed queue's scheduler: nothing more is flushed."""

    def mark_dirty(self, conn: object) -> None:
        pass


_UNSCHEDULED: Final = _Unscheduled()


class SendQueue(Generic[OwnerT]):
    """One client's outgoing bytes, wherever they wait: the outbox (filled by
    `deliver` on any thread), the unsent blocks its worker has taken, and the
    chunk in flight (handed to the stream, which refused it).

    Memory: an idle client's queue holds one empty list (the outbox) and a lock; the
    senders paused behind it get a list when the first one is
    (docs/architecture.md, "Memory per connection")."""

    __slots__ = (
        "_accepting",
        "_host",
        "_inflight",
        "_lock",
        "_outbox",
        "_owner",
        "_queued",
        "_scheduled",
        "_scheduler",
        "_split_line",
        "_stats",
        "_unflushed",
        "_unsent",
        "_waiters",
        "messages_out",
        "refused",
    )

    def __init__(self, host: Limited, stats: IOStats, scheduler: Scheduler[OwnerT], owner: OwnerT) -> None:
        """`scheduler`: has the worker flush `owner` at the end of its turn
        (any thread; asked once per turn at most)."""
        self._host = host
        self._stats = stats  # the worker's counters, written on its thread only
        self._scheduler: Scheduler[Any] = scheduler
        self._owner: OwnerT | None = owner
        # `_outbox`, `_queued`, `_unflushed`, `_waiters`, `_scheduled`,
        # `_accepting` and `messages_out` are shared with other threads under _lock.
        self._lock = threading.Lock()
        self._outbox: list[bytes] = []
        self._queued = 0  # bytes waiting for this client, wherever they wait
        self._unflushed = 0  # of those, bytes the worker has not taken yet
        self._waiters: list[Sender] | None = None  # senders paused until the worker takes the outbox
        self._scheduled = False
        self._accepting = True
        self.messages_out = 0  # lines delivered
        # The worker's own, from here on. A list, not a deque (an empty deque
        # is 760 bytes), and None while empty (an empty list is 56).
        self._unsent: list[bytes] | None = None
        self._inflight: bytes | None = None
        self._split_line = False  # the last chunk handed to the stream ended inside a unit
        self.refused = False  # the socket would not take all that was written

    # -- any thread ---------------------------------------------------------------------

    def deliver(self, data: bytes, lines: int = 1, sender: Sender | None = None) -> None:
        """Queue `data` (`lines` lines) for this client; never blocks, never touches the socket.

        `sender`, whose line this is (called on its thread), is paused when this
        client's worker has fallen more than half a queue behind, until that
        worker has taken what waits here (`take`).
        """
        size = len(data)
        with self._lock:
            if not self._accepting:
                return
            self._outbox.append(data)
            self._queued += size
            self._unflushed += size
            self.messages_out += lines
            if (
                sender is not None
                and self._unflushed > _HALF_THE_LEAST_QUEUE  # no limit is read below it: most lines
                and self._unflushed > self._host.limits.send_queue_bytes // 2
                and sender.pause_for_backlog()
            ):
                if self._waiters is None:
                    self._waiters = [sender]
                else:
                    self._waiters.append(sender)
            if self._scheduled:
                return
            self._scheduled = True
        self._scheduler.mark_dirty(self._owner)

    def close_with(self, last: bytes) -> None:
        """Queue `last` (a `BYE`), whatever the queue holds or the limit says,
        and nothing after it."""
        with self._lock:
            self._outbox.append(last)
            self._queued += len(last)
            self._accepting = False
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._scheduler.mark_dirty(self._owner)

    @property
    def queued(self) -> int:
        """Bytes waiting for this client (read without the lock: for metrics)."""
        return self._queued

    # -- the worker's thread ----------------------------------------------------------------

    def take(self) -> None:
        """Take what other threads queued; the senders waiting on it read again."""
        with self._lock:
            self._scheduled = False
            outbox, self._outbox = self._outbox, []
            self._unflushed = 0
            waiters, self._waiters = self._waiters, None
        if self._unsent:
            self._unsent.extend(outbox)
        else:
            self._unsent = outbox
        if waiters:
            for waiter in waiters:
                waiter.resume_after_backlog()

    def write(self, stream: Stream, cut: Callable[[bytes, int], int]) -> bool:
        """Hand what was taken to `stream`, up to WRITE_CHUNK bytes at a time,
        and flush it; True once the socket has taken it all, False (and
        `refused`) when it would not.

        `cut(data, limit)`: where a block longer than a chunk may be cut.

        Raises:
            OSError: the connection is broken (ssl.SSLError included).
        """
        while True:
            if self._inflight is None:
                unsent = self._unsent
                if not unsent:
                    self._unsent = None
                    break
                self._inflight = self._next_chunk(unsent, cut)
            try:
                sent = stream.send(self._inflight)
            except ssl.SSLWantWriteError:
                self.refused = True
                return False
            with self._lock:
                self._queued -= sent
            self._stats.bytes_out += sent
            self._inflight = None
        if not stream.flush():
            self.refused = True
            return False
        self.refused = False
        return True

    def over_half(self) -> bool:
        """Whether more than half of `send_queue_bytes` waits (the owner stops reading its client)."""
        return self._queued > self._host.limits.send_queue_bytes // 2

    def slow_consumer(self, exempt: int) -> bool:
        """Whether this client does not take its data: the socket refused it
        while more than `send_queue_bytes` wait, beside `exempt` bytes (an HTTP
        response in flight). Bytes not yet written never count; nor does a
        queue that has its last line (`close_with`)."""
        limit = self._host.limits.send_queue_bytes
        return self.refused and self._accepting and self._queued > limit and self._queued - exempt > limit

    def drop(self, rest_of_unit: Callable[[bytes], bytes]) -> None:
        """Forget what waits, but finish a unit already half handed to the
        stream (`rest_of_unit(head)`), so that the next line (a `BYE`) starts one
        of its own."""
        rest = b""
        if self._split_line and self._unsent:
            rest = rest_of_unit(self._unsent[0])
        self._unsent = [rest] if rest else None
        with self._lock:
            self._scheduled = False
            self._outbox = []
            self._unflushed = 0
            waiters, self._waiters = self._waiters, None
            self._queued = len(self._inflight or b"") + len(rest)
        for waiter in waiters or ():
            waiter.resume_after_backlog()

    def close(self) -> None:
        """Nothing more is sent: let go of every byte, of the waiting senders
        (they read again) and of the owner."""
        with self._lock:
            self._accepting = False
            self._scheduled = True
            self._scheduler = _UNSCHEDULED
            self._owner = None
            self._outbox = []
            self._queued = self._unflushed = 0
            waiters, self._waiters = self._waiters, None
        self._unsent = None
        self._inflight = None
        for waiter in waiters or ():
            waiter.resume_after_backlog()

    # -- coalescing -------------------------------------------------------------------------

    def _next_chunk(self, unsent: list[bytes], cut: Callable[[bytes, int], int]) -> bytes:
        chunk = self._take_chunk(unsent, cut)
        self._split_line = not chunk.endswith(b"\n")
        return chunk

    def _take_chunk(self, unsent: list[bytes], cut: Callable[[bytes, int], int]) -> bytes:
        """The next write, taken from `unsent` (`_unsent`, not empty): blocks
        joined up to WRITE_CHUNK, or the first WRITE_CHUNK bytes of a longer
        one (cut where `cut` says)."""
        first = unsent[0]
        if len(first) >= WRITE_CHUNK or len(unsent) == 1:
            if len(first) > WRITE_CHUNK:
                at = cut(first, WRITE_CHUNK)
                if at < len(first):
                    unsent[0] = first[at:]
                    return first[:at]
            del unsent[0]
            return first
        if sum(map(len, unsent)) <= WRITE_CHUNK:
            # At everyday load a write holds a few lines of one interval: all
            # of them, measured in C, and no step of Python per line.
            chunk = b"".join(unsent)
            unsent.clear()  # `write` lets go of the emptied list
            return chunk
        size = len(first)
        end = 1
        while end < len(unsent) and size + len(unsent[end]) <= WRITE_CHUNK:
            size += len(unsent[end])
            end += 1
        chunk = b"".join(unsent[:end])
        del unsent[:end]
        return chunk
