"""Memory stays bounded under connection churn, and comes back when it stops.

Issue 10: 40 clients connecting in a loop for 15 s grew chatd's RSS by up to
a gigabyte, and it stayed there: closed connections were held by the
worker's timer heap until their deadlines (10 s for a handshake, 60 s for
registration). Each test churns one kind of connection from 40 threads at
the shipped defaults (only the rate and per-IP limits lifted) and samples
chatd's RSS from /proc.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Callable

import pytest

from tests.conftest import Daemon, assert_healthy, defaults_for_load, wait_until
from tests.support.hellos import Client
from tests.support.proc import rss_bytes

THREADS = 40
CHURN_SECONDS = 6.0
GROWTH_LIMIT_MB = 64  # the bound for ~40 live connections, allocator slack included
SETTLED_LIMIT_MB = 12  # after the churn: near the baseline (a leak of a few KiB per connection shows)


def rss_mb(pid: int) -> float:
    return rss_bytes(pid) / (1 << 20)


Churn = Callable[[Daemon], None]


def _garbage(daemon: Daemon) -> None:
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as sock:
        sock.sendall(os.urandom(200))


def _truncated_hello(daemon: Daemon, hello: bytes) -> None:
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as sock:
        sock.sendall(hello[: len(hello) // 2])


def _chat(daemon: Daemon, context: ssl.SSLContext, nick: str, quit: bool) -> None:
    raw = socket.create_connection((daemon.host, daemon.port), timeout=5)
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"HELLO 5 ")
        assert reader.readline().startswith(b"ACCOUNTS ")
        assert reader.readline() == b"NICK\n"
        sock.sendall(nick.encode() + b"\n")
        assert reader.readline().startswith(b"WELCOME ")
        if quit:
            sock.sendall(b"hello\n/quit\n")
            while reader.readline() not in (b"", b"BYE quit\n"):
                pass


def _churn(daemon: Daemon, kind: str) -> tuple[int, list[BaseException]]:
    context = ssl.create_default_context(cafile=str(daemon.pki.ca))
    hello = Client(ca=daemon.pki.ca).hello()
    deadline = time.monotonic() + CHURN_SECONDS
    done = [0]
    errors: list[BaseException] = []

    def loop(index: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            try:
                if kind == "garbage":
                    _garbage(daemon)
                elif kind == "truncated_hello":
                    _truncated_hello(daemon, hello)
                else:
                    _chat(daemon, context, f"c{index}x{n}", quit=kind == "chat_quit")
            except (OSError, AssertionError) as exc:
                errors.append(exc)
                return
            n += 1
        done[0] += n

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CHURN_SECONDS + 30)
    assert not any(thread.is_alive() for thread in threads), "a churn thread never finished"
    return done[0], errors


@pytest.mark.parametrize("io_threads", [1, 2])
@pytest.mark.parametrize("kind", ["garbage", "truncated_hello", "chat_quit", "chat_close"])
def test_memory_under_churn(start_daemon, kind: str, io_threads: int) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(server={"io_threads": io_threads}, limits=defaults_for_load())
    assert daemon.process is not None
    pid = daemon.process.pid
    daemon.client("warmup").close()
    baseline = rss_mb(pid)
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], rss_mb(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        connections, errors = _churn(daemon, kind)
    finally:
        stop.set()
        sampler.join(5)
    assert not errors, errors[:3]
    assert connections > 100, f"only {connections} connections in {CHURN_SECONDS}s"
    print(f"{kind} io_threads={io_threads}: {connections} connections, RSS {baseline:.0f} MB → peak {peak[0]:.0f} MB")
    assert peak[0] - baseline < GROWTH_LIMIT_MB, (baseline, peak[0])
    # Connections still closing (lingering, deadlines) are live ones; once they
    # are gone, so is their memory.
    wait_until(lambda: rss_mb(pid) - baseline < SETTLED_LIMIT_MB, 10, "RSS back near the baseline")
    assert_healthy(daemon)
