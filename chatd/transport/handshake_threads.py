"""HandshakeThreads: the threads that compute the dearest step of each TLS
handshake, the server's answer to a ClientHello, away from the I/O workers.

That step makes a key share and signs it: 0.3-0.8 ms of CPU here, a hundred
times a chat line, and OpenSSL does it without Python's GIL. Computed on the
worker, it held up every client of the worker while it ran, and a login
flood's new connections made a `/ping` wait for one step after another
(docs/architecture.md, "Latency under a flood"). Handed over here, the
worker goes on reading and writing its clients meanwhile; on a second core
the step runs beside it, and on one core the kernel runs the worker first
when it wakes: these threads lower their priority as the password hashers
do (chatd/priority.py).

An endpoint's SSL object is the thread's alone while it works on it: the
endpoint hands over a call and touches its TLS stream again only on its
worker's thread, once the answer is back (`Worker.hand_over`).

What is not here: which step is handed over and what comes before and
after it (endpoint.py, pump.py, tlsstream.py).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import structlog

log = structlog.get_logger(__name__)

JOIN_TIMEOUT: Final = 5.0  # seconds `stop` waits for the steps in progress

_Job = tuple[Callable[[], Any], Callable[[Any], None]]


class HandshakeThreads:
    def __init__(self, threads: int, on_start: Callable[[], object] | None = None) -> None:
        """`threads` threads; each calls `on_start` first (the priority's `lower`)."""
        self._on_start = on_start
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"chatd-handshake-{n}", daemon=True) for n in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run `work` on one of the threads, then `done` with what it returned,
        or with the exception it raised (on that thread; any thread may submit)."""
        self._jobs.put((work, done))

    def stop(self) -> None:
        """End the threads after the steps already handed over."""
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _serve(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while (job := self._jobs.get()) is not None:
            self._run(*job)
            del job  # nothing of a connection is kept while the thread waits for the next

    @staticmethod
    def _run(work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        try:
            result = work()
        except Exception as exc:  # a bug: that client's handshake fails, the others go on
            log.exception("handshake_step_crashed")
            result = exc
        try:
            done(result)
        except Exception:
            log.exception("handshake_answer_crashed")
