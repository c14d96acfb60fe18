"""TLS: build the daemon's `ssl.SSLContext` from `TLSConfig`, failing fast.

Mozilla's "intermediate" profile: TLS 1.2 minimum (1.3 preferred), its
ECDHE AEAD cipher list for 1.2, no compression, no renegotiation, no session
tickets. Python 3.11 can narrow the key-exchange groups only to a single curve
with `set_ecdh_curve` (OpenSSL's default list would also offer X448 and P-521,
which the profile excludes), so `tls.ecdh_curve` picks one of the profile's
three. X25519 is the share modern clients send first, so they need no
HelloRetryRequest, and it is the cheapest handshake in OpenSSL 3.0;
prime256v1 serves clients without X25519 (Java 8, Windows 7, OpenSSL 1.0.2)
and TLS 1.2 clients with ECDSA certificates, whose curve TLS 1.2 requires
among the server's groups. `auto`, the default, is X25519, or prime256v1 when
`tls.client_auth` asks for certificates.

Tickets are off as in Mozilla's server configurations: a chat session lasts
hours, so resumption saves nothing, while each ticket costs the server an
encryption and the client a message at every connect.
"""

from __future__ import annotations

import ssl

from chatd.config import TLSConfig
from chatd.errors import ConfigError

# Mozilla intermediate (v5.7) TLS 1.2 suites, ECDHE only: chatd has no DH
# parameters, so the DHE suites of the profile could never be negotiated.
INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)

_CLIENT_AUTH = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def server_context(tls: TLSConfig, config_path: object = "config") -> ssl.SSLContext:
    """Return a server context for `tls`.

    Raises:
        ConfigError: a certificate or key that cannot be loaded, or that do not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    context.num_tickets = 0
    context.set_ecdh_curve(ecdh_curve(tls))
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"{config_path}: tls.cert: cannot load {tls.cert} with key {tls.key}: "
            f"{_reason(exc)} (is it a PEM certificate and its matching key?)"
        ) from exc
    context.verify_mode = _CLIENT_AUTH[tls.client_auth]
    if tls.client_ca is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{config_path}: tls.client_ca: cannot load {tls.client_ca}: {_reason(exc)}"
            ) from exc
    return context


def ecdh_curve(tls: TLSConfig) -> str:
    """The one key-exchange group the server offers."""
    if tls.ecdh_curve != "auto":
        return tls.ecdh_curve
    return "X25519" if tls.client_auth == "none" else "prime256v1"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def peer_common_name(peercert: dict[str, object] | None) -> str | None:
    """The subject CN of a verified peer certificate (`SSLSocket.getpeercert()`)."""
    if not peercert:
        return None
    subject = peercert.get("subject", ())
    for rdn in subject if isinstance(subject, tuple) else ():
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
