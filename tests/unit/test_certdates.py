"""chatd.certdates: the expiry read from the DER is the one `cryptography` reads,
for both ways X.509 writes a date; a chain gives its first certificate's; what
is not a well-formed certificate is a ValueError. And the daemon does not load
`cryptography` at all (the reason the module exists)."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chatd.certdates import first_not_after
from tests.support import REPO

UTC = dt.UTC


def _pem(not_after: dt.datetime, name: str = "chatd test", serial: int = 1) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    "not_after",
    [
        dt.datetime(2027, 3, 4, 5, 6, 7, tzinfo=UTC),  # UTCTime (before 2050)
        dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),  # the last UTCTime
        dt.datetime(2050, 1, 1, 0, 0, 0, tzinfo=UTC),  # GeneralizedTime from 2050 on
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),  # RFC 5280's "no expiry"
    ],
)
def test_the_date_is_the_one_cryptography_reads(not_after: dt.datetime) -> None:
    pem = _pem(not_after, serial=2**150)  # a long serial: a two-byte length before it
    expected = x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp()
    assert first_not_after(pem) == expected == not_after.timestamp()


def test_a_chain_gives_its_first_certificates_date() -> None:
    leaf = _pem(dt.datetime(2028, 1, 1, tzinfo=UTC), "leaf")
    issuer = _pem(dt.datetime(2040, 1, 1, tzinfo=UTC), "issuer")
    assert first_not_after(b"comment\n" + leaf + issuer) == dt.datetime(2028, 1, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",  # not base64
        b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",  # an empty SEQUENCE
        b"-----BEGIN CERTIFICATE-----\nAgEB\n-----END CERTIFICATE-----\n",  # an INTEGER
    ],
)
def test_what_is_no_certificate_is_a_value_error(pem: bytes) -> None:
    with pytest.raises(ValueError):
        first_not_after(pem)


def test_every_cut_of_a_certificate_is_a_value_error() -> None:
    """A certificate cut short anywhere before its validity ends, re-encoded
    as PEM: never an IndexError, never a date read from what is not there."""
    der = x509.load_pem_x509_certificate(_pem(dt.datetime(2030, 1, 1, tzinfo=UTC))).public_bytes(
        serialization.Encoding.DER
    )
    for cut in range(0, 160):
        pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der[:cut]) + b"-----END CERTIFICATE-----\n"
        with pytest.raises(ValueError):
            first_not_after(pem)


def test_the_daemon_does_not_load_cryptography() -> None:
    """chatd.cli and everything it imports: `cryptography` costs ~9 MiB of RSS
    per process (chatctl, which makes certificates, may load it)."""
    code = "import sys, chatd.cli, chatd.server; print(sorted(m for m in sys.modules if m.startswith('cryptography')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
