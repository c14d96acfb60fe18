"""The control socket and `chatctl status|who|kick|broadcast|reload` against a real daemon."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Daemon, chatctl_for


@pytest.fixture
def controlled(start_daemon: Callable[..., Daemon], short_dir: Path) -> Daemon:
    daemon = start_daemon(control={"socket": str(short_dir / "control.sock")})
    daemon.wait_for_event("control_listening")
    return daemon


chatctl = chatctl_for


def test_socket_is_owner_only(controlled: Daemon) -> None:
    path = Path(controlled.config["control"]["socket"])
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_status_and_who(controlled: Daemon) -> None:
    alice = controlled.client("alice")
    alice.send("hello")
    alice.expect("MSG #lobby alice hello")
    result = chatctl(controlled, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["clients"] == 1 and status["messages_in"] == 1 and status["rooms"] == 1
    assert status["config_file"] == str(controlled.config_path)
    assert {"uptime_s", "version", "messages_out", "tls_handshake_failures"} <= status.keys()
    human = chatctl(controlled, "status")
    assert "clients:" in human.stdout and "uptime_s:" in human.stdout
    who = chatctl(controlled, "who")
    assert who.returncode == 0
    assert who.stdout.splitlines()[0].split() == ["NICK", "PEER", "CONNECTED", "IDLE"]
    assert who.stdout.splitlines()[1].startswith("alice ") and "1 connected" in who.stdout
    entries = json.loads(chatctl(controlled, "who", "--json").stdout)
    assert entries[0]["nick"] == "alice" and entries[0]["peer"].startswith("127.0.0.1:")


def test_kick_and_broadcast(controlled: Daemon) -> None:
    alice, bob = controlled.client("alice"), controlled.client("bob")
    alice.expect("JOIN #lobby bob")
    result = chatctl(controlled, "broadcast", "maintenance", "at", "noon")
    assert result.returncode == 0 and "sent to 2 clients" in result.stdout
    assert alice.readline() == bob.readline() == "INFO maintenance at noon"
    result = chatctl(controlled, "kick", "BOB", "spamming", "links")
    assert result.returncode == 0, result.stderr
    assert bob.expect_closed() == ["BYE kicked spamming links"]
    assert alice.readline() == "LEAVE bob kicked spamming links"
    assert controlled.wait_for_event("operator_kick")["nick"] == "BOB"
    controlled.wait_for_event("operator_broadcast", recipients=2)
    missing = chatctl(controlled, "kick", "nobody")
    assert missing.returncode == 1 and "nobody is called nobody" in missing.stderr


def test_reload_through_the_socket(controlled: Daemon) -> None:
    controlled.config["limits"]["max_line_bytes"] = 300
    controlled.write_config()
    result = chatctl(controlled, "reload")
    assert result.returncode == 0 and "configuration reloaded" in result.stdout
    alice = controlled.client("alice")
    alice.send("x" * 400)
    alice.expect("ERR line_too_long")
    controlled.config_path.write_text("limits: [broken\n")
    result = chatctl(controlled, "reload")  # chatctl reads the same file: says what is wrong
    assert result.returncode == 2 and "invalid YAML at line 2" in result.stderr
    socket_path = controlled.config["control"]["socket"]
    result = subprocess.run(
        [sys.executable, "-m", "chatctl", "reload", "--socket", socket_path],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 1 and "still running on the old configuration" in result.stdout
    alice.send("x" * 400)
    alice.expect("ERR line_too_long")


def test_chatctl_refuses_a_socket_with_wrong_permissions(controlled: Daemon) -> None:
    path = Path(controlled.config["control"]["socket"])
    os.chmod(path, 0o666)
    result = chatctl(controlled, "status")
    assert result.returncode == 4
    assert "can be used by other users" in result.stderr


def test_chatctl_without_a_daemon_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatctl", "status", "--socket", str(tmp_path / "none.sock")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 3 and "is chatd running" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_daemon_refuses_other_users(controlled: Daemon) -> None:
    path = Path(controlled.config["control"]["socket"])
    os.chmod(path, 0o666)  # even if the file mode were wrong, the peer check holds
    os.chmod(path.parent, 0o755)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody and ask
        os.close(reader)
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)
                sock.connect(str(path))
                sock.sendall(b'{"cmd": "status"}\n')
                os.write(writer, sock.recv(4096))
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as answer:
        reply: dict[str, Any] = json.loads(answer.read())
    os.waitpid(pid, 0)
    assert reply == {"ok": False, "error": "permission denied: not the daemon's user or root"}
    controlled.wait_for_event("control_refused", uid=65534)


def test_socket_removed_at_shutdown(controlled: Daemon) -> None:
    path = Path(controlled.config["control"]["socket"])
    controlled.signal(signal.SIGTERM)
    assert controlled.process is not None and controlled.process.wait(10) == 0
    assert not path.exists()
