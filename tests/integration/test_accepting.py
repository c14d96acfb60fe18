"""Accepting in the I/O workers: several workers share the listener, and a
daemon out of file descriptors pauses accepting instead of spinning, then
takes the waiting clients once descriptors are free again."""

from __future__ import annotations

import datetime
import itertools
import os
import resource
import socket
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from bench.measure import Proc
from tests.conftest import Daemon, recv_greeting, wait_until


@pytest.mark.parametrize("handshake_threads", [0, 2], ids=["handshakes_on_the_workers", "two_handshake_threads"])
def test_several_workers_accept_and_serve_one_room(start_daemon: Callable[..., Daemon], handshake_threads: int) -> None:
    daemon = start_daemon(server={"io_threads": 3, "handshake_threads": handshake_threads})
    clients = [daemon.client(f"c{i}") for i in range(12)]
    clients[0].send("/who")
    room, *users = clients[0].expect_eventually("USERS ").split()[1:]
    assert room == "#lobby" and sorted(users) == sorted(f"c{i}" for i in range(12))
    clients[5].send("hello from five")
    for client in clients:
        client.expect_eventually("MSG #lobby c5 hello from five")
    assert len(daemon.find_events("connect")) == 12


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_out_of_descriptors_pauses_accepting_then_recovers(start_daemon: Callable[..., Any]) -> None:
    """Out of descriptors with a client waiting in the backlog, chatd stops
    watching the listener for a moment (ACCEPT_PAUSE) instead of spinning on it,
    logs `accept_failed` at most once a second with a count of the failures in
    between, serves its clients meanwhile, and takes the waiting client once a
    descriptor is free."""
    daemon = start_daemon()
    assert daemon.process is not None
    pid = daemon.process.pid
    io_threads = daemon.find_events("listening")[0]["io_threads"]
    cpu = Proc(pid).cpu  # utime + stime of all of chatd's threads
    first = daemon.client("first")  # everything a connection needs is set up by now
    limit = _open_descriptors(pid) + 1
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
    second = daemon.client("second")  # takes the last descriptor
    first.expect("JOIN #lobby second")
    waiting = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)  # in the backlog
    try:
        daemon.wait_for_event("accept_failed", timeout=10)
        # The window is chatd's own: from now until two more `accept_failed`
        # lines, which are at least a second apart, not a sleep of the test's.
        logged = len(daemon.find_events("accept_failed"))
        cpu_before = cpu()
        wait_until(lambda: len(daemon.find_events("accept_failed")) >= logged + 2, 20, "two more accept_failed")
        spent = cpu() - cpu_before
        print(f"out of descriptors: chatd CPU {spent:.3f}s between two accept_failed lines")
        # CPU time (a busy machine does not inflate it): pausing, chatd is idle
        # but for a retry every ACCEPT_PAUSE; spinning, it would use a core.
        assert spent < 0.25, f"chatd spun on the full descriptor table: {spent:.2f}s CPU in over a second"
        failures = daemon.find_events("accept_failed")
        # At most one line a second, by chatd's own timestamps...
        stamps = [datetime.datetime.fromisoformat(e["timestamp"]) for e in failures]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
        assert min(gaps) >= 0.99, gaps
        # ...each counting the retries since the last: more than one, and paced
        # (ACCEPT_PAUSE is 0.1 s, so about ten per worker; a spinning worker
        # would count thousands).
        counts = [e["count"] for e in failures[1:]]
        assert all(2 <= count <= 20 * io_threads for count in counts), (counts, io_threads)
        first.send("still here")
        second.expect_eventually("MSG #lobby first still here")

        second.close()
        first.expect_eventually("LEAVE second")
        context = ssl.create_default_context(cafile=str(daemon.pki.ca))
        with context.wrap_socket(waiting, server_hostname="localhost") as tls:
            tls.settimeout(10)
            recv_greeting(tls)
            tls.sendall(b"third\n")
            first.expect_eventually("JOIN #lobby third")
        wait_until(lambda: daemon.find_events("disconnect", nick="third"), 10, "third's disconnect")
    finally:
        waiting.close()
