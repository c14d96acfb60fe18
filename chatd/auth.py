"""AuthThreads: the threads that hash passwords, `chatd-auth-N`, with a
bounded queue: the chat core's `Passwords` port (chatd/core/accounts.py).

A password check costs tens of milliseconds of CPU (chatd/passwords.py), far
too long for an I/O worker, whose one turn serves every client it holds. So
a session hands the check over (`verify`, `hash`) and waits; the verdict is
given to the `done` it passed, on the hashing thread, and the session brings
it back to its own thread (`Outlet.call_soon`).

At most `accounts.auth_threads` checks run and `accounts.auth_queue` wait
beyond them; one more is refused at once (the caller answers
`ERR auth_busy`), so a login flood costs bounded memory and at most
`auth_threads` CPUs, never the chat. The threads run at a lower scheduling
priority than the I/O workers (chatd/priority.py), so that a worker sharing
their core is run first. The figures (`stats`) are for /metrics and
`chatctl status`.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from chatd.core.accounts import Verdict
from chatd.jobthreads import JobThreads
from chatd.priority import BackgroundPriority

log = structlog.get_logger(__name__)


class Hasher(Protocol):
    """chatd.passwords.Argon2: blocking hashing and verifying."""

    def hash(self, password: str) -> str: ...
    def verify(self, hashed: str, password: str) -> Verdict: ...


@dataclass(frozen=True)
class AuthFigures:
    hashes: int  # password hashes computed (a verify, a new hash, a rehash: one each)
    hash_seconds: float  # CPU time they took, in all
    waiting: int  # checks queued, not yet started
    running: int
    refused: int  # checks refused because the queue was full


class AuthThreads:
    def __init__(
        self, hasher: Hasher, threads: int, queue_max: int, priority: BackgroundPriority | None = None
    ) -> None:
        """`priority`: what the threads lower themselves with (None: they keep the process's)."""
        self.hasher = hasher
        self.queue_max = queue_max  # may change on reload
        self._lock = threading.Lock()
        self._in_system = 0  # queued or running, under _lock
        self._running = 0
        self._hashes = 0
        self._hash_seconds = 0.0
        self._refused = 0
        self._threads = JobThreads("chatd-auth", threads, priority.lower if priority is not None else None)
        self._threads.start()

    # -- the Passwords port (any thread) ---------------------------------------------------

    def verify(self, hash: str, password: str, done: Callable[[Verdict], None]) -> bool:
        return self._submit(lambda: self.hasher.verify(hash, password), Verdict(False, None), done)  # type: ignore[arg-type]

    def hash(self, password: str, done: Callable[[str], None]) -> bool:
        # A hash that fails is a bug; "" then makes an account no password opens.
        return self._submit(lambda: self.hasher.hash(password), "", done)  # type: ignore[arg-type]

    def _submit(self, work: Callable[[], object], failed: object, done: Callable[[object], None]) -> bool:
        with self._lock:
            if self._in_system >= len(self._threads) + self.queue_max:
                self._refused += 1
                return False
            self._in_system += 1
        self._threads.submit(
            functools.partial(self._counted, work),
            lambda result: done(failed if isinstance(result, Exception) else result),  # a bug: the check fails
        )
        return True

    def stats(self) -> AuthFigures:
        with self._lock:
            running = self._running
            return AuthFigures(self._hashes, self._hash_seconds, self._in_system - running, running, self._refused)

    def stop(self) -> None:
        """Let the threads end after the checks in progress (a hash cannot be cut short)."""
        self._threads.stop()

    # -- the threads ---------------------------------------------------------------------

    def _counted(self, work: Callable[[], object]) -> object:
        with self._lock:
            self._running += 1
        start = time.thread_time()
        result: object = None
        try:
            result = work()
            return result
        finally:
            spent = time.thread_time() - start
            # A verify that rehashes has computed two hashes.
            hashes = 2 if isinstance(result, Verdict) and result.rehashed else 1
            with self._lock:
                self._running -= 1
                self._in_system -= 1
                self._hashes += hashes
                self._hash_seconds += spent
