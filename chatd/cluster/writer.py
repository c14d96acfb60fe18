"""Writer: calls from any thread, sent by one thread in as few writes as possible.

`submit` queues a call with a callback and never blocks (an I/O worker may
call it); the writer thread (`run`) takes everything waiting, up to
`max_batch`, sends it in one write on its own connection and reads the
replies, then calls each callback with the decoded value or the
`ClusterError` (chatd/cluster/errors.py): `Refused`/`Fenced` from the script,
`Interrupted` when the connection broke after sending (the call may have run:
only the log can tell), `Unavailable` for what is still waiting when the
writer stops without Redis. Calls that were never sent are kept, in order,
and sent after reconnecting with backoff: they had not run, so sending them
again cannot duplicate anything.

A full queue (`max_waiting`) refuses `submit`: the caller pauses its senders,
as it does for a slow recipient.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from chatd.cluster.backoff import Backoff
from chatd.cluster.errors import ClusterError, Interrupted, Unavailable
from chatd.cluster.link import Link
from chatd.cluster.scripts import Call

log = structlog.get_logger(__name__)

T = TypeVar("T")
_Job = tuple[Call[Any], Callable[[Any], None]]


class Writer:
    def __init__(
        self, link: Link, *, max_waiting: int = 10_000, max_batch: int = 512, backoff: Backoff | None = None
    ) -> None:
        self._link = link
        self._max_waiting = max_waiting
        self._max_batch = max_batch
        self._backoff = backoff or Backoff()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._wake = threading.Condition(threading.Lock())
        self._stopping = threading.Event()
        self.connected = True  # as of the last attempt (health)
        # For the metrics, written by the writer thread: batches answered, the
        # calls in them, and the seconds from each batch's write to its last reply.
        self.batches = 0
        self.calls = 0
        self.seconds = 0.0

    @property
    def waiting(self) -> int:
        return len(self._jobs)

    def submit(self, call: Call[T], done: Callable[[T | ClusterError], None]) -> bool:
        """Queue `call`; `done` gets its outcome on the writer thread. Any
        thread, never blocks; False (nothing queued) when the queue is full."""
        with self._wake:
            if len(self._jobs) >= self._max_waiting:
                return False
            self._jobs.append((call, done))
            if len(self._jobs) == 1:  # else the writer is awake already, or will look
                self._wake.notify()
        return True

    def stop(self) -> None:
        """Send what is waiting if Redis answers, then end `run`; any thread."""
        self._stopping.set()
        with self._wake:
            self._wake.notify()

    def run(self) -> None:
        """The writer thread's body, until `stop()`."""
        while batch := self._take():
            started = time.perf_counter()
            try:
                replies = self._link.execute([call.command for call, _ in batch])
            except Unavailable as exc:
                self._unavailable(batch, exc)
                continue
            except Interrupted as exc:
                self._lost(exc)
                self._finish(batch[: len(exc.replies)], exc.replies)
                self._fail(batch[len(exc.replies) :], exc)
                continue
            if not self.connected:
                log.info("cluster_writer_connected")
            self.connected = True
            self._backoff.reset()
            self.seconds += time.perf_counter() - started
            self.batches += 1
            self.calls += len(batch)
            self._finish(batch, replies)

    def _take(self) -> list[_Job]:
        with self._wake:
            while not self._jobs and not self._stopping.is_set():
                self._wake.wait()
            count = min(len(self._jobs), self._max_batch)
            return [self._jobs.popleft() for _ in range(count)]

    def _unavailable(self, batch: list[_Job], exc: Unavailable) -> None:
        self._lost(exc)
        if self._stopping.is_set():
            with self._wake:
                batch.extend(self._jobs)
                self._jobs.clear()
            self._fail(batch, exc)
            return
        with self._wake:  # first again, in their order: they were not sent
            self._jobs.extendleft(reversed(batch))
        self._stopping.wait(self._backoff.next())

    def _lost(self, exc: ClusterError) -> None:
        if self.connected:
            log.warning("cluster_writer_disconnected", error=str(exc), waiting=len(self._jobs))
        self.connected = False

    @staticmethod
    def _finish(batch: list[_Job], replies: list[object]) -> None:
        for (call, done), reply in zip(batch, replies, strict=True):
            try:
                outcome: object = call.decode(reply)
            except ClusterError as exc:
                outcome = exc
            _notify(done, outcome, call)

    @staticmethod
    def _fail(batch: list[_Job], exc: ClusterError) -> None:
        for call, done in batch:
            _notify(done, exc, call)


def _notify(done: Callable[[Any], None], outcome: object, call: Call[Any]) -> None:
    try:
        done(outcome)
    except Exception:  # a caller's bug must not end the writer and strand every later call
        log.exception("cluster_callback_failed", call=call.name)
