"""The key-exchange group chatd offers for each setting of tls.ecdh_curve."""

from __future__ import annotations

import pytest

from chatd.config import TLSConfig
from chatd.tls import ecdh_curve


@pytest.mark.parametrize(
    ("setting", "client_auth", "offered"),
    [
        ("auto", "none", "X25519"),
        # TLS 1.2 needs an ECDSA client certificate's curve among the server's groups.
        ("auto", "optional", "prime256v1"),
        ("auto", "required", "prime256v1"),
        ("X25519", "required", "X25519"),  # the operator's choice stands
        ("secp384r1", "none", "secp384r1"),
    ],
)
def test_ecdh_curve(setting: str, client_auth: str, offered: str) -> None:
    tls = TLSConfig(ecdh_curve=setting, client_auth=client_auth)  # type: ignore[arg-type]
    assert ecdh_curve(tls) == offered
