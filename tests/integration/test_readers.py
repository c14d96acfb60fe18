"""Clients that read are never dropped as slow consumers, at any `io_threads`.

Issue 10: with two I/O workers, readers were dropped as `slow_consumer` while
they read everything: the limit counted bytes chatd itself had not written
yet, because the owning worker had not run. These tests run the shipped
defaults (config/chatd.yaml's 96 KiB `send_queue_bytes`), lifting only the
rate and per-IP limits, with one, two and four workers.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.conftest import Daemon, assert_healthy, defaults_for_load
from tests.support.chatclient import ChatClient


@dataclass
class Reader:
    """A client that sends its lines and reads whatever has arrived in between."""

    client: ChatClient
    lines_seen: int = 0
    bye: str = ""
    errors: list[BaseException] = field(default_factory=list)
    _tail: bytes = b""

    def run(self, count: int, size: int, expected: int, timeout: float) -> None:
        try:
            body = b"x" * (size - len(self.client.nick) - 12)
            for n in range(count):
                try:
                    self.client.send(b"%s %d %s" % (self.client.nick.encode(), n, body))
                except (OSError, ssl.SSLError) as exc:
                    self._drain(block=False)
                    self.bye = self.bye or f"send failed: {exc!r}"
                    return
                self._drain(block=False)
            deadline = time.monotonic() + timeout
            while self.lines_seen < expected and not self.bye and time.monotonic() < deadline:
                self._drain(block=True)
        except BaseException as exc:  # reported by the test thread
            self.errors.append(exc)

    def _drain(self, block: bool) -> None:
        sock = self.client.sock
        sock.settimeout(0.2 if block else 0.0)
        while True:
            try:
                data = sock.recv(262144)
            except (TimeoutError, ssl.SSLWantReadError, BlockingIOError):
                return
            if not data:
                self.bye = self.bye or "closed"
                return
            self._count(data)
            if block:
                sock.settimeout(0.0)

    def _count(self, data: bytes) -> None:
        data = self._tail + data
        lines = data.split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            if line.startswith(b"BYE"):
                self.bye = line.decode()
            elif line.startswith(b"@id=") and line.partition(b" ")[2].startswith(b"MSG #lobby "):
                self.lines_seen += 1  # an MSG is an event: one without its tags is not counted


def _start(start_daemon, io_threads: int, **limits: int) -> Daemon:  # type: ignore[no-untyped-def]
    return start_daemon(server={"io_threads": io_threads}, limits=defaults_for_load(**limits))


def _run_readers(daemon: Daemon, readers: int, count: int, size: int) -> list[Reader]:
    clients = [daemon.client(f"r{i}") for i in range(readers)]
    last = clients[-1].nick
    for client in clients[:-1]:
        client.expect_eventually(f"JOIN #lobby {last}", timeout=10)
    workers = [Reader(client) for client in clients]
    expected = readers * count
    threads = [threading.Thread(target=w.run, args=(count, size, expected, 60), name=w.client.nick) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not any(thread.is_alive() for thread in threads), "a reader never finished"
    for worker in workers:
        assert not worker.errors, (worker.client.nick, worker.errors)
    return workers


def _assert_nobody_dropped(daemon: Daemon, workers: list[Reader], expected: int) -> None:
    dropped = [e for e in daemon.find_events("slow_consumer") if e.get("nick") != "sleeper"]
    assert not dropped, f"readers dropped as slow consumers: {dropped}"
    for worker in workers:
        assert not worker.bye, f"{worker.client.nick} got {worker.bye}"
        assert worker.lines_seen == expected, (worker.client.nick, worker.lines_seen, expected)


@pytest.mark.parametrize("io_threads", [1, 2, 4])
def test_readers_beside_a_non_reader_get_everything(start_daemon, io_threads: int) -> None:  # type: ignore[no-untyped-def]
    """10 readers send 1,500 lines of 700 bytes each, reading in between, while one
    client reads nothing: only the non-reader is dropped; every reader gets every line."""
    daemon = _start(start_daemon, io_threads)
    sleeper = daemon.client("sleeper")
    sleeper.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    workers = _run_readers(daemon, readers=10, count=1500, size=700)
    _assert_nobody_dropped(daemon, workers, 10 * 1500)
    daemon.wait_for_event("slow_consumer", nick="sleeper", timeout=10)
    assert_healthy(daemon)


@pytest.mark.parametrize("io_threads", [1, 2, 4])
def test_readers_of_long_lines_with_a_small_queue(start_daemon, io_threads: int) -> None:  # type: ignore[no-untyped-def]
    """5 readers of 3,000-byte lines with a 64 KiB queue, beside a non-reader."""
    daemon = _start(start_daemon, io_threads, send_queue_bytes=65536)
    sleeper = daemon.client("sleeper")
    sleeper.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    workers = _run_readers(daemon, readers=5, count=600, size=3000)
    _assert_nobody_dropped(daemon, workers, 5 * 600)
    assert_healthy(daemon)


@pytest.mark.parametrize("io_threads", [1, 2, 4])
def test_eight_readers_of_1500_byte_lines(start_daemon, io_threads: int) -> None:  # type: ignore[no-untyped-def]
    daemon = _start(start_daemon, io_threads)
    workers = _run_readers(daemon, readers=8, count=600, size=1500)
    _assert_nobody_dropped(daemon, workers, 8 * 600)
    assert_healthy(daemon)
