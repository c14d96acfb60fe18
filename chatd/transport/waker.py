"""Waker: how other threads wake a thread that waits in epoll or a selector.

A socketpair, as trio's `_core/_wakeup_socketpair.py` and asyncio's self-pipe
have it: the waiting thread watches `fileno()`, any thread calls `wake()`,
the woken thread calls `drain()`. Used by the I/O workers (worker.py) and by
the loop under the operator's listeners (chatd/oneshot.py).

Wake-ups are merged: after the first `wake()`, the next ones cost nothing
until the owner has drained, so a thousand lines handed to a worker in one
of its turns cost one system call, not a thousand.

Why not `os.eventfd`: it would save one descriptor per thread and the drain
loop, neither of which is measurable with wake-ups merged to one per turn,
and a wake-up that comes after `close()` (a late `deliver` to a worker that
has stopped) would write to a bare descriptor number the process may
already have handed to a new connection. A closed socket object refuses
instead (its descriptor is -1).

What the wake-up is for (work queued under the owner's lock, a stop flag)
is the owner's; nothing here knows.
"""

from __future__ import annotations

import socket


class Waker:
    """A wake-up that any thread can give and one thread waits for."""

    __slots__ = ("_pending", "_receiver", "_sender")

    def __init__(self) -> None:
        self._receiver, self._sender = socket.socketpair()
        self._receiver.setblocking(False)
        self._sender.setblocking(False)
        # True from a wake-up to the drain after it. NOTE: read and written by
        # several threads without a lock (the GIL keeps each access whole);
        # two threads that wake at once at worst send two bytes. Cleared only
        # after the drain, and the owner takes its work after draining, so a
        # wake-up skipped because one was pending is never lost.
        self._pending = False

    def fileno(self) -> int:
        """What the waiting thread watches for reading (-1 once closed)."""
        return self._receiver.fileno()

    def wake(self) -> None:
        """Any thread: make the owner's wait return (or its next wait, if it is busy)."""
        if self._pending:
            return
        self._pending = True
        try:
            self._sender.send(b"\0")
        except OSError:
            pass  # full (a byte is waiting anyway: BlockingIOError), or closed at shutdown

    def drain(self) -> None:
        """The owner's thread, once its wait has returned for `fileno()`: the
        wake-ups so far are taken, the next `wake()` wakes again."""
        try:
            while self._receiver.recv(4096):
                pass
        except OSError:
            pass  # drained (BlockingIOError), or closed
        self._pending = False

    def close(self) -> None:
        """Release both ends; a later `wake()` does nothing."""
        self._receiver.close()
        self._sender.close()
