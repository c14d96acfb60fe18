"""A debugger or profiler attaching to chatd (ptrace: py-spy, gdb) stops its
threads for a while; chatd goes on once they let go.

It did not: the main thread waited for signals with `sigtimedwait`, and when a
stop interrupted that wait for longer than its timeout, CPython 3.11 answered
an unfilled siginfo. chatd took whatever signal number was on the stack for a
real one: a traceback and an exit (py-spy at 1,000 samples a second did it in
seconds), or a reload, or a stop. chatd/cli.py now waits with `sigwaitinfo`
and keeps time with SIGALRM (docs/architecture.md, "Threads").
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.support.sdnotify import receive_until

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000  # waitpid's __WALL: a thread that is not the process's first
TICK = 0.2  # seconds: chatd's status interval under WATCHDOG_USEC=400000 (half of it)


@contextlib.contextmanager
def _every_thread_stopped(pid: int) -> Iterator[None]:
    """Every thread of `pid` in a ptrace stop, as a debugger holds them, until the block ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)
    held: list[int] = []
    try:
        for tid in sorted(int(name) for name in os.listdir(f"/proc/{pid}/task")):
            if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
                if not held:
                    pytest.skip(f"ptrace is not permitted here: {os.strerror(ctypes.get_errno())}")
                raise OSError(ctypes.get_errno(), f"PTRACE_SEIZE of thread {tid}")
            held.append(tid)
            assert libc.ptrace(PTRACE_INTERRUPT, tid, None, None) == 0, os.strerror(ctypes.get_errno())
            _, status = os.waitpid(tid, WALL)
            assert os.WIFSTOPPED(status), status
        yield
    finally:
        for tid in held:
            libc.ptrace(PTRACE_DETACH, tid, None, None)


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(4096)
    sock.settimeout(10)


def test_chatd_goes_on_after_a_debugger_held_every_thread(
    start_daemon: Callable[..., Daemon], notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    daemon = start_daemon(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
    assert receive_until(sock, "WATCHDOG=1")  # the main thread's loop turns
    assert daemon.process is not None
    with _every_thread_stopped(daemon.process.pid):
        # Held for several of the main thread's intervals: the condition the test
        # is about (a wait interrupted, its timeout past), not a wait for a result.
        time.sleep(4 * TICK)
        _drain(sock)  # what it said before the stop
    for _ in range(3):  # its loop turns again: three more watchdog pings
        receive_until(sock, "WATCHDOG=1")
    assert daemon.process.poll() is None, daemon.log()
    assert not daemon.find_events("signal_received")  # no signal made up, no reload or stop
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.send("still here")
    bob.expect_eventually("MSG #lobby alice still here")
