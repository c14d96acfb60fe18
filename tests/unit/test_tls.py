"""chatd/tls.py: the key-exchange groups a server context takes, and that groups
which did not take effect stop the start instead of falling back to OpenSSL's list."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from chatd import tls
from chatd.config import TLSConfig
from chatd.errors import ConfigError
from chatd.tls import accepts_only, server_context, set_groups
from tests.conftest import PKI

# The profile's groups, the one chatd uses to detect OpenSSL's default list, and
# another group of that default list.
PROBES = ("X25519", "prime256v1", "secp384r1", "X448", "secp521r1")
CONFIG = Path("/etc/chatd/chatd.yaml")


def _server(certs: PKI) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    return context


def _accepted(context: ssl.SSLContext) -> set[str]:
    return {group for group in PROBES if accepts_only(context, group)}


def test_openssl_default_list_is_wider_than_the_profile(certs: PKI) -> None:
    # What set_groups narrows, and proof that the probe tells the difference.
    assert _accepted(_server(certs)) == set(PROBES)


@pytest.mark.parametrize(
    "groups",
    [("X25519", "prime256v1", "secp384r1"), ("secp384r1",), ("prime256v1", "X25519"), ("X25519",)],
)
def test_set_groups_offers_exactly_the_list(certs: PKI, groups: tuple[str, ...]) -> None:
    context = _server(certs)
    set_groups(context, groups)
    assert _accepted(context) == set(groups)


def test_set_groups_reports_a_list_openssl_refuses(certs: PKI) -> None:
    with pytest.raises(OSError, match="OpenSSL refused the groups list 'X25519:bogus'"):
        set_groups(_server(certs), ["X25519", "bogus"])


def test_set_groups_uses_the_ssl_module_where_it_can(certs: PKI) -> None:
    calls = []

    class NativeContext(ssl.SSLContext):  # as on Python 3.15, which has SSLContext.set_groups
        def set_groups(self, names: str) -> None:
            calls.append(names)

    set_groups(NativeContext(ssl.PROTOCOL_TLS_SERVER), ["X25519", "prime256v1"])
    assert calls == ["X25519:prime256v1"]


def _tls_config(certs: PKI, **kwargs: object) -> TLSConfig:
    return TLSConfig(cert=certs.server_cert, key=certs.server_key, **kwargs)  # type: ignore[arg-type]


def test_server_context_fails_when_the_groups_did_not_take(certs: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "set_groups", lambda context, groups: None)  # OpenSSL's default list stays
    with pytest.raises(ConfigError) as info:
        server_context(_tls_config(certs), CONFIG)
    assert str(info.value) == (
        f"{CONFIG}: tls.groups: OpenSSL did not take X25519, prime256v1, secp384r1: "
        "a client offering only X448 was accepted"
    )


def test_server_context_fails_when_openssl_cannot_be_reached(certs: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(context: ssl.SSLContext, groups: object) -> None:
        raise ValueError("cannot find the OpenSSL context of this Python's SSLContext")

    monkeypatch.setattr(tls, "set_groups", unreachable)
    with pytest.raises(ConfigError, match=r"tls.groups: cannot offer X25519, prime256v1, secp384r1: cannot find"):
        server_context(_tls_config(certs), CONFIG)


@pytest.mark.parametrize("client_auth", ["none", "optional", "required"])
def test_server_context_offers_the_profile_by_default(certs: PKI, client_auth: str) -> None:
    # With client certificates too: prime256v1 is in the list, which is what a TLS 1.2
    # client with a P-256 certificate needs, so there is no special case any more.
    ca = certs.ca if client_auth != "none" else None
    context = server_context(_tls_config(certs, client_auth=client_auth, client_ca=ca), CONFIG)
    assert _accepted(context) == {"X25519", "prime256v1", "secp384r1"}


@pytest.mark.parametrize("groups", [("secp384r1",), ("prime256v1", "X25519")])
def test_server_context_offers_tls_groups(certs: PKI, groups: tuple[str, ...]) -> None:
    assert _accepted(server_context(_tls_config(certs, groups=groups), CONFIG)) == set(groups)
