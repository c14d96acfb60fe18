"""Mutual TLS: `tls.client_auth: none | optional | required` with right and wrong
client certificates, and `tls.nick_from_cert`.

A refused certificate is refused during the handshake: the client never sees
`HELLO`. With TLS 1.3 the client's handshake completes before the server has
checked the client's certificate, so the client may only learn of the refusal
(an alert, or EOF) on its first read.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chatctl.certs import issue_ca, issue_client_cert
from tests.conftest import PKI, Daemon, assert_healthy, recv_greeting, wait_until
from tests.support.chatclient import ChatClient

CertPair = tuple[Path, Path]


@dataclass(frozen=True)
class ClientCerts:
    right: CertPair  # alice, signed by the daemon's client CA
    other: CertPair  # bob, same CA
    wrong_ca: CertPair  # alice, signed by an unrelated CA
    expired: CertPair  # alice, right CA, expired yesterday
    server_cert: CertPair  # the server's own certificate (serverAuth only) as a client cert


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> CertPair:
    crt_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return crt_path, key_path


def _expired_client_cert(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, name: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    # chatctl refuses to make this (days must be >= 1), so build it by hand, otherwise
    # exactly like a chatctl client certificate.
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def client_certs(certs: PKI, tmp_path_factory: pytest.TempPathFactory) -> ClientCerts:
    directory = tmp_path_factory.mktemp("client-certs")
    ca_cert = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    ca_key = serialization.load_pem_private_key((certs.dir / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    other_ca = issue_ca("unrelated CA")
    return ClientCerts(
        right=certs.client("alice"),
        other=certs.client("bob"),
        wrong_ca=_write(directory, "wrong-ca-alice", *issue_client_cert(*other_ca, "alice", 30)),
        expired=_write(directory, "expired-alice", *_expired_client_cert(ca_cert, ca_key, "alice")),
        server_cert=(certs.server_cert, certs.server_key),
    )


def _mtls(start_daemon: Callable[..., Daemon], certs: PKI, client_auth: str, **tls: Any) -> Daemon:
    """A daemon whose client CA is the session PKI's CA (the one alice's cert comes from)."""
    return start_daemon(tls={"client_ca": str(certs.ca), "client_auth": client_auth, **tls})


def _connect(daemon: Daemon, cert: CertPair | None) -> ChatClient:
    client = ChatClient(daemon.port, daemon.pki.ca, cert=cert)
    daemon.clients.append(client)
    return client


def _assert_refused(daemon: Daemon, cert: CertPair | None) -> tuple[str, str]:
    """The handshake fails: the client never gets `HELLO`; the daemon logs why.

    Returns what the client saw (the TLS alert) and the `error` of the
    `tls_handshake_failed` event.
    """
    before = len(daemon.find_events("tls_handshake_failed"))
    seen: Exception
    try:
        client = _connect(daemon, cert)
    except (ssl.SSLError, ConnectionError) as exc:
        seen = exc  # refused before the client's side of the handshake finished (TLS 1.2)
    else:
        # TLS 1.3: the server's verdict arrives after the client's Finished.
        with pytest.raises((ssl.SSLError, ConnectionError, EOFError)) as refused:
            line = client.readline(timeout=5)
            pytest.fail(f"a refused client was served: {line!r}")
        seen = refused.value
    failures = wait_until(lambda: daemon.find_events("tls_handshake_failed")[before:], 5, "tls_handshake_failed")
    assert len(failures) == 1, failures
    assert not daemon.find_events("connect"), "a refused client got past the handshake"
    alert = str(getattr(seen, "reason", None) or seen)
    return alert, str(failures[0]["error"])


def _assert_served(daemon: Daemon, cert: CertPair | None, nick: str) -> ChatClient:
    client = _connect(daemon, cert)
    client.register(nick)  # HELLO, NICK, WELCOME, the lobby's JOIN, USERS, HISTORY and CURRENT
    client.send("/ping mtls")
    assert client.readline() == "PONG mtls"
    return client


# -- client_auth: required ----------------------------------------------------------------

REFUSED_WHEN_REQUIRED = ["no_cert", "wrong_ca", "expired", "server_cert"]
# case: (in the TLS alert the client gets, start of the logged error, what the log should add)
REFUSALS = {
    "no_cert": ("CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE", ""),
    "wrong_ca": ("UNKNOWN_CA", "CERTIFICATE_VERIFY_FAILED", "unable to get local issuer certificate"),
    "expired": ("CERTIFICATE_EXPIRED", "CERTIFICATE_VERIFY_FAILED", "certificate has expired"),
    "server_cert": ("UNSUPPORTED_CERTIFICATE", "CERTIFICATE_VERIFY_FAILED", "unsuitable certificate purpose"),
}


def _pick(client_certs: ClientCerts, case: str) -> CertPair | None:
    return None if case == "no_cert" else getattr(client_certs, case)


def test_required_serves_a_client_with_a_right_certificate(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts
) -> None:
    daemon = _mtls(start_daemon, certs, "required")
    alice = _assert_served(daemon, client_certs.right, "alice")
    # Without nick_from_cert, the certificate admits; it does not name.
    _assert_served(daemon, client_certs.right, "someone_else")
    alice.send("hello")
    assert alice.readline() == "JOIN #lobby someone_else"
    assert alice.readline() == "MSG #lobby alice hello"
    assert_healthy(daemon, "bob", cert=client_certs.other)


@pytest.mark.parametrize("case", REFUSED_WHEN_REQUIRED)
def test_required_refuses_during_the_handshake(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts, case: str
) -> None:
    daemon = _mtls(start_daemon, certs, "required")
    alert, error = _assert_refused(daemon, _pick(client_certs, case))
    # The client learns why from the TLS alert; the log says it too.
    assert REFUSALS[case][0] in alert, alert
    assert error.startswith(REFUSALS[case][1]), error
    assert_healthy(daemon, "bob", cert=client_certs.other)


def test_required_refuses_during_a_tls12_handshake(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts
) -> None:
    # With TLS 1.2 the server's verdict comes before the client's handshake ends.
    daemon = _mtls(start_daemon, certs, "required")
    for n, case in enumerate(REFUSED_WHEN_REQUIRED, 1):
        context = ssl.create_default_context(cafile=str(certs.ca))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        cert = _pick(client_certs, case)
        if cert is not None:
            context.load_cert_chain(*cert)
        with socket.create_connection((daemon.host, daemon.port), timeout=5) as raw:
            with pytest.raises(ssl.SSLError):
                context.wrap_socket(raw, server_hostname="localhost")
        wait_until(lambda: len(daemon.find_events("tls_handshake_failed")) == n, 5, f"{case} logged")
    assert not daemon.find_events("connect")
    assert_healthy(daemon, "bob", cert=client_certs.other)


def test_the_log_says_why_a_client_certificate_was_refused(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts
) -> None:
    daemon = _mtls(start_daemon, certs, "required")
    for case in ("wrong_ca", "expired", "server_cert"):
        _, error = _assert_refused(daemon, _pick(client_certs, case))
        assert REFUSALS[case][2] in error, (case, error)


def test_required_refusals_cost_a_connected_client_nothing(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts
) -> None:
    daemon = _mtls(start_daemon, certs, "required")
    alice = _assert_served(daemon, client_certs.right, "alice")
    for case in REFUSED_WHEN_REQUIRED:
        with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
            _connect(daemon, _pick(client_certs, case)).readline(timeout=5)
        alice.send(f"after {case}")
        assert alice.readline() == f"MSG #lobby alice after {case}"
    # Logged by the worker that refused it, which may not be alice's.
    wait_until(lambda: len(daemon.find_events("tls_handshake_failed")) == len(REFUSED_WHEN_REQUIRED), 5, "logged")
    assert_healthy(daemon, "bob", cert=client_certs.other)


# -- client_auth: optional ----------------------------------------------------------------


@pytest.mark.parametrize("case", ["no_cert", "right"])
def test_optional_serves_with_or_without_a_certificate(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts, case: str
) -> None:
    daemon = _mtls(start_daemon, certs, "optional")
    _assert_served(daemon, _pick(client_certs, case), "alice")
    assert not daemon.find_events("tls_handshake_failed")
    assert_healthy(daemon, "bob")


@pytest.mark.parametrize("case", ["wrong_ca", "expired", "server_cert"])
def test_optional_refuses_a_certificate_that_does_not_verify(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts, case: str
) -> None:
    daemon = _mtls(start_daemon, certs, "optional")
    alert, error = _assert_refused(daemon, _pick(client_certs, case))
    assert REFUSALS[case][0] in alert, alert
    assert error.startswith(REFUSALS[case][1]), error
    assert_healthy(daemon, "bob", cert=client_certs.other)
    assert_healthy(daemon, "carol")


# -- client_auth: none ----------------------------------------------------------------------


def _handshake_messages(daemon: Daemon, cert: CertPair | None, version: ssl.TLSVersion) -> set[Any]:
    """The handshake message types the client received from the daemon."""
    context = ssl.create_default_context(cafile=str(daemon.pki.ca))
    context.minimum_version = context.maximum_version = version
    if cert is not None:
        context.load_cert_chain(*cert)
    received: set[Any] = set()

    def seen(conn: Any, direction: str, version: Any, content_type: Any, msg_type: Any, data: Any) -> None:
        if direction == "read":
            received.add(msg_type)

    # CPython's private hook (used by its own test suite): the only way from Python
    # to see whether the server sent a CertificateRequest.
    context._msg_callback = seen  # type: ignore[attr-defined]
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            recv_greeting(tls)
    return received


@pytest.mark.skipif(not hasattr(ssl.SSLContext, "_msg_callback"), reason="needs ssl's message hook")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_certificate_request_is_sent_only_when_client_auth_is_on(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts, version: ssl.TLSVersion
) -> None:
    request = ssl._TLSMessageType.CERTIFICATE_REQUEST  # type: ignore[attr-defined]
    off = _mtls(start_daemon, certs, "none")
    assert request not in _handshake_messages(off, client_certs.right, version)
    on = _mtls(start_daemon, certs, "optional")
    assert request in _handshake_messages(on, client_certs.right, version)


@pytest.mark.parametrize("case", ["no_cert", "right", "wrong_ca", "expired", "server_cert"])
def test_none_never_asks_so_any_client_is_served(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts, case: str
) -> None:
    # The client holds a certificate, but is never asked for it: whatever it is, it
    # is never sent, never checked, and cannot cause a refusal.
    daemon = _mtls(start_daemon, certs, "none")
    _assert_served(daemon, _pick(client_certs, case), "alice")
    assert not daemon.find_events("tls_handshake_failed")
    assert_healthy(daemon, "bob")


# -- nick_from_cert ---------------------------------------------------------------------------


def test_nick_from_cert_allows_only_the_common_name(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts
) -> None:
    daemon = _mtls(start_daemon, certs, "required", nick_from_cert=True)
    client = _connect(daemon, client_certs.right)  # CN=alice
    client.expect_greeting()
    for wrong in ("bob", "Alice", "alice2"):
        client.send(wrong)
        assert client.readline().startswith("ERR nick_invalid ")
        assert client.readline() == "NICK"
    client.send("alice")
    client.expect("WELCOME alice ")
    client.nick = "alice"
    assert client.take_joins() == ["JOIN #lobby alice", "USERS #lobby alice", "HISTORY #lobby 0 end", "CURRENT #lobby"]
    client.send("/nick other")
    assert client.readline().startswith("ERR nick_invalid ")
    client.send("/nick ALICE")  # not even a change of case: the name is the certificate's
    assert client.readline().startswith("ERR nick_invalid ")
    client.send("/who")
    assert client.readline() == "USERS #lobby alice"
    client.send("still alice")
    assert client.readline() == "MSG #lobby alice still alice"
    assert not daemon.find_events("rename")
    assert_healthy(daemon, "bob", cert=client_certs.other)


def test_nick_from_cert_a_second_connection_with_the_same_cert_is_taken(
    start_daemon: Callable[..., Daemon], certs: PKI, client_certs: ClientCerts
) -> None:
    daemon = _mtls(start_daemon, certs, "required", nick_from_cert=True)
    _assert_served(daemon, client_certs.right, "alice")
    twin = _connect(daemon, client_certs.right)
    twin.expect_greeting()
    twin.send("alice")
    assert twin.readline().startswith("ERR nick_taken ")
    assert_healthy(daemon, "bob", cert=client_certs.other)
