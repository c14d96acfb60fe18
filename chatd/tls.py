"""TLS: build the daemon's `ssl.SSLContext` from `TLSConfig`, failing fast.

Mozilla's "intermediate" profile: TLS 1.2 minimum (1.3 preferred), its
ECDHE AEAD cipher list for 1.2, its three key-exchange groups, no compression,
no renegotiation, no session tickets.

Key exchange: `tls.groups`, by default the profile's X25519, prime256v1 and
secp384r1, in that order. X25519 is the share modern clients send first, so
they need no HelloRetryRequest, and the cheapest handshake in OpenSSL 3.0;
prime256v1 serves clients without X25519 (Java 8, Windows 7, OpenSSL 1.0.2,
socat, which offers only P-256) and TLS 1.2 clients with ECDSA certificates,
whose curve TLS 1.2 requires among the server's groups. OpenSSL's own default
list would also offer X448, P-521 and finite-field groups, which the profile
excludes. Python before 3.15 can set only one group (`set_ecdh_curve`), so
`set_groups` calls OpenSSL's `SSL_CTX_set1_groups_list` through ctypes there.
Either way `server_context` then checks, with handshakes in memory, that the
context takes a client offering only one group for each listed group and
refuses one offering only a group outside them: a list that did not take
effect is a `ConfigError`, never a silent fallback to OpenSSL's default.

ALPN: with the web client on (`web.enabled`), the context offers `http/1.1`,
so that a browser (which offers it) gets HTTP on the same port as line
clients (which offer no ALPN); see docs/architecture.md, "One port".

Tickets are off as in Mozilla's server configurations: a chat session lasts
hours, so resumption saves nothing, while each ticket costs the server an
encryption and the client a message at every connect.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Sequence
from pathlib import Path

from chatd.certdates import first_not_after
from chatd.config import TLSConfig
from chatd.config_values import GROUPS
from chatd.errors import ConfigError
from chatd.openssl import SSL_CTRL_SET_GROUPS_LIST, libssl, release_buffers_mode, release_unavailable, ssl_ctx

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

# A group in OpenSSL's default list and in no Mozilla profile: a context that
# accepts a client offering only this one did not take the list it was given.
_OUTSIDE_GROUP = "X448"

# The one ALPN protocol chatd speaks besides its line protocol (which has no ALPN name).
HTTP_ALPN = "http/1.1"

_CLIENT_AUTH = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def server_context(tls: TLSConfig, config_path: object = "config", web: bool = False) -> ssl.SSLContext:
    """Return a server context for `tls`; with `web`, offering ALPN `http/1.1`.

    Raises:
        ConfigError: a certificate or key that cannot be loaded, or that do not
            match; groups that cannot be set, or that did not take effect.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    context.num_tickets = 0
    if web:
        context.set_alpn_protocols([HTTP_ALPN])
    _apply_groups(context, tls.groups, config_path)
    with contextlib.suppress(ValueError, AttributeError, OSError):
        release_buffers_mode(context)  # CPython sets it already; `memory_warnings` says if not
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
            raise ConfigError(f"{config_path}: tls.client_ca: cannot load {tls.client_ca}: {_reason(exc)}") from exc
    _check_groups(context, tls.groups, config_path)  # needs the certificate loaded
    return context


def set_groups(context: ssl.SSLContext, groups: Sequence[str]) -> None:
    """Make `context` offer exactly `groups`, the first preferred.

    Raises:
        OSError: OpenSSL refused the list (`ssl.SSLError` on Python 3.15+).
        ValueError: this Python's `SSLContext` could not be reached through ctypes.
        AttributeError: this Python's OpenSSL does not export `SSL_CTX_ctrl`.
    """
    names = ":".join(groups)
    native = getattr(context, "set_groups", None)  # Python 3.15+
    if native is not None:
        native(names)
        return
    # SSL_CTX_set1_groups_list(ctx, list) is a macro for this call (openssl.py).
    if libssl().SSL_CTX_ctrl(ssl_ctx(context), SSL_CTRL_SET_GROUPS_LIST, 0, names.encode()) != 1:
        raise OSError(f"OpenSSL refused the groups list {names!r}")


def memory_warnings(context: ssl.SSLContext) -> list[str]:
    """What makes each connection hold more memory than it needs here, in
    words for the log (the server logs each as `tls_buffers_kept` at start);
    empty when nothing does (docs/architecture.md, "Memory per connection")."""
    warnings = []
    try:
        if not release_buffers_mode(context):
            warnings.append("OpenSSL refused SSL_MODE_RELEASE_BUFFERS: each connection keeps two 16 KiB record buffers")
    except (ValueError, AttributeError, OSError) as exc:
        warnings.append(f"SSL_MODE_RELEASE_BUFFERS could not be checked: {_reason(exc)}")
    reason = release_unavailable()
    if reason:
        warnings.append(f"idle connections keep their memory BIOs' buffers: {reason}")
    return warnings


def _apply_groups(context: ssl.SSLContext, groups: Sequence[str], config_path: object) -> None:
    try:
        set_groups(context, groups)
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{config_path}: tls.groups: cannot offer {', '.join(groups)}: {_reason(exc)}") from exc


def _check_groups(context: ssl.SSLContext, groups: Sequence[str], config_path: object) -> None:
    """Fail unless `context` accepts exactly `groups` among the profile's and X448."""
    for group in (*GROUPS, _OUTSIDE_GROUP):
        accepted = accepts_only(context, group)
        if accepted is None and group not in groups:
            continue  # this OpenSSL lacks the group, so no client can offer it
        if accepted != (group in groups):
            seen = {True: "accepted", False: "refused", None: "could not be made"}[accepted]
            raise ConfigError(
                f"{config_path}: tls.groups: OpenSSL did not take {', '.join(groups)}: "
                f"a client offering only {group} was {seen}"
            )


def accepts_only(context: ssl.SSLContext, group: str) -> bool | None:
    """Whether server `context` answers a TLS 1.3 ClientHello offering only `group`.

    The server is driven, in memory, up to its first flight: without the group
    it fails there (no shared group); with it, it sends ServerHello to
    Finished and waits for the client. No certificate is checked on either
    side, so the answer does not depend on `tls.client_auth`.

    Returns:
        None if this OpenSSL cannot make a client offering only `group`.
    """
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        client.set_ecdh_curve(group)  # a client may offer one group, which is all this needs
    except (ValueError, ssl.SSLError):
        return None
    client_out, server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_end = client.wrap_bio(ssl.MemoryBIO(), client_out)
    with contextlib.suppress(ssl.SSLWantReadError):
        client_end.do_handshake()
    server_in.write(client_out.read())
    server_end = context.wrap_bio(server_in, server_out, server_side=True)
    try:
        server_end.do_handshake()
    except ssl.SSLWantReadError:
        return server_out.pending > 0
    except ssl.SSLError:
        return False
    return True


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


def certificate_expiry(path: Path) -> float | None:
    """When the first certificate in `path` (the server's own, before its
    chain) expires, as Unix time; None if it cannot be read or parsed.

    Called after `server_context` has loaded the same file, so a None here
    means it changed in between; the metric is then left out until the next
    reload rather than failing the start or the reload over it.
    """
    try:
        return first_not_after(path.read_bytes())
    except (OSError, ValueError):
        return None
