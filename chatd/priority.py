"""BackgroundPriority: the lower scheduling priority (a higher nice value) that
chatd's CPU-heavy background threads give themselves, so that the I/O
workers get the CPU first.

On a small machine the password-hashing threads (chatd/auth.py: 20-30 ms of
CPU per check) and the history writer (chatd/storage/history_writer.py: one
`INSERT` of a batch every `history.flush_ms`, with the GIL released) compete
with the I/O workers for the same core. At the same priority the kernel
shares it evenly, and a ping waits for a hash or an insert to use up its
slice; a worker at nice 0 beside a thread at nice 10 gets about ten times its
share, and is run as soon as it wakes (docs/operations.md, "Thread
priorities"; the measurements in docs/architecture.md, "Latency under a
flood"). The background threads still get the whole core while the workers
are idle, so a hash or a write is delayed, never refused.

Linux keeps a nice value per thread: `setpriority(PRIO_PROCESS, tid, nice)`
on the thread's own id changes that thread only, and raising one's own nice
needs no privilege. A seccomp filter may refuse the call all the same
(systemd's `SystemCallFilter=~@resources`): then the threads carry on at the
process's priority and `thread_priority_refused` is logged once.

What is not here: which threads are lowered (each calls `lower()` first
thing on its own thread).
"""

from __future__ import annotations

import os
import threading
from typing import Final

import structlog

log = structlog.get_logger(__name__)

BACKGROUND_NICE: Final = 10  # added to the process's nice value (capped at 19, the lowest priority)
NICE_MAX: Final = 19


class BackgroundPriority:
    """Lowers the priority of the threads that call `lower()`; any thread."""

    def __init__(self, nice: int = BACKGROUND_NICE) -> None:
        self.nice = nice
        self._lock = threading.Lock()
        self._refused = False  # logged already, under _lock

    def lower(self) -> int | None:
        """Raise the calling thread's nice value by `nice`; the value it now
        has, or None when the system refused (logged once per process)."""
        tid = threading.get_native_id()
        try:
            wanted = min(NICE_MAX, os.getpriority(os.PRIO_PROCESS, tid) + self.nice)
            os.setpriority(os.PRIO_PROCESS, tid, wanted)
        except OSError as exc:  # EPERM from a seccomp filter such as systemd's ~@resources
            self._refused_once(exc)
            return None
        log.debug("thread_priority_lowered", thread=threading.current_thread().name, tid=tid, nice=wanted)
        return wanted

    def _refused_once(self, exc: OSError) -> None:
        with self._lock:
            first, self._refused = not self._refused, True
        if first:  # logged outside the lock
            log.warning(
                "thread_priority_refused",
                thread=threading.current_thread().name,
                error=exc.strerror or str(exc),
                hint="background threads run at the I/O threads' priority; allow setpriority "
                "(SystemCallFilter=setpriority, see systemd/chatd.service)",
            )
