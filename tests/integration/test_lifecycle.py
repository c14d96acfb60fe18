"""Start-up, structured events and shutdown of the real daemon process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import PKI, REPO, Daemon


def _chatd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chatd", *args], capture_output=True, text=True, timeout=30, cwd=REPO)


def test_sigterm_says_bye_to_everyone_and_exits_zero(daemon: Daemon) -> None:
    clients = [daemon.client(f"c{i}") for i in range(5)]
    unregistered = daemon.client()
    unregistered.expect_greeting()
    daemon.signal(signal.SIGTERM)
    for client in clients:
        assert client.expect_eventually("BYE", timeout=10) == "BYE shutdown"
        client.close()
    assert unregistered.expect_closed(10)[-1] == "BYE shutdown"
    unregistered.close()
    assert daemon.process is not None
    assert daemon.process.wait(10) == 0
    assert daemon.find_events("shutdown")
    # Within its own deadlines (chatd's clock, not the test's): nothing was still running at the end.
    for straggler in ("sessions_still_running", "control_still_running", "metrics_still_running"):
        assert not daemon.find_events(straggler), daemon.log()
    assert "Traceback" not in daemon.log()


def test_sigint_also_stops_cleanly(daemon: Daemon) -> None:
    client = daemon.client("alice")
    daemon.signal(signal.SIGINT)
    assert client.expect_closed(10)[-1] == "BYE shutdown"
    assert daemon.process is not None and daemon.process.wait(10) == 0


def test_events_follow_one_connection(daemon: Daemon) -> None:
    alice = daemon.client("alice")
    alice.send("hi")
    alice.expect("MSG #lobby alice hi")
    alice.send("/nick alicia")
    alice.expect("RENAME alice alicia")
    alice.send("/quit")
    alice.expect("BYE quit")
    alice.close()
    disconnect = daemon.wait_for_event("disconnect", nick="alicia")
    session = disconnect["session"]
    connect = daemon.find_events("connect", session=session)[0]
    assert connect["tls_version"] in ("TLSv1.2", "TLSv1.3") and connect["cipher"]
    assert connect["peer"] == disconnect["peer"]
    assert daemon.find_events("nickname", session=session, nick="alice")
    assert daemon.find_events("rename", session=session, old="alice", new="alicia")
    assert disconnect["reason"] == "quit"
    assert disconnect["messages_in"] == 1
    assert disconnect["messages_out"] >= 9  # HELLO, NICK, WELCOME, JOIN, USERS, HISTORY, CURRENT, MSG, RENAME, BYE
    assert isinstance(disconnect["duration_s"], float)
    for event in daemon.events():
        assert {"event", "level", "timestamp"} <= event.keys()
        assert event["timestamp"].endswith("Z")
    listening = daemon.find_events("listening")[0]
    assert listening["port"] == daemon.port != 0


def test_check_config_accepts_good_and_refuses_bad(tmp_path: Path, certs: PKI) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"tls": {"cert": str(certs.server_cert), "key": str(certs.server_key)}}))
    result = _chatd("--check-config", "--config", str(good))
    assert result.returncode == 0, result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("limits:\n  max_clients: lots\n")
    result = _chatd("--check-config", "--config", str(bad))
    assert result.returncode == 78
    assert result.stderr.startswith(f"chatd: config error: {bad}: limits.max_clients: ")
    assert "'lots'" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_refused_before_binding(tmp_path: Path, certs: PKI) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "chatd.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"port": port, "colour": "blue"},
                "tls": {"cert": str(certs.server_cert), "key": str(certs.server_key)},
            }
        )
    )
    result = _chatd("--config", str(config))
    assert result.returncode == 78
    assert "server.colour: unknown key" in result.stderr


def test_mismatched_key_is_a_config_error(tmp_path: Path, certs: PKI) -> None:
    config = tmp_path / "chatd.yaml"
    config.write_text(yaml.safe_dump({"tls": {"cert": str(certs.server_cert), "key": str(certs.dir / "ca.key")}}))
    result = _chatd("--config", str(config))
    assert result.returncode == 78
    assert "tls.cert: cannot load" in result.stderr


def test_port_in_use_fails_at_start(tmp_path: Path, certs: PKI) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = tmp_path / "chatd.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "server": {"port": busy.getsockname()[1]},
                    "tls": {"cert": str(certs.server_cert), "key": str(certs.server_key)},
                    "control": {"socket": None},
                }
            )
        )
        result = _chatd("--config", str(config))
    assert result.returncode == 69
    assert "server.port: cannot listen" in result.stderr
