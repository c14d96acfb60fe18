"""A bug in one connection's handling, or one worker's death, costs no one else.

Issue 10: a raising `call_soon` callback ended its worker's thread; the
server kept choosing that idle, dead worker, so every new client hung
without `NICK` and leaked its admission slot. Faults are planted by
tests/support/faulty_chatd.py, which runs chatd's own main() with one bug in it.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Daemon, wait_until
from tests.support.sdnotify import receive_until

CLIENTS = 6


def _faulty(start_daemon: Callable[..., Daemon], tmp_path: Path, point: str, **kwargs: object) -> tuple[Daemon, Path]:
    trigger = tmp_path / f"fault-{point}"
    command = [sys.executable, "-m", "tests.support.faulty_chatd", point, str(trigger)]
    daemon = start_daemon(command=command, server={"io_threads": 2}, **kwargs)
    return daemon, trigger


def _fire(daemon: Daemon, trigger: Path, event: str) -> None:
    daemon.expected_crashes.add(event)
    trigger.touch()
    daemon.wait_for_event(event, timeout=10)
    assert not trigger.exists()


def _everyone_is_served(daemon: Daemon, prefix: str) -> None:
    """New clients get HELLO and NICK and register, and a line reaches all of them."""
    clients = [daemon.client(f"{prefix}{i}") for i in range(CLIENTS)]
    clients[0].send("still here")
    for client in clients:
        client.expect_eventually(f"MSG #lobby {prefix}0 still here")


@pytest.mark.parametrize("point", ["call", "start"])
def test_a_raising_callback_costs_its_worker_nothing(start_daemon, tmp_path: Path, point: str) -> None:  # type: ignore[no-untyped-def]
    daemon, trigger = _faulty(start_daemon, tmp_path, point)
    before = [daemon.client(f"b{i}") for i in range(4)]
    event = "callback_crashed" if point == "call" else "session_crashed"
    trigger.touch()
    daemon.expected_crashes.add(event)
    if point == "start":
        with pytest.raises((ssl.SSLError, OSError)):  # closed at once, not left hanging
            daemon.client()
    daemon.wait_for_event(event, timeout=10)
    assert not daemon.find_events("worker_crashed")
    _everyone_is_served(daemon, "n")
    before[0].send("old friends")
    for client in before:
        client.expect_eventually("MSG #lobby b0 old friends")


def test_a_dead_worker_is_noticed_and_no_longer_chosen(start_daemon, tmp_path: Path, notify_socket) -> None:  # type: ignore[no-untyped-def]
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
    daemon, trigger = _faulty(start_daemon, tmp_path, "worker", env=env)
    assert receive_until(sock, "WATCHDOG=1")
    before = [daemon.client(f"b{i}") for i in range(4)]  # spread over both workers
    _fire(daemon, trigger, "worker_crashed")
    # The dead worker's clients are closed, not orphaned; the others stay.
    wait_until(lambda: daemon.find_events("disconnect", reason="internal_error"), 10, "orphans closed")
    orphans = {e["nick"] for e in daemon.find_events("disconnect", reason="internal_error")}
    assert orphans and len(orphans) < len(before), orphans
    _everyone_is_served(daemon, "n")
    # systemd is no longer told that all is well, so WatchdogSec restarts the service.
    daemon.wait_for_event("watchdog_withheld", timeout=10)
    _messages_within(sock, 0.0)  # what was sent before
    # Still talking to systemd: the next three turns of the status loop, each of
    # which ends with a STATUS= message (and, were all well, a WATCHDOG=1 before
    # it). Counted in turns of chatd's loop, not in seconds of the test's.
    later: list[str] = []
    sock.settimeout(10)  # a deadline for a silence, not a window to count in
    while sum(m.startswith("STATUS=") for m in later) < 3:
        later.append(sock.recv(4096).decode())
    assert not [m for m in later if "WATCHDOG=1" in m.split("\n")], later


def _messages_within(sock: socket.socket, seconds: float) -> list[str]:
    messages = []
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining > 0:
            sock.settimeout(remaining)
        else:
            sock.setblocking(False)  # only what has arrived already
        try:
            messages.append(sock.recv(4096).decode())
        except (BlockingIOError, TimeoutError):
            return messages
