"""/metrics and /healthz of a real daemon: the counters move with real traffic,
and the listener survives what a hostile peer may send it (issue 14)."""

from __future__ import annotations

import datetime
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import chatd
from chatctl.certs import issue_server_cert, load_ca
from chatd import metrics_http
from tests.conftest import (
    PKI,
    REPO,
    Daemon,
    assert_healthy,
    chatctl_for,
    http_exchange,
    http_get,
    scrape,
    wait_until,
    with_io_threads,
)


def _disconnected(daemon: Daemon, count: int) -> None:
    wait_until(lambda: len(daemon.find_events("disconnect")) >= count, 10, f"{count} disconnect events")


def test_a_conversation_moves_the_counters(daemon: Daemon) -> None:
    before = scrape(daemon)
    assert before("chatd_lines_received_total") == 0 and before("chatd_connections_accepted_total") == 0
    assert before("chatd_rooms") == 1 and before("chatd_room_members") == 0
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.expect("JOIN #lobby bob")
    texts = ["hello bob", "how are you", "bye now"]
    for text in texts:
        alice.send(text)
        assert bob.readline() == f"MSG #lobby alice {text}"
    alice.sync()
    during = scrape(daemon)
    assert during("chatd_clients", state="registered") == 2
    assert during("chatd_clients", state="handshaking") == during("chatd_clients", state="registering") == 0
    assert during("chatd_connections_accepted_total") == 2
    assert during("chatd_room_members") == 2
    assert during("chatd_messages_received_total") == 3
    # Every line either client sent: two nicknames, three messages, alice's /ping.
    assert during("chatd_lines_received_total") == 6
    sent_bytes = len(b"alice\nbob\n") + sum(len(t) + 1 for t in texts) + len(b"/ping ") + 32 + 1
    assert during("chatd_received_bytes_total") == sent_bytes
    # Each message reached both; the greetings, JOINs and USERS lines come on top.
    assert during("chatd_lines_delivered_total") >= 2 * len(texts) + 6
    assert during("chatd_sent_bytes_total") >= 2 * sum(len(f"MSG #lobby alice {t}\n") for t in texts)
    alice.send("/quit see you")
    assert alice.expect_closed() == ["BYE quit"]
    bob.close()
    _disconnected(daemon, 2)
    after = scrape(daemon)
    assert after("chatd_disconnects_total", reason="quit") == 1
    assert after("chatd_disconnects_total", reason="connection_lost") == 1
    assert sum(v for (name, _), v in after.items() if name == "chatd_clients") == 0
    assert after("chatd_room_members") == 0 and after("chatd_send_queue_bytes") == 0
    # Counters of clients that left are kept.
    assert after("chatd_messages_received_total") == 3
    assert after("chatd_lines_delivered_total") >= during("chatd_lines_delivered_total")
    assert after("chatd_lines_received_total") == 7  # the /quit


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_finds_nothing_wrong_with_a_real_scrape(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(server={"io_threads": 2})
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.send("hello")
    bob.expect_eventually("MSG #lobby alice hello")
    alice.send("/quit")
    alice.expect_closed()
    text = scrape(daemon).text
    assert "chatd_disconnects_total" in text and "process_cpu_seconds_total" in text
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_rate_limited_lines_are_counted_before_and_after_the_client_leaves(
    start_daemon: Callable[..., Daemon],
) -> None:
    # One token and no refill to speak of: the first line passes, the second is
    # held, every one after that is dropped.
    daemon = start_daemon(limits={"message_rate": 0.001, "message_burst": 1, "flood_disconnect": 0})
    alice = daemon.client("alice")
    for n in range(5):
        alice.send(f"line {n}")
    assert alice.readline() == "MSG #lobby alice line 0"
    for _ in range(3):
        alice.expect("ERR rate_limited")
    assert scrape(daemon)("chatd_rate_limited_lines_total") == 3
    alice.close()
    _disconnected(daemon, 1)
    assert scrape(daemon)("chatd_rate_limited_lines_total") == 3


@with_io_threads(1, 2)
def test_a_slow_consumer_is_counted(start_daemon: Callable[..., Daemon], io_threads: int) -> None:
    daemon = start_daemon(server={"io_threads": io_threads})
    sleeper = daemon.client("sleeper")
    sleeper.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    talker = daemon.client("talker")
    line = "x" * 3000
    deadline = time.monotonic() + 60
    while not daemon.find_events("slow_consumer"):
        assert time.monotonic() < deadline, "the sleeper was never dropped"
        for _ in range(20):
            talker.send(line)
        talker.sync(timeout=10)  # its own echoes, so that it never falls behind itself
    daemon.wait_for_event("disconnect", nick="sleeper", reason="slow_consumer")
    metrics = scrape(daemon)
    assert metrics("chatd_slow_consumers_total") == 1
    assert metrics("chatd_disconnects_total", reason="slow_consumer") == 1
    assert {labels for name, labels in metrics if name == "chatd_io_worker_lag_seconds"} == {
        (("worker", f"chatd-io-{n}"),) for n in range(io_threads)
    }
    assert all(metrics("chatd_io_worker_up", worker=f"chatd-io-{n}") == 1 for n in range(io_threads))
    assert_healthy(daemon)


def test_handshake_failures_and_refusals(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"max_clients": 1})
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not TLS
        daemon.wait_for_event("tls_handshake_failed")
    alice = daemon.client("alice")
    refused = daemon.client()
    refused.expect("ERR server_full")
    refused.close()
    wait_until(lambda: scrape(daemon)("chatd_disconnects_total", reason="server_full") == 1, 10, "server_full")
    metrics = scrape(daemon)
    assert metrics("chatd_tls_handshake_failures_total") == 1
    assert metrics("chatd_disconnects_total", reason="tls_handshake_failed") == 1
    assert metrics("chatd_connections_refused_total", reason="server_full") == 1
    assert metrics("chatd_connections_accepted_total") == 2  # the plain-TCP client, then alice
    alice.close()


