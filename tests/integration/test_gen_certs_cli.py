"""`chatctl gen-certs` as a user runs it, and the files it writes used for real TLS."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0


def gen_certs(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatctl", "gen-certs", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "pki"
    result = gen_certs(out, "--client", "alice")
    assert result.returncode == 0, result.stderr
    return out


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[object, object]:
    """TLS over a socketpair, server side in a thread; returns what each side saw of the other."""
    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(TIMEOUT)
    client_sock.settimeout(TIMEOUT)
    outcome: dict[str, object] = {}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(server_sock, server_side=True) as tls:
                outcome["peer"] = tls.getpeercert()
                tls.sendall(tls.recv(4) + b" pong")
        except (OSError, ssl.SSLError) as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=serve, name="tls-server")
    thread.start()
    try:
        with client_ctx.wrap_socket(client_sock, server_hostname="localhost") as tls:
            tls.sendall(b"ping")
            reply = tls.recv(64)
            server_cert = tls.getpeercert()
    finally:
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome["error"]
    assert reply == b"ping pong"
    return server_cert, outcome["peer"]


def test_writes_ca_server_and_client_files(pki: Path) -> None:
    names = ["ca", "server", "client-alice"]
    assert sorted(path.name for path in pki.iterdir()) == sorted(
        f"{name}{ext}" for name in names for ext in (".crt", ".key")
    )


def test_output_and_exit_status(tmp_path: Path) -> None:
    result = gen_certs(tmp_path / "pki", "--client", "bob", "--days", "30")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    names = ["ca.key", "ca.crt", "server.key", "server.crt", "client-bob.key", "client-bob.crt"]
    assert [line.split()[1] for line in lines] == [str(tmp_path / "pki" / name) for name in names]
    assert all(line.startswith("wrote ") for line in lines)


def test_python_ssl_loads_the_server_files(pki: Path) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.crt", pki / "server.key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(pki / "client-alice.crt", pki / "client-alice.key")


def client_context(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
    return ctx


def test_tls_handshake_verifies_localhost(pki: Path) -> None:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki / "server.crt", pki / "server.key")
    server_cert, _ = handshake(server_ctx, client_context(pki))
    assert isinstance(server_cert, dict)
    assert ("DNS", "localhost") in server_cert["subjectAltName"]


def test_tls_handshake_with_client_certificate(pki: Path) -> None:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki / "server.crt", pki / "server.key")
    server_ctx.load_verify_locations(pki / "ca.crt")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    client_ctx = client_context(pki)
    client_ctx.load_cert_chain(pki / "client-alice.crt", pki / "client-alice.key")
    _, client_cert = handshake(server_ctx, client_ctx)
    assert isinstance(client_cert, dict)
    assert (("commonName", "alice"),) in client_cert["subject"]


def test_second_run_adds_a_client_without_force(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert gen_certs(out).returncode == 0
    ca_before = (out / "ca.crt").read_bytes()
    server_before = (out / "server.crt").read_bytes()
    result = gen_certs(out, "--client", "bob")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert (out / "ca.crt").read_bytes() == ca_before
    assert (out / "server.crt").read_bytes() == server_before
    ca_file, client_file = out / "ca.crt", out / "client-bob.crt"
    verify = subprocess.run(
        ["openssl", "verify", "-purpose", "sslclient", "-CAfile", ca_file, client_file],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert gen_certs(out).returncode == 0
    result = gen_certs(out)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("chatctl: error: ")
    assert str(out / "server.crt") in result.stderr and "--force" in result.stderr
    forced = gen_certs(out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert [line.split()[1] for line in forced.stdout.splitlines()] == [
        str(out / "server.key"),
        str(out / "server.crt"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--client", "bad name"), "--client 'bad name': must be a chat nickname"),
        (("--days", "0"), "--days must be 1..365"),
        (("--days", "366"), "--days must be 1..365"),
        (("--host", "not a host"), "--host 'not a host'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    out = tmp_path / "pki"
    result = gen_certs(out, "--client", "alice", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("chatctl: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_a_second_spelling_of_a_client_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert gen_certs(out, "--client", "alice").returncode == 0
    result = gen_certs(out, "--client", "Alice", "--force")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"chatctl: error: --client 'Alice': {out / 'client-alice.crt'} is already there")
    assert "use --client alice" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(path.name for path in out.glob("client-*")) == ["client-alice.crt", "client-alice.key"]


def test_half_present_ca_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert gen_certs(out).returncode == 0
    (out / "ca.key").unlink()
    result = gen_certs(out, "--client", "bob")
    assert result.returncode == 2
    assert f"{out / 'ca.crt'} exists but {out / 'ca.key'} does not" in result.stderr
    assert not (out / "client-bob.crt").exists()


def test_help_explains_force_and_ca_reuse() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatctl", "gen-certs", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "reused even with --force" in text
    assert "1..365" in text
