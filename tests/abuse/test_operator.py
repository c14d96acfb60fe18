"""Issue 19's probes of the operator-facing surfaces, against a real daemon:
the metrics listener under a crowd of silent peers, the control socket with a
silent client and with text no line can carry, and what a crash logs."""

from __future__ import annotations

import errno
import json
import selectors
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chatd import metrics_http
from tests.conftest import REPO, Daemon, Scrape, assert_healthy, chatctl_for, wait_until

SILENT_PEERS = 100


# -- the metrics listener ------------------------------------------------------------------------


def _connect_quietly(address: tuple[str, int]) -> socket.socket:
    """A TCP connection on its way (non-blocking): it will never send a byte."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    result = sock.connect_ex(address)
    assert result in (0, errno.EINPROGRESS), errno.errorcode.get(result, result)
    return sock


def _wait_connected(socks: list[socket.socket], timeout: float) -> None:
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_WRITE)
        waiting = len(socks)
        while waiting:
            ready = selector.select(timeout)
            assert ready, f"{waiting} of {len(socks)} connections still not established after {timeout}s"
            for key, _ in ready:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                selector.unregister(sock)
                waiting -= 1


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def test_a_scrape_is_answered_while_100_silent_peers_are_connected(daemon: Daemon) -> None:
    # Issue 19: the listener served 16 connections and then stopped accepting,
    # so ~48 silent peers kept every scrape in the backlog until they timed out.
    # All of them and the scrape fit in the listener's backlog, so the kernel
    # queues every one even while the metrics thread waits for a CPU.
    assert SILENT_PEERS + 1 <= metrics_http.BACKLOG
    host, port = daemon.metrics_address()
    silent = [_connect_quietly((host, port)) for _ in range(SILENT_PEERS)]
    try:
        _wait_connected(silent, timeout=60)
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=60) as reply:
            status, body = reply.status, reply.read().decode()
        # Not a clock: the silent peers that had run out their deadlines by then.
        # Waiting for them (the old listener) takes all but the last 16.
        timed_out = len(daemon.find_events("metrics_request_timed_out"))
        assert status == 200
        assert Scrape(body)("chatd_rooms") == 1  # prometheus_client's parser accepts it
        if shutil.which("promtool"):
            check = subprocess.run(
                ["promtool", "check", "metrics"], input=body, capture_output=True, text=True, timeout=60
            )
            assert check.returncode == 0, check.stdout + check.stderr
        assert timed_out <= metrics_http.MAX_CONNECTIONS, f"the scrape waited for {timed_out} silent peers"
        # Every silent peer is closed: pushed out by newer ones, or at its deadline.
        for sock in silent:
            assert _closed_by_server(sock, timeout=30)
        evicted = wait_until(
            lambda: (
                len(daemon.find_events("metrics_request_evicted"))
                + len(daemon.find_events("metrics_request_timed_out"))
                >= SILENT_PEERS
            ),
            10,
            "an event for every silent peer",
        )
        assert evicted
        assert [e for e in daemon.find_events("metrics_request_timed_out") if e["stage"] != "reading"] == []
    finally:
        for sock in silent:
            sock.close()
    assert_healthy(daemon)


# -- crash logs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["room", "dm"])
def test_a_crash_on_the_message_path_logs_no_message_text(
    start_daemon: Callable[..., Daemon], tmp_path: Path, path: str
) -> None:
    # Issue 19: structlog's dict_tracebacks put every frame's locals in the log,
    # and on the message path those are what users wrote.
    trigger = tmp_path / "fault-message"
    daemon = start_daemon(command=[sys.executable, "-m", "tests.support.faulty_chatd", "message", str(trigger)])
    daemon.expected_crashes.add("session_crashed")
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.expect("JOIN #lobby bob")
    secret = f"meet me at the old mill {uuid.uuid4().hex}"
    trigger.touch()
    alice.send(secret if path == "room" else f"/msg bob {secret}")
    crash = daemon.wait_for_event("session_crashed", timeout=10)
    assert not trigger.exists()  # the planted bug fired, on the message
    [exception] = crash["exception"]
    assert exception["exc_type"] == "InjectedFault" and exception["exc_value"] == "message path"
    functions = [frame["name"] for frame in exception["frames"]]
    assert ("say" if path == "room" else "direct") in functions, functions  # the stack is there
    assert all("locals" not in frame for frame in exception["frames"])
    log = daemon.log()
    assert secret.rsplit(" ", 1)[1] not in log and "old mill" not in log
    # That one session ended; the daemon serves on.
    bob.expect_eventually("LEAVE alice internal_error")
    carol = daemon.client("carol")
    carol.send("/ping after")
    assert carol.readline() == "PONG after"


# -- the control socket --------------------------------------------------------------------------


@pytest.fixture
def controlled(start_daemon: Callable[..., Daemon], short_dir: Path) -> Daemon:
    daemon = start_daemon(control={"socket": str(short_dir / "control.sock")})
    daemon.wait_for_event("control_listening")
    return daemon


def _control_socket(daemon: Daemon) -> str:
    return str(daemon.config["control"]["socket"])


def _ask(daemon: Daemon, request: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(_control_socket(daemon))
        sock.sendall(request)
        answer = b""
        while b"\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    reply: dict[str, Any] = json.loads(answer)
    return reply


def _still_open(sock: socket.socket) -> bool:
    """Neither answered nor closed by the server, as of now."""
    sock.setblocking(False)
    try:
        sock.recv(100)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(30)
    return False


def test_a_silent_control_client_delays_nobody(controlled: Daemon) -> None:
    # Issue 19: one client that connected and said nothing held the control
    # thread, and so every chatctl, for 5 s.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(_control_socket(controlled))
        assert _ask(controlled, b'{"cmd": "status"}\n')["ok"] is True
        assert _still_open(silent), "the status request was answered only once the silent client was gone"
        result = chatctl_for(controlled, "status", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["clients"] == 0
        assert _still_open(silent), "chatctl status was answered only once the silent client was gone"
        # Its own deadline ends it.
        assert _closed_by_server(silent, timeout=30)
    assert controlled.wait_for_event("control_request_timed_out")["stage"] == "reading"


SURROGATES = "text fields must be valid Unicode without lone surrogates"


def test_a_kick_with_a_lone_surrogate_is_refused_and_its_victim_stays(controlled: Daemon) -> None:
    # Issue 19: this kick answered ok, and bob's session crashed on the reason
    # (no BYE; the others saw him leave with internal_error).
    alice, bob = controlled.client("alice"), controlled.client("bob")
    alice.expect("JOIN #lobby bob")
    reply = _ask(controlled, b'{"cmd": "kick", "nick": "bob", "reason": "bye \\ud800"}\n')
    assert reply == {"ok": False, "error": SURROGATES}
    # chatctl passes on what the shell gave it: a byte that is not UTF-8 becomes a
    # lone surrogate in argv (surrogateescape).
    result = subprocess.run(
        [sys.executable, "-m", "chatctl", "kick", "--config", str(controlled.config_path), "bob", b"caf\xe9"],
        capture_output=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 1 and SURROGATES.encode() in result.stderr, result.stderr
    reply = _ask(controlled, b'{"cmd": "broadcast", "text": ' + b"[" * 20000 + b"]" * 20000 + b"}\n")
    assert reply["ok"] is False and reply["error"].startswith("the request is nested too deeply"), reply
    bob.send("still here")
    assert alice.readline() == "MSG #lobby bob still here"
    assert bob.readline() == "MSG #lobby bob still here"
    assert not controlled.find_events("operator_kick")
    assert len(controlled.find_events("control_bad_request")) == 3
    assert_healthy(controlled)
    # A kick that is fine still works, and says so.
    assert _ask(controlled, b'{"cmd": "kick", "nick": "bob", "reason": "caf\\u00e9"}\n')["ok"] is True
    assert bob.expect_closed()[-1] == "BYE kicked caf\u00e9"
