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
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, wait_until
from tests.support.sdnotify import receive_until

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000  # waitpid's __WALL: a thread that is not the process's first


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


def _alarm_pending(pid: int) -> bool:
    """Whether a SIGALRM waits for `pid` (its status' ShdPnd: process-wide pending signals)."""
    status = Path(f"/proc/{pid}/status").read_text()
    pending = int(next(line for line in status.splitlines() if line.startswith("ShdPnd:")).split()[1], 16)
    return bool(pending & 1 << (signal.SIGALRM - 1))


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
    # A watchdog of 0.4 s: chatd's status interval is half of it.
    daemon = start_daemon(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
    assert receive_until(sock, "WATCHDOG=1")  # the main thread's loop turns
    assert daemon.process is not None
    pid = daemon.process.pid
    with _every_thread_stopped(pid):
        # Held until the main thread's interval has passed meanwhile (the condition
        # the test is about: a wait interrupted, its timeout past), as the kernel
        # tells: the interval timer's SIGALRM waits, pending, for a thread to take it.
        wait_until(lambda: _alarm_pending(pid), 10, "chatd's interval to pass while it is stopped")
        _drain(sock)  # what it said before the stop
    for _ in range(3):  # its loop turns again: three more watchdog pings
        receive_until(sock, "WATCHDOG=1")
    assert daemon.process.poll() is None, daemon.log()
    assert not daemon.find_events("signal_received")  # no signal made up, no reload or stop
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.send("still here")
    bob.expect_eventually("MSG #lobby alice still here")
