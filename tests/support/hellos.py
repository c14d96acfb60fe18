"""ClientHellos for tests, as bytes: made by a real client (Python's `ssl`
over memory BIOs, so OpenSSL's own client), then re-framed or edited where a
test needs what no real client sends: a hello in 1-byte records, or a second
hello whose ALPN differs from the first.

A ClientHello here is a handshake message (type, 3-byte length, body); a
flight is TLS records.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from chatd.tls import set_groups

HANDSHAKE = 22
CHANGE_CIPHER_SPEC = b"\x14\x03\x03\x00\x01\x01"  # what a TLS 1.3 client sends before its second hello
PADDING_EXTENSION = 21  # RFC 7685
# Fatal alerts as the server sends them, in a plaintext record (RFC 8446 6).
NO_APPLICATION_PROTOCOL_ALERT = b"\x15\x03\x03\x00\x02\x02\x78"
UNEXPECTED_MESSAGE_ALERT = b"\x15\x03\x03\x00\x02\x02\x0a"
# RFC 8446 4.1.3: the random of a HelloRetryRequest.
RETRY_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
ALPN_EXTENSION = 16


def record(payload: bytes, kind: int = HANDSHAKE) -> bytes:
    return bytes([kind]) + b"\x03\x01" + len(payload).to_bytes(2, "big") + payload


def records(flight: bytes) -> list[tuple[int, bytes]]:
    """The (content type, payload) of each record in `flight`."""
    found = []
    at = 0
    while at < len(flight):
        size = int.from_bytes(flight[at + 3 : at + 5], "big")
        found.append((flight[at], flight[at + 5 : at + 5 + size]))
        at += 5 + size
    assert at == len(flight), "a flight that ends inside a record"
    return found


def in_records(message: bytes, size: int) -> bytes:
    """`message` in handshake records of `size` bytes each (the last may be shorter)."""
    return b"".join(record(message[at : at + size]) for at in range(0, len(message), size))


def alpn_names(names: list[str]) -> list[bytes]:
    return [name.encode() for name in names]


@dataclass
class Client:
    """A TLS client over memory BIOs: `hello()` is its first flight, `answer()`
    gives it the server's and returns its next."""

    alpn: list[str] | None = None
    groups: list[str] | None = None  # key shares: OpenSSL's client sends one, for the first
    ca: Path | None = None
    tls: ssl.SSLObject = field(init=False)
    _incoming: ssl.MemoryBIO = field(init=False, default_factory=ssl.MemoryBIO)
    _outgoing: ssl.MemoryBIO = field(init=False, default_factory=ssl.MemoryBIO)

    def __post_init__(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.ca is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.alpn is not None:
            context.set_alpn_protocols(self.alpn)
        if self.groups is not None:
            set_groups(context, self.groups)
        self.tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname="localhost")

    def hello(self) -> bytes:
        return self.answer(b"")

    def answer(self, data: bytes) -> bytes:
        if data:
            self._incoming.write(data)
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self._outgoing.read()


def client_hello(alpn: list[str] | None = None) -> bytes:
    """The ClientHello message (no record header) a default client sends."""
    ((kind, message),) = records(Client(alpn).hello())
    assert kind == HANDSHAKE
    return message


@dataclass
class _Parts:
    """A ClientHello's body cut where tests edit it."""

    head: bytes  # legacy_version, random, legacy_session_id
    suites: bytes  # cipher suites (without their length)
    compression: bytes  # with its length
    extensions: list[tuple[int, bytes]]

    @classmethod
    def of(cls, message: bytes) -> _Parts:
        body = message[4:]
        at = 2 + 32
        head_end = at + 1 + body[at]
        suites_end = head_end + 2 + int.from_bytes(body[head_end : head_end + 2], "big")
        compression_end = suites_end + 1 + body[suites_end]
        end = compression_end + 2 + int.from_bytes(body[compression_end : compression_end + 2], "big")
        extensions = []
        at = compression_end + 2
        while at < end:
            kind, size = int.from_bytes(body[at : at + 2], "big"), int.from_bytes(body[at + 2 : at + 4], "big")
            extensions.append((kind, body[at + 4 : at + 4 + size]))
            at += 4 + size
        return cls(body[:head_end], body[head_end + 2 : suites_end], body[suites_end:compression_end], extensions)

    def message(self) -> bytes:
        block = b"".join(
            kind.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data for kind, data in self.extensions
        )
        body = (
            self.head
            + len(self.suites).to_bytes(2, "big")
            + self.suites
            + self.compression
            + len(block).to_bytes(2, "big")
            + block
        )
        return b"\x01" + len(body).to_bytes(3, "big") + body


def with_alpn(message: bytes, names: list[bytes]) -> bytes:
    """`message` with the protocol list of its ALPN extension replaced by `names`."""
    parts = _Parts.of(message)
    assert any(kind == ALPN_EXTENSION for kind, _ in parts.extensions), "no ALPN extension to replace"
    listed = b"".join(bytes([len(name)]) + name for name in names)
    payload = len(listed).to_bytes(2, "big") + listed
    parts.extensions = [(kind, payload if kind == ALPN_EXTENSION else data) for kind, data in parts.extensions]
    return parts.message()


def padded(message: bytes, size: int) -> bytes:
    """`message` grown to `size` bytes: a padding extension (RFC 7685), put
    first (OpenSSL wants a pre_shared_key extension last), and past the 65535
    bytes extensions may take, GREASE cipher suites (RFC 8701), which a server
    ignores. At most about 131100 bytes: both lists full."""
    parts = _Parts.of(message)
    parts.extensions = [(kind, data) for kind, data in parts.extensions if kind != PADDING_EXTENSION]
    extensions = sum(4 + len(data) for _, data in parts.extensions)
    room = 65535 - extensions - 4
    grow = size - len(parts.message()) - 4
    parts.extensions.insert(0, (PADDING_EXTENSION, bytes(min(grow, room))))
    if grow > room:
        assert (grow - room) % 2 == 0, "cipher suites come in pairs of bytes"
        parts.suites += b"\x0a\x0a" * ((grow - room) // 2)
    grown = parts.message()
    assert len(grown) == size, (len(grown), size)
    return grown
