"""Read the ALPN protocols a TLS ClientHello offers, from the raw bytes, without I/O.

Python's `ssl` tells a server which protocol ALPN selected, never what the
client offered: a client whose offer shares nothing with the server's list
looks exactly like one that offered nothing (CPython's callback answers
OpenSSL "no acknowledgement" and the handshake goes on). chatd serves HTTP to
a client that negotiated `http/1.1` and the line protocol to one that offered
no ALPN at all, so it must tell the third case apart before OpenSSL answers,
to refuse it as RFC 7301 section 3.2 says (a `no_application_protocol`
alert). RFC 8446 section 4.1.2 and RFC 5246 section 7.4.1.2 give the layout.
"""

from __future__ import annotations

from typing import Final

HANDSHAKE: Final = 22  # TLS record content type
CLIENT_HELLO: Final = 1  # handshake message type
ALPN_EXTENSION: Final = 16
MAX_HELLO: Final = 16384  # a ClientHello this long or longer is not examined
# A fatal alert (2) no_application_protocol (120), as a plaintext record: what
# the server sends instead of its ServerHello.
NO_APPLICATION_PROTOCOL_ALERT: Final = b"\x15\x03\x03\x00\x02\x02\x78"


class Incomplete(Exception):
    """More bytes are needed to see the whole ClientHello."""


def offered_alpn(data: bytes | bytearray) -> tuple[bytes, ...] | None:
    """The protocol names the ClientHello at the start of `data` offers, or
    None if it has no ALPN extension.

    Raises:
        Incomplete: `data` ends before the ClientHello does.
        ValueError: `data` does not start with a well-formed ClientHello (the
            TLS library will say what is wrong with it).
    """
    body = _hello_body(data)
    reader = _Reader(body)
    reader.take(2 + 32)  # legacy_version, random
    reader.take(reader.number(1))  # legacy_session_id
    reader.take(reader.number(2))  # cipher_suites
    reader.take(reader.number(1))  # legacy_compression_methods
    if reader.done():
        return None  # no extensions at all (an old TLS client)
    extensions = _Reader(reader.take(reader.number(2)))
    while not extensions.done():
        kind = extensions.number(2)
        payload = extensions.take(extensions.number(2))
        if kind == ALPN_EXTENSION:
            return _protocol_names(payload)
    return None


def _hello_body(data: bytes | bytearray) -> bytes:
    """The ClientHello's body, put together from as many handshake records as it spans."""
    handshake = bytearray()
    at = 0
    while True:
        if len(handshake) >= 4:
            if handshake[0] != CLIENT_HELLO:
                raise ValueError("the first handshake message is not a ClientHello")
            length = int.from_bytes(handshake[1:4], "big")
            if len(handshake) >= 4 + length:
                return bytes(handshake[4 : 4 + length])
        if len(data) < at + 5:
            raise Incomplete
        if data[at] != HANDSHAKE:
            raise ValueError("not a TLS handshake record")
        size = int.from_bytes(data[at + 3 : at + 5], "big")
        if len(data) < at + 5 + size:
            raise Incomplete
        handshake += data[at + 5 : at + 5 + size]
        at += 5 + size


def _protocol_names(payload: bytes) -> tuple[bytes, ...]:
    reader = _Reader(payload)
    names = _Reader(reader.take(reader.number(2)))
    offered = []
    while not names.done():
        offered.append(names.take(names.number(1)))
    return tuple(offered)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, size: int) -> bytes:
        end = self._at + size
        if end > len(self._data):
            raise ValueError("a ClientHello field runs past its end")
        chunk = self._data[self._at : end]
        self._at = end
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def done(self) -> bool:
        return self._at >= len(self._data)
