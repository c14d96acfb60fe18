"""chatd.notify: the sd_notify datagrams, checked on a real AF_UNIX socket."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from chatd.notify import Notifier


@pytest.fixture
def receiver(short_dir: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(short_dir / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def _datagram(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_with_and_without_status(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    notifier.ready()
    assert _datagram(sock) == "READY=1"
    notifier.ready("3 clients on 127.0.0.1:7443")
    assert _datagram(sock) == "READY=1\nSTATUS=3 clients on 127.0.0.1:7443"


def test_status_stopping_watchdog(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    notifier.status("busy")
    notifier.stopping()
    notifier.watchdog()
    assert [_datagram(sock) for _ in range(3)] == ["STATUS=busy", "STOPPING=1", "WATCHDOG=1"]


def test_status_text_cannot_add_assignments(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    Notifier.from_environ({"NOTIFY_SOCKET": path}).status("one\nREADY=1")
    assert _datagram(sock) == "STATUS=one READY=1"


def test_reloading_carries_the_monotonic_clock(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier.from_environ({"NOTIFY_SOCKET": path}).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = _datagram(sock).split("\n")
    assert first == "RELOADING=1"
    name, value = second.split("=")
    assert name == "MONOTONIC_USEC" and before <= int(value) <= after


def test_abstract_namespace_socket() -> None:
    name = f"chatd-test-notify-{os.getpid()}-{threading.get_ident()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        Notifier.from_environ({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(4096) == b"READY=1"


def test_without_notify_socket_nothing_is_sent_or_logged() -> None:
    notifier = Notifier.from_environ({})
    with capture_logs() as logs:
        notifier.ready("x")
        notifier.status("x")
        notifier.reloading()
        notifier.stopping()
        notifier.watchdog()
    assert logs == []
    assert Notifier.from_environ({"NOTIFY_SOCKET": ""}).watchdog_interval is None


def test_failures_are_logged_once_and_never_raise(tmp_path: Path) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with capture_logs() as logs:
        notifier.ready()
        notifier.watchdog()
        notifier.stopping()
    assert [entry["event"] for entry in logs] == ["sd_notify_failed"]
    assert logs[0]["log_level"] == "warning" and logs[0]["error"]


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())}, 0.2),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], interval: float | None) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "/run/systemd/notify", **environ})
    assert notifier.watchdog_interval == interval


def test_threads_share_one_notifier(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    threads = [threading.Thread(target=notifier.status, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(_datagram(sock) for _ in threads) == sorted(f"STATUS=t{i}" for i in range(8))
