"""Accepting in the I/O workers: several workers share the listener, and a
daemon out of file descriptors pauses accepting instead of spinning, then
takes the waiting clients once descriptors are free again."""

from __future__ import annotations

import os
import resource
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from bench.measure import Proc
from tests.conftest import Daemon, recv_greeting, wait_until


def test_several_workers_accept_and_serve_one_room(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(server={"io_threads": 3})
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
    daemon = start_daemon()
    assert daemon.process is not None
    pid = daemon.process.pid
    cpu = Proc(pid).cpu  # utime + stime of all of chatd's threads
    first = daemon.client("first")  # everything a connection needs is set up by now
    limit = _open_descriptors(pid) + 1
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
    second = daemon.client("second")  # takes the last descriptor
    first.expect("JOIN #lobby second")
    waiting = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)  # in the backlog
    try:
        daemon.wait_for_event("accept_failed", timeout=10)
        started = time.monotonic()
        cpu_before = cpu()
        time.sleep(1.0)
        spent = cpu() - cpu_before
        assert spent < 0.5, f"chatd spun on the full descriptor table: {spent:.2f}s CPU in 1s"
        # Retried every 0.1 s, logged at most once a second with a count of the rest.
        repeated = wait_until(lambda: [e for e in daemon.find_events("accept_failed") if e["count"] > 1], 5, "a count")
        failures = daemon.find_events("accept_failed")
        seconds = (time.monotonic() - started) + 1
        assert len(failures) <= seconds, f"{len(failures)} accept_failed lines in {seconds:.1f}s"
        assert repeated[0]["count"] >= 5, repeated
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
