"""A line client that sees TLS records: `RecordClient` is the tests' `ChatClient`
over `RecordStream`, TLS through memory BIOs on a plain socket, which hands
OpenSSL the server's bytes one record at a time and keeps the plaintext of
each record apart (`records`). For tests of how the server packs lines into
records (the write interval, docs/architecture.md)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from tests.support.chatclient import ChatClient

HEADER = 5  # a TLS record's header: type, version, length (RFC 8446, 5.1)
APPLICATION_DATA = 23  # the outer type of every TLS 1.3 record after the handshake


class RecordStream:
    """A client TLS connection whose `recv`, `sendall`, `settimeout` and
    `close` work as a socket's; `records` holds the plaintext of every
    application-data record the server sent after the handshake, in order."""

    def __init__(self, raw: socket.socket, context: ssl.SSLContext) -> None:
        self.raw = raw
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_hostname="localhost")
        self._bytes = b""  # ciphertext received, not yet a whole record
        self.records: list[bytes] = []
        self._handshake()

    def _handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._send_pending()
                chunk = self.raw.recv(65536)
                if not chunk:
                    raise EOFError("closed during the handshake") from None
                self._in.write(chunk)  # the server sends nothing after its flight before we finish
                continue
            self._send_pending()
            return

    def _send_pending(self) -> None:
        if self._out.pending:
            self.raw.sendall(self._out.read())

    def settimeout(self, timeout: float | None) -> None:
        self.raw.settimeout(timeout)

    def sendall(self, data: bytes) -> None:
        self._tls.write(data)
        self._send_pending()

    def recv(self, size: int) -> bytes:
        """The plaintext of the next whole record(s) received; b"" at the end."""
        while True:
            plain = self._take_records()
            if plain:
                return plain
            chunk = self.raw.recv(65536)
            if not chunk:
                return b""
            self._bytes += chunk

    def _take_records(self) -> bytes:
        plain = []
        while len(self._bytes) >= HEADER:
            kind, length = self._bytes[0], int.from_bytes(self._bytes[3:5], "big")
            if len(self._bytes) < HEADER + length:
                break
            record, self._bytes = self._bytes[: HEADER + length], self._bytes[HEADER + length :]
            assert kind == APPLICATION_DATA, f"record of type {kind} after the handshake"
            self._in.write(record)
            text = self._read_all()
            self.records.append(text)
            plain.append(text)
        return b"".join(plain)

    def _read_all(self) -> bytes:
        parts = []
        while True:
            try:
                parts.append(self._tls.read(65536))
            except ssl.SSLWantReadError:
                return b"".join(parts)
            except ssl.SSLZeroReturnError:
                return b"".join(parts)

    def close(self) -> None:
        self.raw.close()


class RecordClient(ChatClient):
    """A `ChatClient` whose `stream.records` are the server's TLS records."""

    stream: RecordStream

    def _connect(  # type: ignore[override]
        self, port: int, ca: Path, host: str, cert: tuple[Path, Path] | None, timeout: float, source: str | None
    ) -> RecordStream:
        context = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            context.load_cert_chain(*cert)
        raw = socket.create_connection((host, port), timeout=timeout)
        self.stream = RecordStream(raw, context)
        return self.stream
