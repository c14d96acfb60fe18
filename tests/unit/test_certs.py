"""chatctl.certs: what the certificates contain, how files are written, and refusals."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chatctl import certs, gencerts
from chatctl.certs import (
    CertError,
    issue_ca,
    issue_client_cert,
    issue_server_cert,
    load_ca,
    write_pki,
)

CertAndKey = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
E = TypeVar("E", bound=x509.ExtensionType)


@pytest.fixture(scope="module")
def ca() -> CertAndKey:
    return issue_ca()


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Keys must come out 0600 without help from the umask."""
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def common_name(cert: x509.Certificate) -> object:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def openssl_verify(ca_file: Path, cert_file: Path, purpose: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", purpose, "-CAfile", ca_file, cert_file],
        capture_output=True,
        text=True,
        timeout=30,
    )


# --- certificate contents -------------------------------------------------------------------


def test_ca_constraints_and_key_usage(ca: CertAndKey) -> None:
    cert, key = ca
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    assert cert.subject == cert.issuer
    assert common_name(cert) == "chatd development CA"
    cert.verify_directly_issued_by(cert)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=3649) < lifetime <= dt.timedelta(days=3650)


def test_ca_common_name_is_configurable() -> None:
    cert, _ = issue_ca("test CA")
    assert common_name(cert) == "test CA"


def check_leaf(cert: x509.Certificate, ca: CertAndKey, usage: x509.ObjectIdentifier) -> None:
    ca_cert, _ = ca
    cert.verify_directly_issued_by(ca_cert)
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    key_usage = ext(cert, x509.KeyUsage)
    assert key_usage.critical
    assert key_usage.value.digital_signature
    assert not key_usage.value.key_cert_sign and not key_usage.value.crl_sign
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [usage]
    ca_ski = ext(ca_cert, x509.SubjectKeyIdentifier).value
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski.digest
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def test_server_cert_default_hosts(ca: CertAndKey) -> None:
    cert, _ = issue_server_cert(*ca, certs.DEFAULT_HOSTS)
    check_leaf(cert, ca, ExtendedKeyUsageOID.SERVER_AUTH)
    sans = ext(cert, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]


def test_server_cert_custom_hosts(ca: CertAndKey) -> None:
    hosts = ["chat.example.org", "Chat.Example.org", "10.0.0.5", "2001:db8::1", "bücher.example"]
    cert, _ = issue_server_cert(*ca, hosts)
    sans = ext(cert, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "chat.example.org",
        "xn--bcher-kva.example",
    ]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("2001:db8::1"),
    ]


@pytest.mark.parametrize(
    "host",
    ["", "exa mple.org", "-bad.example", "a..b", "example.org.", "x" * 64 + ".org", "fe80::1%eth0"],
)
def test_server_cert_rejects_bad_hosts(ca: CertAndKey, host: str) -> None:
    with pytest.raises(CertError, match="--host"):
        issue_server_cert(*ca, [host])


def test_server_cert_needs_a_host(ca: CertAndKey) -> None:
    with pytest.raises(CertError, match="at least one --host"):
        issue_server_cert(*ca, [])