def _issue(certs: PKI, cert_path: Path, key_path: Path, days: int) -> x509.Certificate:
    loaded = load_ca(certs.dir)
    assert loaded is not None
    cert, key = issue_server_cert(*loaded, hosts=["localhost", "127.0.0.1"], days=days)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert


def test_certificate_expiry_and_reloads(start_daemon: Callable[..., Daemon], tmp_path: Path, certs: PKI) -> None:
    cert_path, key_path = tmp_path / "live.crt", tmp_path / "live.key"
    first = _issue(certs, cert_path, key_path, days=300)
    daemon = start_daemon(tls={"cert": str(cert_path), "key": str(key_path)})
    metrics = scrape(daemon)
    assert metrics("chatd_tls_cert_expiry_timestamp_seconds") == first.not_valid_after_utc.timestamp()
    assert metrics("chatd_config_reloads_total", result="success") == 0
    second = _issue(certs, cert_path, key_path, days=10)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_event("config_reloaded")
    metrics = scrape(daemon)
    assert metrics("chatd_tls_cert_expiry_timestamp_seconds") == second.not_valid_after_utc.timestamp()
    assert metrics("chatd_config_reloads_total", result="success") == 1
    daemon.config_path.write_text("limits: [broken\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_event("config_reload_failed")
    metrics = scrape(daemon)
    assert metrics("chatd_config_reloads_total", result="failure") == 1
    assert metrics("chatd_tls_cert_expiry_timestamp_seconds") == second.not_valid_after_utc.timestamp()


def test_a_new_metrics_address_needs_a_restart(daemon: Daemon) -> None:
    old = daemon.metrics_address()
    daemon.config["metrics"]["listen"] = "127.0.0.1:1"
    daemon.write_config()
    daemon.signal(signal.SIGHUP)
    assert daemon.wait_for_event("config_reloaded")["restart_needed"] == ["metrics.listen"]
    assert http_get(old, "/healthz")[0] == 200  # still where it was


def test_build_info_and_process_metrics(daemon: Daemon) -> None:
    metrics = scrape(daemon)
    [(name, labels)] = [key for key in metrics if key[0] == "chatd_build_info"]
    info = dict(labels)
    assert info["version"] == chatd.__version__
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["openssl"].startswith("OpenSSL ")
    assert metrics(name, **info) == 1
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert metrics(name) > 0


def test_chatctl_status_shows_the_headline_figures(start_daemon: Callable[..., Daemon], short_dir: Path) -> None:
    daemon = start_daemon(control={"socket": str(short_dir / "control.sock")})
    daemon.wait_for_event("control_listening")
    alice = daemon.client("alice")
    alice.send("hello")
    alice.expect("MSG #lobby alice hello")
    result = chatctl_for(daemon, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = yaml.safe_load(result.stdout)
    host, port = daemon.metrics_address()
    assert status["metrics"] == f"{host}:{port}"
    assert status["clients"] == 1 and status["messages_in"] == 1  # the older fields stay
    assert status["lines_received"] == 2 and status["connections_accepted"] == 1
    assert status["room_members"] == 1 and status["handshaking"] == 0 and status["registering"] == 0
    assert status["reloads"] == {"success": 0, "failure": 0}
    assert list(status["loop_lag_ms"]) == ["chatd-io-0"]
    expires = datetime.datetime.fromisoformat(status["cert_expires"])
    assert expires > datetime.datetime.now(datetime.UTC)
    human = chatctl_for(daemon, "status").stdout
    assert "loop_lag_ms:" in human and "chatd-io-0 " in human and " ms" in human
    assert "cert_expires:" in human and "days)" in human
    assert "disconnects:" in human and "bytes_sent:" in human


def test_metrics_off(start_daemon: Callable[..., Daemon], short_dir: Path) -> None:
    daemon = start_daemon(metrics={"listen": None}, control={"socket": str(short_dir / "control.sock")})
    daemon.wait_for_event("control_listening")
    assert not daemon.find_events("metrics_listening")
    status = yaml.safe_load(chatctl_for(daemon, "status", "--json").stdout)
    assert status["metrics"] == "off"


def test_healthz_and_not_found(daemon: Daemon) -> None:
    address = daemon.metrics_address()
    assert http_get(address, "/healthz")[::2] == (200, b"ok\n")
    assert http_get(address, "/")[0] == 404
    assert http_get(address, "/metrics/extra")[0] == 404
    assert http_get(address, "/metrics?name[]=chatd_rooms")[0] == 200
    reply = http_exchange(address, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET\r\n" in reply


def test_healthz_says_503_while_stopping(daemon: Daemon) -> None:
    address = daemon.metrics_address()
    # A client that takes its BYE but does not hang up keeps chatd in its stop
    # sequence for the linger (2 s): long enough to ask.
    daemon.client("lingerer")
    daemon.signal(signal.SIGTERM)
    daemon.wait_for_event("shutdown")
    assert http_get(address, "/healthz")[::2] == (503, b"stopping\n")
    assert daemon.process is not None and daemon.process.wait(15) == 0


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this machine")
def test_metrics_on_ipv6(start_daemon: Callable[..., Daemon]) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 on this machine")
    daemon = start_daemon(metrics={"listen": "[::1]:0"})
    host, port = daemon.metrics_address()
    assert host == "::1"
    assert http_get(("::1", port), "/healthz")[0] == 200


# -- what a hostile peer may send the metrics listener -------------------------------------------


def test_garbage_and_slow_requests_do_not_hurt_chat(daemon: Daemon) -> None:
    address = daemon.metrics_address()
    alice, bob = daemon.client("alice"), daemon.client("bob")
    alice.expect("JOIN #lobby bob")
    slow = socket.create_connection(address, timeout=30)
    slow.sendall(b"GET /metr")  # and never the rest
    silent = socket.create_connection(address, timeout=30)
    # Garbage: a request line that is no request line.
    assert http_exchange(address, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    # An endless head: refused once it passes 8 KiB.
    with socket.create_connection(address, timeout=10) as big:
        big.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Filler: " + b"a" * (metrics_http.MAX_HEAD_BYTES + 100))
        assert big.recv(4096).startswith(b"HTTP/1.1 431 ")
    # Chat goes on meanwhile, and so do scrapes.
    alice.send("still here")
    assert bob.readline() == "MSG #lobby alice still here"
    assert scrape(daemon)("chatd_clients", state="registered") == 2
    # The stalled ones are cut off at their deadline.
    for sock in (slow, silent):
        assert sock.recv(4096) == b""
        sock.close()
    assert_healthy(daemon)


def test_metrics_port_in_use_is_a_config_error(tmp_path: Path, certs: PKI) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        config = tmp_path / "chatd.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "server": {"port": 0},
                    "tls": {"cert": str(certs.server_cert), "key": str(certs.server_key)},
                    "control": {"socket": None},
                    "metrics": {"listen": listen},
                }
            )
        )
        result = subprocess.run(
            [sys.executable, "-m", "chatd", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 78, result.stderr
    assert result.stderr.endswith(
        f"chatd: config error: {config}: metrics.listen: cannot listen on {listen}: "
        "Address already in use (is another chatd or exporter using it?)\n"
    ), result.stderr
    assert "Traceback" not in result.stderr
