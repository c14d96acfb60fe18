"""chatd/openssl.py: a memory BIO's buffer given back while it is empty, the
`SSL_MODE_RELEASE_BUFFERS` of chatd's contexts, and the warnings the server
logs when either cannot be had."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from chatd import openssl, tls
from chatd.config import TLSConfig
from chatd.openssl import (
    SSL_MODE_RELEASE_BUFFERS,
    buffer_size,
    libssl,
    release_buffer,
    release_buffers_mode,
    release_unavailable,
    ssl_ctx,
)
from chatd.tls import memory_warnings, server_context
from tests.conftest import PKI

_SSL_CTRL_CLEAR_MODE = 78  # openssl/ssl.h: SSL_CTX_clear_mode(ctx, mode)


def _mode(context: ssl.SSLContext) -> int:
    return int(libssl().SSL_CTX_ctrl(ssl_ctx(context), 33, 0, None))  # SSL_CTX_get_mode


def test_the_buffers_can_be_released_here() -> None:
    # CPython on Linux with OpenSSL: what chatd is measured on. Elsewhere the
    # server logs `tls_buffers_kept` and keeps them (see the last test).
    assert release_unavailable() == ""


def test_an_empty_bio_gives_its_buffer_back_and_works_after() -> None:
    bio = ssl.MemoryBIO()
    bio.write(b"x" * 16500)  # a full TLS record, as a busy client's outgoing BIO holds
    assert bio.read() == b"x" * 16500
    assert buffer_size(bio) >= 16500  # kept, empty, for the BIO's life
    assert release_buffer(bio)
    assert buffer_size(bio) == 0
    bio.write(b"again")
    assert bio.pending == 5 and bio.read() == b"again"
    bio.write_eof()
    assert bio.eof


def test_a_bio_that_holds_bytes_keeps_them() -> None:
    bio = ssl.MemoryBIO()
    bio.write(b"x" * 20000)
    bio.read(19000)  # the start of a record whose end has not come
    assert not release_buffer(bio)
    assert bio.read() == b"x" * 1000


def test_release_buffers_mode_sets_the_mode_where_it_is_missing() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert _mode(context) & SSL_MODE_RELEASE_BUFFERS  # CPython sets it on every context
    libssl().SSL_CTX_ctrl(ssl_ctx(context), _SSL_CTRL_CLEAR_MODE, SSL_MODE_RELEASE_BUFFERS, None)
    assert not _mode(context) & SSL_MODE_RELEASE_BUFFERS
    assert release_buffers_mode(context)
    assert _mode(context) & SSL_MODE_RELEASE_BUFFERS


def test_chatd_contexts_release_openssl_buffers(certs: PKI) -> None:
    # Without the mode an idle connection keeps two 16 KiB record buffers: 51 KB
    # of OpenSSL's memory per connection instead of 17 KB (docs/architecture.md).
    context = server_context(TLSConfig(cert=certs.server_cert, key=certs.server_key), Path("chatd.yaml"))
    assert _mode(context) & SSL_MODE_RELEASE_BUFFERS
    assert memory_warnings(context) == []


def test_the_server_is_told_when_buffers_cannot_be_released(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(context: ssl.SSLContext) -> bool:
        raise ValueError("cannot find the OpenSSL context of this Python's SSLContext")

    monkeypatch.setattr(tls, "release_buffers_mode", unreachable)
    monkeypatch.setattr(tls, "release_unavailable", lambda: "no memory BIO found behind ssl.MemoryBIO")
    assert memory_warnings(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)) == [
        "SSL_MODE_RELEASE_BUFFERS could not be checked: cannot find the OpenSSL context of this Python's SSLContext",
        "idle connections keep their memory BIOs' buffers: no memory BIO found behind ssl.MemoryBIO",
    ]


def test_nothing_is_released_where_the_bio_cannot_be_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openssl, "release_unavailable", lambda: "not CPython")
    bio = ssl.MemoryBIO()
    bio.write(b"x")
    bio.read()
    assert not release_buffer(bio)
    assert buffer_size(bio) == 0  # unknown
