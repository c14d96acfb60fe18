"""Operating the daemon: sd_notify, SIGHUP reload, certificate rotation, root warning."""

from __future__ import annotations

import os
import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chatctl.certs import issue_server_cert, load_ca
from tests.conftest import Daemon
from tests.support.sdnotify import receive_until


def test_sd_notify_ready_reload_watchdog_stopping(start_daemon: Callable[..., Daemon], notify_socket: Any) -> None:
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
    daemon = start_daemon(env=env)
    ready = receive_until(sock, "READY=1")[-1]
    assert "STATUS=0 clients on 127.0.0.1:" in ready
    assert receive_until(sock, "WATCHDOG=1")  # every 0.2 s with WatchdogSec=0.4
    daemon.signal(signal.SIGHUP)
    reload = receive_until(sock, "READY=1")
    reloading = next(m for m in reload if m.startswith("RELOADING=1"))
    assert reloading.split("\n")[1].startswith("MONOTONIC_USEC=")
    assert int(reloading.split("=")[-1]) > 0
    assert daemon.stop() == 0
    assert receive_until(sock, "STOPPING=1")


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when the tests run as root")
def test_running_as_root_is_warned_about(daemon: Daemon) -> None:
    event = daemon.wait_for_event("running_as_root")
    assert event["level"] == "warning"


def test_reload_applies_new_limits_to_connected_clients(daemon: Daemon) -> None:
    alice = daemon.client("alice")
    alice.send("a" * 1000)
    alice.expect("MSG #lobby alice aaa")
    daemon.config["limits"]["max_line_bytes"] = 512
    daemon.write_config()
    daemon.signal(signal.SIGHUP)
    assert daemon.wait_for_event("config_reloaded")["restart_needed"] == []
    alice.send("a" * 1000)
    alice.expect("ERR line_too_long")
    alice.send("short is fine")
    alice.expect("MSG #lobby alice short is fine")


def test_broken_reload_keeps_the_old_config(daemon: Daemon) -> None:
    alice = daemon.client("alice")
    daemon.config_path.write_text("limits: {max_line_bytes: [not, a, number]\n")
    daemon.signal(signal.SIGHUP)
    failed = daemon.wait_for_event("config_reload_failed")
    assert str(daemon.config_path) in failed["error"]
    alice.send("a" * 1000)  # the old 4096-byte limit still holds
    alice.expect("MSG #lobby alice aaa")
    daemon.client("bob")  # and new clients are served


def test_port_change_is_reported_as_needing_a_restart(daemon: Daemon) -> None:
    daemon.config["server"]["port"] = daemon.port + 1 if daemon.port < 65535 else 1024
    daemon.write_config()
    daemon.signal(signal.SIGHUP)
    assert daemon.wait_for_event("config_reloaded")["restart_needed"] == ["server.port"]
    daemon.client("alice")  # still on the old port


def _served_certificate(daemon: Daemon) -> x509.Certificate:
    context = ssl.create_default_context(cafile=str(daemon.pki.ca))
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_certificate_rotation_keeps_connected_clients(
    start_daemon: Callable[..., Daemon], tmp_path: Path, certs: Any
) -> None:
    cert_path, key_path = tmp_path / "live.crt", tmp_path / "live.key"
    cert_path.write_bytes(certs.server_cert.read_bytes())
    key_path.write_bytes(certs.server_key.read_bytes())
    daemon = start_daemon(tls={"cert": str(cert_path), "key": str(key_path)})
    old = _served_certificate(daemon)
    alice = daemon.client("alice")
    loaded = load_ca(certs.dir)
    assert loaded is not None
    new_cert, new_key = issue_server_cert(*loaded, hosts=["localhost", "127.0.0.1"])
    cert_path.write_bytes(new_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        new_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_event("config_reloaded")
    served = _served_certificate(daemon)
    assert served.serial_number == new_cert.serial_number != old.serial_number
    alice.send("still here")
    alice.expect("MSG #lobby alice still here")
    daemon.client("bob")
    assert alice.readline() == "JOIN #lobby bob"