def test_client_cert(ca: CertAndKey) -> None:
    cert, _ = issue_client_cert(*ca, "alice_2-x")
    check_leaf(cert, ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    assert common_name(cert) == "alice_2-x"


@pytest.mark.parametrize("name", ["", "a" * 33, "bob smith", "../bob", "bob.x", "zoë"])
def test_client_cert_rejects_bad_names(ca: CertAndKey, name: str) -> None:
    with pytest.raises(CertError, match="must be a chat nickname"):
        issue_client_cert(*ca, name)


def test_keys_are_p256_and_signatures_sha256(ca: CertAndKey) -> None:
    issued = [ca, issue_server_cert(*ca, ["localhost"]), issue_client_cert(*ca, "bob")]
    for cert, key in issued:
        assert isinstance(key.curve, ec.SECP256R1)
        public_key = cert.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert isinstance(public_key.curve, ec.SECP256R1)
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


def test_serials_are_random_and_positive(ca: CertAndKey) -> None:
    serials = {issue_client_cert(*ca, "bob")[0].serial_number for _ in range(5)}
    assert len(serials) == 5
    assert all(0 < serial < 2**159 for serial in serials)


@pytest.mark.parametrize("days", [1, 30, 365])
def test_leaf_validity(ca: CertAndKey, days: int) -> None:
    now = dt.datetime.now(dt.UTC)
    leaves = [
        issue_server_cert(*ca, ["localhost"], days=days),
        issue_client_cert(*ca, "bob", days=days),
    ]
    for cert, _ in leaves:
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=days)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=365)
        skew = now - cert.not_valid_before_utc
        assert dt.timedelta(minutes=59) <= skew <= dt.timedelta(minutes=61)  # tolerates clock skew
        assert cert.not_valid_after_utc > now + dt.timedelta(days=days) - dt.timedelta(hours=2)


@pytest.mark.parametrize("days", [0, -1, 366, 3650])
def test_leaf_validity_out_of_range(ca: CertAndKey, days: int) -> None:
    with pytest.raises(CertError, match=r"--days must be 1\.\.365"):
        issue_client_cert(*ca, "bob", days=days)


def test_leaf_may_not_outlive_the_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(certs, "_CA_DAYS", 10)
    short_ca = issue_ca()
    issue_client_cert(*short_ca, "bob", days=9)
    with pytest.raises(CertError, match=r"the CA expires on .*remove ca.crt and ca.key"):
        issue_client_cert(*short_ca, "bob", days=30)


# --- write_pki: files, modes, reuse, refusals -----------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
def test_write_pki_files_and_modes(tmp_path: Path) -> None:
    out = tmp_path / "new" / "pki"
    written = write_pki(out, clients=["alice", "bob"])
    names = ["ca", "server", "client-alice", "client-bob"]
    assert written == [out / f"{stem}{ext}" for stem in names for ext in (".key", ".crt")]
    # Nothing else, in particular no temporary files, is left behind.
    assert sorted(os.listdir(out)) == sorted(path.name for path in written)
    assert mode(out) == 0o700
    for path in written:
        assert mode(path) == (0o600 if path.suffix == ".key" else 0o644), path
    for path in out.glob("*.key"):
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8, unencrypted


def test_write_pki_with_a_strict_umask_still_writes_certs_0644(tmp_path: Path) -> None:
    old = os.umask(0o277)
    try:
        written = write_pki(tmp_path / "pki")
    finally:
        os.umask(old)
    assert mode(tmp_path / "pki") == 0o700
    assert {path.name: mode(path) for path in written} == {
        "ca.key": 0o600,
        "ca.crt": 0o644,
        "server.key": 0o600,
        "server.crt": 0o644,
    }


def test_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o750)
    write_pki(tmp_path)
    assert mode(tmp_path) == 0o750


def test_openssl_verifies_the_chain_and_purposes(tmp_path: Path) -> None:
    write_pki(tmp_path, clients=["alice"])
    ca_file = tmp_path / "ca.crt"
    pairs = [(tmp_path / "server.crt", "sslserver"), (tmp_path / "client-alice.crt", "sslclient")]
    for cert_file, purpose in pairs:
        result = openssl_verify(ca_file, cert_file, purpose)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == f"{cert_file}: OK"
    # The EKUs restrict each certificate to its role.
    assert openssl_verify(ca_file, tmp_path / "server.crt", "sslclient").returncode != 0
    assert openssl_verify(ca_file, tmp_path / "client-alice.crt", "sslserver").returncode != 0


