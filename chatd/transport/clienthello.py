"""The client's ClientHello, examined before OpenSSL answers it, without I/O.

Python's `ssl` tells a server which protocol ALPN selected, never what the
client offered: a client whose offer shares nothing with the server's list
looks exactly like one that offered nothing (CPython's callback answers
OpenSSL "no acknowledgement" and the handshake goes on). chatd serves HTTP to
a client that negotiated `http/1.1` and the line protocol to one that offered
no ALPN at all, so it must tell the third case apart before OpenSSL answers,
to refuse it as RFC 7301 section 3.2 says (a `no_application_protocol`
alert). RFC 8446 section 4.1.2 and RFC 5246 section 7.4.1.2 give the layout.

What lives here: `HelloReader`, which follows the raw bytes of the client's
side of a handshake, in one pass and keeping its state between reads (as
h11's receive buffer does), until no further ClientHello can come; it bounds
the records a ClientHello may take and reads its ALPN offer once the
handshake header says the message is complete. `offered_alpn` reads one
ClientHello's ALPN extension. What does not: sockets, OpenSSL, and sending
the alert (tlsstream.py feeds the reader and acts on its `refusal`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

CHANGE_CIPHER_SPEC: Final = 20  # TLS record content types
HANDSHAKE: Final = 22
CLIENT_HELLO: Final = 1  # handshake message types
SERVER_HELLO: Final = 2
ALPN_EXTENSION: Final = 16
# OpenSSL's CLIENT_HELLO_MAX_LENGTH: the longest ClientHello body it takes, the
# most its length fields can describe (cipher suites and extensions are each at
# most 65535 bytes). OpenSSL refuses a longer one from its header alone.
MAX_HELLO: Final = 131396
MAX_RECORD: Final = 16384  # the most a TLS record carries (RFC 8446 5.1)
# Records a ClientHello may take beyond the fewest that can carry it. Real
# clients send one record, two past 16 KiB; a few more leaves room for clients
# that split their hello on purpose. A peer sending thousands of tiny records
# is refused after a handful of them instead of costing a read each.
RECORD_SLACK: Final = 4
# RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest.
RETRY_RANDOM: Final = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
_RANDOM_END: Final = 5 + 4 + 2 + 32  # record header, handshake header, legacy_version, random


def _alert(description: int) -> bytes:
    """A fatal alert as a plaintext record: what the server sends instead of its ServerHello."""
    return b"\x15\x03\x03\x00\x02\x02" + bytes([description])


NO_APPLICATION_PROTOCOL_ALERT: Final = _alert(120)
# For a hello in too many records or mixed with other records. Each record is
# well formed, so decode_error (a malformed field) would send whoever debugs
# the client looking in the wrong place; what is refused is one more record
# where none is expected, an "inappropriate message" (RFC 8446 6.2), and the
# alert OpenSSL itself sends for a record of the wrong type here.
UNEXPECTED_MESSAGE_ALERT: Final = _alert(10)


@dataclass(frozen=True)
class Refusal:
    """Why a ClientHello is refused (`error`, for the log) and the alert to send."""

    error: str
    alert: bytes


class _Phase(enum.Enum):
    HELLO = "hello"  # a ClientHello is expected or being gathered
    ANSWER = "answer"  # it is complete: the server's answer says whether another comes
    DONE = "done"  # no ClientHello can follow: everything goes straight to OpenSSL


class HelloReader:
    """Follows the client's records through its ClientHello (and, after a
    HelloRetryRequest, its second one), refusing a hello in too many records,
    mixed with other records, or (given `alpn`) offering ALPN protocols none of
    which is `alpn`.

    Each byte is looked at once: the reader keeps its place in the record
    stream and the handshake bytes gathered so far, and parses the hello only
    when it is complete. OpenSSL must not see the client's next record before
    it has answered a hello, as that record may be a second hello sent without
    waiting: `receive` says how many bytes may go to OpenSSL now, and the
    caller gives the rest again once `sent` has seen the server's answer.

    Whatever is not a ClientHello OpenSSL would take is left to OpenSSL to
    refuse in its own words: a stream that does not start with a handshake
    record, a first handshake message of another type, a hello longer than
    MAX_HELLO, a hello whose fields do not parse.
    """

    def __init__(self, alpn: bytes | None) -> None:
        self.refusal: Refusal | None = None
        self._alpn = alpn
        self._phase = _Phase.HELLO
        self._started = False
        self._retried = False  # the server sent a HelloRetryRequest
        self._header = bytearray()  # a record header, while it comes in pieces
        self._kind = 0  # the current record's content type
        self._left = 0  # bytes of the current record still to come
        self._records = 0  # records of the current hello
        self._message = bytearray()  # the hello's handshake bytes so far
        self._size: int | None = None  # the hello's length, header included, once known
        self._answer = bytearray()  # the start of the server's answer

    @property
    def done(self) -> bool:
        """True once there is nothing left to examine, or a refusal."""
        return self._phase is _Phase.DONE or self.refusal is not None

    @property
    def awaiting_answer(self) -> bool:
        return self._phase is _Phase.ANSWER and self.refusal is None

    def receive(self, data: bytes | bytearray | memoryview) -> int:
        """Examine bytes from the client; return how many of them OpenSSL may
        have now (all of them, unless a hello ended before them)."""
        at, end = 0, len(data)
        while at < end and not self.done:
            if self._left:
                take = min(self._left, end - at)
                if self._phase is _Phase.HELLO and self._kind == HANDSHAKE:
                    self._gather(data[at : at + take])
                at += take
                self._left -= take
            elif self._phase is _Phase.ANSWER:
                return at  # the next record waits until the server has answered
            else:
                take = min(5 - len(self._header), end - at)
                self._header += data[at : at + take]
                at += take
                if not self._started:
                    self._started = True
                    if self._header[0] != HANDSHAKE:
                        self._phase = _Phase.DONE  # not a TLS handshake: OpenSSL says what it is
                if len(self._header) == 5 and not self.done:
                    self._open_record()
        return end

    def sent(self, data: bytes | bytearray) -> None:
        """Examine bytes the server sent: after a hello, its answer says
        whether a second hello comes (a HelloRetryRequest) or none (a
        ServerHello, an alert)."""
        if not self.awaiting_answer or not data:
            return
        self._answer += data[: _RANDOM_END - len(self._answer)]
        if self._answer[0] != HANDSHAKE:
            self._phase = _Phase.DONE
        elif len(self._answer) == _RANDOM_END:
            retry = self._answer[5] == SERVER_HELLO and self._answer[11:] == RETRY_RANDOM
            self._phase = _Phase.HELLO if retry else _Phase.DONE
            self._retried = retry
            self._answer.clear()

    def _open_record(self) -> None:
        self._kind = self._header[0]
        self._left = int.from_bytes(self._header[3:5], "big")
        self._header.clear()
        self._records += 1
        # RFC 8446 D.4: a client in middlebox compatibility mode sends a
        # ChangeCipherSpec before its second hello. Any other record before a
        # hello is complete is refused: OpenSSL skips some (a TLS 1.3
        # user_canceled warning) and would read the hello that follows.
        compatible = self._kind == CHANGE_CIPHER_SPEC and self._retried and not self._message
        if self._kind != HANDSHAKE and not compatible:
            self._refuse(
                f"client_hello_interleaved: a record of type {self._kind} where the ClientHello was due",
                UNEXPECTED_MESSAGE_ALERT,
            )
            return
        self._count_records()

    def _count_records(self) -> None:
        allowed = RECORD_SLACK + (1 if self._size is None else -(-self._size // MAX_RECORD))
        if self._records > allowed:
            size = "" if self._size is None else f" of {self._size} bytes"
            self._refuse(
                f"client_hello_too_many_records: a ClientHello{size} in more than {allowed} TLS records",
                UNEXPECTED_MESSAGE_ALERT,
            )

    def _gather(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._size is None:
            self._message += chunk
            if len(self._message) < 4:
                return
            length = int.from_bytes(self._message[1:4], "big")
            if self._message[0] != CLIENT_HELLO or length > MAX_HELLO:
                self._phase = _Phase.DONE  # OpenSSL refuses it from its header
                return
            self._size = 4 + length
            self._count_records()
        else:
            self._message += chunk[: self._size - len(self._message)]
        if len(self._message) >= self._size and not self.done:
            self._examine(bytes(self._message[4 : self._size]))

    def _examine(self, hello: bytes) -> None:
        self._phase = _Phase.ANSWER
        self._message = bytearray()
        self._size = None
        self._records = 0
        if self._alpn is None:
            return
        try:
            offered = offered_alpn(hello)
        except ValueError:
            return  # not a ClientHello OpenSSL will take either; let it say why
        if offered is not None and self._alpn not in offered:
            self._refuse("no_application_protocol", NO_APPLICATION_PROTOCOL_ALERT)

    def _refuse(self, error: str, alert: bytes) -> None:
        self.refusal = Refusal(error, alert)


def offered_alpn(hello: bytes) -> tuple[bytes, ...] | None:
    """The protocol names a ClientHello's body offers, or None if it has no ALPN extension.

    Raises:
        ValueError: `hello` is not a well-formed ClientHello body (the TLS
            library will say what is wrong with it).
    """
    reader = _Reader(hello)
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
