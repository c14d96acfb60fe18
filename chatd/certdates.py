"""When a PEM certificate expires, read from its DER without an X.509 library.

The daemon needs one field of its own certificate, `notAfter`, for the
`chatd_tls_cert_expiry_timestamp_seconds` metric. `cryptography` would read it
in one call, but importing it costs every chatd process about 9 MiB of RSS
(its own OpenSSL bindings beside the `ssl` module's): a fifth of an idle
daemon, for one date. So this walks the DER (RFC 5280, 4.1) to it: the
certificate, its `tbsCertificate`, past the version, serial number, signature
algorithm and issuer, into `validity`, past `notBefore`. chatctl, which makes
certificates, still uses `cryptography`.

The file is the operator's own, already loaded by `ssl`; still, every length
is checked against what is there, and anything unexpected is a `ValueError`.
"""

from __future__ import annotations

import base64
import calendar
import re
from typing import Final, NamedTuple

_PEM: Final = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)
_SEQUENCE: Final = 0x30
_VERSION: Final = 0xA0  # [0] EXPLICIT, present from X.509 v2 on
_UTC_TIME: Final = 0x17
_GENERALIZED_TIME: Final = 0x18


class _Element(NamedTuple):
    tag: int
    start: int  # of its contents
    end: int  # just past them


def first_not_after(pem: bytes) -> float:
    """The `notAfter` of the first certificate in `pem`, as Unix time.

    Raises:
        ValueError: no certificate, or one that is not well-formed DER.
    """
    found = _PEM.search(pem)
    if found is None:
        raise ValueError("no PEM certificate found")
    der = base64.b64decode(b"".join(found.group(1).split()), validate=True)
    certificate = _element(der, 0, len(der), _SEQUENCE)
    tbs = _element(der, certificate.start, certificate.end, _SEQUENCE)
    position = tbs.start
    if position < tbs.end and der[position] == _VERSION:
        position = _element(der, position, tbs.end).end
    for _ in range(3):  # serialNumber, signature, issuer
        position = _element(der, position, tbs.end).end
    validity = _element(der, position, tbs.end, _SEQUENCE)
    not_before = _element(der, validity.start, validity.end)
    not_after = _element(der, not_before.end, validity.end)
    return _time(not_after.tag, der[not_after.start : not_after.end])


def _element(der: bytes, position: int, limit: int, expected: int | None = None) -> _Element:
    """The DER element at `position`, which must end by `limit`."""
    if position + 2 > limit:
        raise ValueError("truncated certificate")
    tag, length = der[position], der[position + 1]
    start = position + 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4 or start + size > limit:
            raise ValueError("bad length in certificate")
        length = int.from_bytes(der[start : start + size], "big")
        start += size
    if start + length > limit:
        raise ValueError("truncated certificate")
    if expected is not None and tag != expected:
        raise ValueError(f"expected DER tag {expected:#x} in certificate, found {tag:#x}")
    return _Element(tag, start, start + length)


def _time(tag: int, value: bytes) -> float:
    """A UTCTime (`YYMMDDHHMMSSZ`; 1950-2049) or GeneralizedTime
    (`YYYYMMDDHHMMSSZ`), as RFC 5280 has certificates write them."""
    text = value.decode("ascii")
    if tag == _UTC_TIME and len(text) == 13:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME or len(text) != 15:
        raise ValueError(f"unexpected time in certificate: {text!r}")
    if not text.endswith("Z") or not text[:14].isdigit():
        raise ValueError(f"unexpected time in certificate: {text!r}")
    fields = (text[0:4], text[4:6], text[6:8], text[8:10], text[10:12], text[12:14])
    return float(calendar.timegm(tuple(int(field) for field in fields)))