def test_second_run_adds_a_client_signed_by_the_same_ca(tmp_path: Path) -> None:
    write_pki(tmp_path, clients=["alice"])
    before = snapshot(tmp_path)
    written = write_pki(tmp_path, clients=["bob"])
    assert written == [tmp_path / "client-bob.key", tmp_path / "client-bob.crt"]
    after = snapshot(tmp_path)
    assert {name: after[name] for name in before} == before  # CA, server and alice untouched
    ca_cert, _ = load_ca(tmp_path) or pytest.fail("no CA")
    bob = x509.load_pem_x509_certificate(after["client-bob.crt"])
    bob.verify_directly_issued_by(ca_cert)
    result = openssl_verify(tmp_path / "ca.crt", tmp_path / "client-bob.crt", "sslclient")
    assert result.returncode == 0, result.stdout + result.stderr


def test_explicit_host_with_client_replaces_server_only_with_force(tmp_path: Path) -> None:
    write_pki(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(CertError, match=r"server.crt"):
        write_pki(tmp_path, hosts=["chat.example.org"], clients=["bob"])
    assert snapshot(tmp_path) == before
    written = write_pki(tmp_path, hosts=["chat.example.org"], clients=["bob"], force=True)
    assert [path.name for path in written] == [
        "server.key",
        "server.crt",
        "client-bob.key",
        "client-bob.crt",
    ]
    server = x509.load_pem_x509_certificate((tmp_path / "server.crt").read_bytes())
    sans = ext(server, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["chat.example.org"]


def test_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    write_pki(tmp_path, clients=["alice"])
    before = snapshot(tmp_path)
    with pytest.raises(CertError) as excinfo:
        write_pki(tmp_path, clients=["bob", "alice"])
    message = str(excinfo.value)
    assert str(tmp_path / "client-alice.crt") in message
    assert "--force" in message and "another --out" in message
    assert snapshot(tmp_path) == before  # not even client-bob
    with pytest.raises(CertError, match=r"server.crt.*--force"):
        write_pki(tmp_path)  # a plain second run
    assert snapshot(tmp_path) == before


def test_a_client_name_that_differs_only_in_case_is_refused(tmp_path: Path) -> None:
    write_pki(tmp_path, clients=["alice"])
    before = snapshot(tmp_path)
    for force in (False, True):  # --force replaces files; it does not make two spellings one
        with pytest.raises(CertError) as excinfo:
            write_pki(tmp_path, clients=["bob", "ALICE"], force=force)
        message = str(excinfo.value)
        assert message.startswith("--client 'ALICE': ")
        assert str(tmp_path / "client-alice.crt") in message and "ignore case" in message
        assert "--client alice" in message
        assert snapshot(tmp_path) == before  # not even client-bob
    # The same spelling is the same person: a new certificate with --force.
    assert write_pki(tmp_path, clients=["alice"], force=True)[-1] == tmp_path / "client-alice.crt"


def test_force_replaces_leaves_but_reuses_the_ca(tmp_path: Path) -> None:
    write_pki(tmp_path, clients=["alice"])
    before = snapshot(tmp_path)
    written = write_pki(tmp_path, clients=["alice"], force=True)
    assert [path.name for path in written] == ["client-alice.key", "client-alice.crt"]
    after = snapshot(tmp_path)
    assert after["client-alice.key"] != before["client-alice.key"]
    assert {name: after[name] for name in ("ca.crt", "ca.key", "server.crt", "server.key")} == {
        name: before[name] for name in ("ca.crt", "ca.key", "server.crt", "server.key")
    }
    written = write_pki(tmp_path, force=True)
    assert [path.name for path in written] == ["server.key", "server.crt"]
    assert snapshot(tmp_path)["ca.crt"] == before["ca.crt"]
    assert openssl_verify(tmp_path / "ca.crt", tmp_path / "server.crt", "sslserver").returncode == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clients": ["ok", "not ok"]}, "--client 'not ok': must be a chat nickname"),
        ({"clients": ["bob", "Bob"]}, "given twice"),
        ({"days": 0}, r"--days must be 1\.\.365 .*\(got 0\)"),
        ({"days": 366}, r"--days must be 1\.\.365 .*\(got 366\)"),
        ({"hosts": ["bad host"]}, "--host 'bad host'"),
        ({"hosts": []}, "at least one --host"),
    ],
)
def test_bad_input_writes_nothing(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    out = tmp_path / "pki"
    with pytest.raises(CertError, match=match):
        write_pki(out, **kwargs)  # type: ignore[arg-type]
    assert not out.exists()


@pytest.mark.parametrize(("present", "missing"), [("ca.crt", "ca.key"), ("ca.key", "ca.crt")])
def test_half_present_ca_is_refused(tmp_path: Path, present: str, missing: str) -> None:
    write_pki(tmp_path)
    (tmp_path / missing).unlink()
    before = snapshot(tmp_path)
    with pytest.raises(CertError, match=f"{present} exists but .*{missing} does not"):
        write_pki(tmp_path, clients=["bob"], force=True)
    assert snapshot(tmp_path) == before


def test_out_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CertError, match="not a directory"):
        write_pki(tmp_path / "file")


