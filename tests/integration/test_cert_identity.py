"""One spelling per certificate identity (chatd/core/identities.py): with
`tls.nick_from_cert`, a certificate for `ALICE` from the same CA, presented
after `alice` was seen, is refused, so it can neither read alice's direct
messages nor receive them; chatd remembers the spelling across restarts when it
keeps history, and for its lifetime when it does not.
"""

from __future__ import annotations

import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chatctl.certs import issue_client_cert
from tests.conftest import PKI, Daemon, assert_healthy
from tests.support.chatclient import ChatClient

CertPair = tuple[Path, Path]


@pytest.fixture(scope="module")
def shouting_alice(certs: PKI, tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    """A client certificate for `ALICE` from the daemon's own client CA (as a
    second `gen-certs` run without the new check, or an organisation's CA, would
    make one)."""
    ca_cert = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    ca_key = serialization.load_pem_private_key((certs.dir / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert, key = issue_client_cert(ca_cert, ca_key, "ALICE", 30)
    directory = tmp_path_factory.mktemp("shouting")
    crt_path, key_path = directory / "client-ALICE.crt", directory / "client-ALICE.key"
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return crt_path, key_path


def _certified(start_daemon: Callable[..., Daemon], certs: PKI, **overrides: Any) -> Daemon:
    tls = {"client_ca": str(certs.ca), "client_auth": "required", "nick_from_cert": True}
    return start_daemon(tls=tls, **overrides)


def _assert_refused(daemon: Daemon, cert: CertPair, count: int = 1) -> None:
    """The holder of `cert` (CN=ALICE) says its name and asks for the DMs with
    bob at once; it gets the refusal and `BYE`, never a `WELCOME` or a `DM`."""
    client = ChatClient(daemon.port, daemon.pki.ca, cert=cert)
    daemon.clients.append(client)
    client.expect_greeting()
    client.send("ALICE")
    client.send("/history bob")
    lines = _lines_until_closed(client)
    assert not [line for line in lines if line.startswith(("WELCOME", "DM "))], lines
    assert len(lines) == 2, lines
    assert lines[0].startswith("ERR nick_invalid Your certificate names you ALICE, but this server knows"), lines
    assert "certificate for alice" in lines[0], lines
    assert lines[1] == "BYE nick_failed", lines
    events = daemon.find_events("certificate_identity_refused")
    assert len(events) == count, events
    assert (events[-1]["certificate_name"], events[-1]["known_as"]) == ("ALICE", "alice")


def _lines_until_closed(client: ChatClient, timeout: float = 10.0) -> list[str]:
    """What the client reads until the server closes (or `timeout`: then the last
    line says so), so that a failure shows what a refused client was given."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            lines.append(client.readline(max(0.01, deadline - time.monotonic())))
        except (EOFError, ConnectionResetError, ssl.SSLError):
            return lines
        except TimeoutError:
            return [*lines, f"(still open after {timeout} s)"]


def _restart(daemon: Daemon) -> None:
    """SIGTERM, then start again on the same config and database (a fresh log)."""
    assert daemon.process is not None
    for client in daemon.clients:
        client.close()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(15) == 0
    daemon.log_path.rename(daemon.log_path.with_suffix(f".{time.monotonic_ns()}"))
    daemon.start()


def test_a_certificate_for_alice_in_capitals_cannot_read_or_receive_her_direct_messages(
    start_daemon: Callable[..., Daemon], certs: PKI, shouting_alice: CertPair
) -> None:
    daemon = _certified(start_daemon, certs)
    alice = daemon.client("alice", cert=certs.client("alice"))
    bob = daemon.client("bob", cert=certs.client("bob"))
    bob.send("/msg alice for alice only")
    alice.expect_eventually("DM bob alice for alice only")
    alice.close()
    daemon.wait_for_event("disconnect", timeout=10, nick="alice")
    _assert_refused(daemon, shouting_alice)
    bob.send("/msg ALICE are you there")  # nobody by that identity is connected
    bob.expect_eventually("ERR no_such_nick ")

    # Remembered in the database: after a restart the refusal stands, and alice
    # (the first spelling) still reads her messages.
    _restart(daemon)
    _assert_refused(daemon, shouting_alice)
    alice = daemon.client("alice", cert=certs.client("alice"))
    alice.send("/history bob")
    alice.expect_eventually("DM bob alice for alice only")
    assert alice.readline() == "HISTORY bob 1 end"
    assert_healthy(daemon, "bob", cert=certs.client("bob"))


def test_without_history_the_first_spelling_holds_while_chatd_runs(
    start_daemon: Callable[..., Daemon], certs: PKI, shouting_alice: CertPair
) -> None:
    daemon = _certified(start_daemon, certs, history={"enabled": False})
    daemon.client("alice", cert=certs.client("alice")).close()
    daemon.wait_for_event("disconnect", timeout=10, nick="alice")
    _assert_refused(daemon, shouting_alice)
    _assert_refused(daemon, shouting_alice, count=2)
    assert_healthy(daemon, "alice", cert=certs.client("alice"))
