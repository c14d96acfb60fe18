"""TLS policy and clients that never speak TLS properly."""

from __future__ import annotations

import contextlib
import socket
import ssl
import warnings

import pytest

from tests.conftest import Daemon, recv_greeting


def _context(daemon: Daemon) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(daemon.pki.ca))


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_modern_versions_accepted(daemon: Daemon, version: ssl.TLSVersion) -> None:
    context = _context(daemon)
    context.minimum_version = context.maximum_version = version
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == version.name.replace("v1_", "v1.")
            recv_greeting(tls)


def test_x25519_by_default_and_no_session_tickets(daemon: Daemon) -> None:
    context = _context(daemon)
    context.set_ecdh_curve("X25519")
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            recv_greeting(tls)  # tickets, if any, came before these lines
            assert tls.version() == "TLSv1.3"
            assert tls.session is not None and not tls.session.has_ticket


@pytest.mark.parametrize(
    ("server_groups", "client_group", "ok"),
    [
        (["X25519"], "prime256v1", False),
        (["prime256v1"], "prime256v1", True),
        (["prime256v1"], "X25519", False),
        (["secp384r1"], "secp384r1", True),
        (["secp384r1", "X25519"], "prime256v1", False),
    ],
)
def test_only_the_groups_in_tls_groups_are_offered(
    start_daemon,
    server_groups: list[str],  # type: ignore[no-untyped-def]
    client_group: str,
    ok: bool,
) -> None:
    daemon = start_daemon(tls={"groups": server_groups})
    context = _context(daemon)
    context.set_ecdh_curve(client_group)
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as raw:
        if ok:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                recv_greeting(tls)
        else:
            with pytest.raises(ssl.SSLError, match=r"HANDSHAKE_FAILURE|handshake failure"):
                context.wrap_socket(raw, server_hostname="localhost")


def test_tls_1_1_refused(daemon: Daemon) -> None:
    context = _context(daemon)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # we mean to offer it
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            context.wrap_socket(raw, server_hostname="localhost")
    daemon.wait_for_event("tls_handshake_failed")


def test_weak_tls12_cipher_refused(daemon: Daemon) -> None:
    context = _context(daemon)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA")  # static RSA, CBC: not in the intermediate profile
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="localhost")


def test_plain_tcp_and_silent_clients_are_dropped_without_harm(start_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(limits={"handshake_timeout": 1})
    alice = daemon.client("alice")
    plain = socket.create_connection((daemon.host, daemon.port), timeout=5)
    plain.sendall(b"NICK mallory\r\nhello there\r\n\r\n")
    silent = socket.create_connection((daemon.host, daemon.port), timeout=5)
    alice.send("still fine")
    alice.expect("MSG #lobby alice still fine")
    plain.settimeout(5)
    with contextlib.suppress(ConnectionResetError):  # a reset is a hang-up too
        while plain.recv(4096):  # at most a TLS alert, then EOF: the server hung up
            pass
    silent.settimeout(5)
    assert silent.recv(4096) == b""  # closed by the server after handshake_timeout
    failures = daemon.find_events("tls_handshake_failed")
    assert any(e["error"] == "timeout" for e in failures)
    assert len(failures) >= 2
    daemon.client("bob")  # a fresh client is still served
    assert alice.readline() == "JOIN #lobby bob"
    for sock in (plain, silent):
        sock.close()