# --- load_ca ----------------------------------------------------------------------------------


def test_load_ca_none_and_roundtrip(tmp_path: Path) -> None:
    assert load_ca(tmp_path) is None
    write_pki(tmp_path)
    loaded = load_ca(tmp_path)
    assert loaded is not None
    cert, key = loaded
    assert cert.public_bytes(serialization.Encoding.PEM) == (tmp_path / "ca.crt").read_bytes()
    assert key.public_key() == cert.public_key()


def test_load_ca_rejects_unusable_files(tmp_path: Path, ca: CertAndKey) -> None:
    write_pki(tmp_path, clients=["alice"])
    ca_crt, ca_key = tmp_path / "ca.crt", tmp_path / "ca.key"
    good_crt, good_key = ca_crt.read_bytes(), ca_key.read_bytes()

    other_key = ca[1].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_key.write_bytes(other_key)
    with pytest.raises(CertError, match=r"ca.key is not the key of"):
        load_ca(tmp_path)
    ca_key.write_bytes(b"garbage")
    with pytest.raises(CertError, match="not an unencrypted PEM private key"):
        load_ca(tmp_path)
    ca_key.write_bytes(good_key)

    ca_crt.write_bytes((tmp_path / "client-alice.crt").read_bytes())
    with pytest.raises(CertError, match="not a CA certificate"):
        load_ca(tmp_path)
    ca_crt.write_bytes(b"garbage")
    with pytest.raises(CertError, match="not a PEM certificate"):
        load_ca(tmp_path)
    ca_crt.write_bytes(good_crt)
    assert load_ca(tmp_path) is not None


# --- the subcommand's run() ---------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chatctl gen-certs")
    gencerts.add_arguments("gen-certs", parser)
    return parser.parse_args(argv)


def test_run_prints_one_line_per_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gencerts.run(parse("--out", str(tmp_path), "--client", "alice")) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert len(lines) == 6
    assert lines[0].startswith(f"wrote {tmp_path / 'ca.key'} ")
    assert lines[-1] == f"wrote {tmp_path / 'client-alice.crt'} (client alice certificate)"


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (("--client", "no way"), "must be a chat nickname"),
        (("--days", "400"), r"--days must be 1\.\.365"),
    ],
)
def test_run_reports_errors_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], match: str
) -> None:
    assert gencerts.run(parse("--out", str(tmp_path / "pki"), *argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("chatctl: error: ")
    assert captured.err.count("\n") == 1
    assert re.search(match, captured.err)
    assert not (tmp_path / "pki").exists()


def test_a_str_is_not_a_list_of_hosts_or_clients(ca: CertAndKey, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not the str"):
        issue_server_cert(*ca, "localhost")
    with pytest.raises(TypeError, match="not the str"):
        write_pki(tmp_path, clients="bob")
