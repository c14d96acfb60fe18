"""JobThreads: a few threads that run the jobs too long for an I/O worker,
each job's answer given to a callback on the thread that ran it. Two kinds
of chatd's threads are these: the password hashers (`chatd-auth-N`,
chatd/auth.py) and the TLS handshake threads (`chatd-handshake-N`, which
compute a handshake's answer to a ClientHello beside the I/O workers:
docs/architecture.md, "The life of a connection" and "Latency under a
flood").

Each thread calls `on_start` first: the background priority's `lower`
(chatd/priority.py), so that on a shared core an I/O worker that wakes is
run first. A job that raises is logged (`job_crashed`) and answered with
its exception, so that whoever waits for the answer is not left waiting;
an answer that raises is logged (`job_answer_crashed`); either way the
thread goes on with the next.

What is not here: what the jobs are, how many may wait (the callers'), and
any lock: a job and its answer run on one thread, and whatever they share
with other threads is theirs to guard.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import structlog

log = structlog.get_logger(__name__)

JOIN_TIMEOUT: Final = 5.0  # seconds `stop` waits for the jobs already submitted

_Job = tuple[Callable[[], Any], Callable[[Any], None]]


class JobThreads:
    def __init__(self, name: str, threads: int, on_start: Callable[[], object] | None = None) -> None:
        """`threads` threads named `<name>-N`; each calls `on_start` first."""
        self.name = name
        self._on_start = on_start
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, name=f"{name}-{n}", daemon=True) for n in range(threads)]

    def __len__(self) -> int:
        return len(self._threads)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run `work` on one of the threads, then `done` with what it returned,
        or with the exception it raised (on that thread; any thread may submit)."""
        self._jobs.put((work, done))

    def stop(self) -> None:
        """End the threads after the jobs already submitted (a job cannot be cut short)."""
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
            del job  # nothing of a job is kept while the thread waits for the next

    def _run(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        try:
            result = work()
        except Exception as exc:  # a bug: that job fails, the others go on
            log.exception("job_crashed", threads=self.name)
            result = exc
        try:
            done(result)
        except Exception:
            log.exception("job_answer_crashed", threads=self.name)
