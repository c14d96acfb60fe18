"""Inbox: the work other threads hand one I/O worker, and the wake-up that
announces it (the shape of trio's `_core/_entry_queue.py`, which keeps its
entry queue and its wake-up socketpair apart from the run loop).

Two kinds of work come in: a callback, with the connection it is for if
any (`call_soon`), and a connection that has output to flush (`mark_dirty`,
from a thread that is not the worker's). Both wait in lists under one lock,
held for a few lines; the `Waker` (waker.py) is given outside it, and at
most once until the worker drains it. The worker takes everything at once,
once per turn (`take`). Once the worker's loop has ended (`refuse`), a
callback is refused, so that nobody waits for work that will never run.

What is not here: running the work (the worker's, under each connection's
guard, worker.py), and the work the worker's own thread queues for itself
(its own lists, without a lock: the common case).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from chatd.transport.waker import Waker

C = TypeVar("C")  # a connection (worker.py's `Connection`)

QueuedCall = tuple[Callable[[], None], C | None]


class Inbox(Generic[C]):
    __slots__ = ("_calls", "_dirty", "_lock", "_waker", "open")

    def __init__(self) -> None:
        self._waker = Waker()
        self._lock = threading.Lock()
        self._calls: list[QueuedCall[C]] = []
        self._dirty: list[C] = []
        self.open = True  # False once the worker takes no more callbacks (`refuse`)

    def fileno(self) -> int:
        """What the worker's epoll watches for the wake-up."""
        return self._waker.fileno()

    # -- any thread -----------------------------------------------------------------------

    def call_soon(self, call: Callable[[], None], conn: C | None = None) -> bool:
        """Queue `call` (for `conn`, if given) and wake the worker; False (and
        nothing queued) once it has stopped taking work."""
        with self._lock:
            if not self.open:
                return False
            self._calls.append((call, conn))
        self._waker.wake()
        return True

    def mark_dirty(self, conn: C) -> None:
        """`conn` has output queued: the worker flushes it after its next wake-up."""
        with self._lock:
            self._dirty.append(conn)
        self._waker.wake()

    def wake(self) -> None:
        """Wake the worker with nothing queued (to see its stop flag)."""
        self._waker.wake()

    # -- the worker's thread ----------------------------------------------------------------

    def drain(self) -> None:
        """The wake-up was seen; what it announced is taken with `take`."""
        self._waker.drain()

    def take(self) -> tuple[list[QueuedCall[C]], list[C]]:
        """Everything queued so far: the callbacks, and the connections with output."""
        with self._lock:
            calls, self._calls = self._calls, []
            dirty, self._dirty = self._dirty, []
        return calls, dirty

    def refuse(self) -> None:
        """Take no more callbacks: the worker's loop has ended (what was queued
        before is still there for one last `take`)."""
        with self._lock:
            self.open = False

    def close(self) -> None:
        """Release the wake-up's sockets; a later wake-up does nothing."""
        self._waker.close()
