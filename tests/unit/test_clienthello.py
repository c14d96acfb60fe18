"""The ClientHello reader (chatd/transport/clienthello.py), fed the bytes of
real clients (OpenSSL's, through Python's `ssl`), re-framed or edited where a
test needs what no real client sends; HelloRetryRequests come from a real
OpenSSL server context, chatd's own."""

from __future__ import annotations

import itertools
import ssl
import time

import pytest

from chatd.config import TLSConfig
from chatd.tls import server_context
from chatd.transport import clienthello
from chatd.transport.clienthello import MAX_HELLO, RECORD_SLACK, HelloReader, offered_alpn
from tests.conftest import PKI
from tests.support.hellos import (
    CHANGE_CIPHER_SPEC,
    NO_APPLICATION_PROTOCOL_ALERT,
    RETRY_RANDOM,
    UNEXPECTED_MESSAGE_ALERT,
    Client,
    client_hello,
    in_records,
    padded,
    record,
    records,
    with_alpn,
)

HTTP = b"http/1.1"
# A 14 KB ClientHello as OpenSSL's client writes it, grown by ALPN names.
BIG_ALPN = ["http/1.1"] + ["x" * 250] * 55


def feed(reader: HelloReader, data: bytes, step: int = 1) -> int:
    """Give `data` to `reader` `step` bytes at a time; how many it let through."""
    used = 0
    for at in range(0, len(data), step):
        chunk = data[at : at + step]
        taken = reader.receive(chunk)
        used += taken
        if taken < len(chunk) or reader.done:
            break
    return used


# -- offered_alpn -------------------------------------------------------------------------


@pytest.mark.parametrize("alpn", [None, ["http/1.1"], ["h2", "http/1.1"], ["h2"], ["x" * 200]])
def test_offered_alpn_is_read_from_the_client_hello(alpn: list[str] | None) -> None:
    body = client_hello(alpn)[4:]
    assert offered_alpn(body) == (None if alpn is None else tuple(name.encode() for name in alpn))
    for cut in (0, 3, 40, len(body) - 1):
        with pytest.raises(ValueError):
            offered_alpn(body[:cut])


# -- one hello: ALPN ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpn", "refused"),
    [(None, False), (["http/1.1"], False), (["h2", "http/1.1"], False), (["h2"], True), (["chatd"], True)],
)
@pytest.mark.parametrize("framing", ["one record", "1-byte reads", "three records"])
def test_alpn_is_examined_however_the_hello_comes(alpn: list[str] | None, refused: bool, framing: str) -> None:
    message = client_hello(alpn)
    flight = in_records(message, 200) if framing == "three records" else record(message)
    reader = HelloReader(HTTP)
    assert feed(reader, flight, 1 if framing == "1-byte reads" else len(flight)) == len(flight)
    if refused:
        assert reader.refusal is not None
        assert reader.refusal.error == "no_application_protocol"
        assert reader.refusal.alert == NO_APPLICATION_PROTOCOL_ALERT
    else:
        assert reader.refusal is None and reader.awaiting_answer


def test_the_hello_is_examined_once_it_is_whole_and_only_then(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(clienthello, "offered_alpn", lambda body: calls.append(body) or (HTTP,))
    message = client_hello(["http/1.1"])
    flight = in_records(message, 200)
    reader = HelloReader(HTTP)
    feed(reader, flight[:-1])
    assert calls == [] and not reader.awaiting_answer
    reader.receive(flight[-1:])
    assert calls == [message[4:]] and reader.awaiting_answer


def test_without_alpn_to_offer_nothing_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clienthello, "offered_alpn", lambda body: pytest.fail("parsed"))
    reader = HelloReader(None)  # web.enabled: false
    reader.receive(record(client_hello(["h2"])))
    assert reader.refusal is None and reader.awaiting_answer


@pytest.mark.parametrize("size", [16385, 40000, 131000])
def test_a_hello_past_16_kib_is_examined_to_its_end(size: int) -> None:
    flight = in_records(padded(client_hello(["h2"]), size), 16384)
    reader = HelloReader(HTTP)
    half = len(flight) // 2
    assert feed(reader, flight, half + 1) == len(flight)  # two reads, as in the issue
    assert reader.refusal is not None and reader.refusal.error == "no_application_protocol"


# -- what is left to OpenSSL --------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # not TLS: OpenSSL answers "HTTP_REQUEST"
        b"\x80\x2e\x01\x03\x01",  # an SSLv2-format hello: no extensions, OpenSSL's to read
        record(b"\x02\x00\x00\x00"),  # a first handshake message that is no ClientHello
    ],
)
def test_what_openssl_refuses_by_itself_goes_straight_to_it(data: bytes) -> None:
    reader = HelloReader(HTTP)
    assert reader.receive(data) == len(data)
    assert reader.done and reader.refusal is None


def test_a_hello_too_long_for_openssl_is_left_to_it_from_its_header() -> None:
    header = b"\x01" + (MAX_HELLO + 1).to_bytes(3, "big")
    reader = HelloReader(HTTP)
    reader.receive(record(header))
    assert reader.done and reader.refusal is None
    longest = HelloReader(HTTP)
    longest.receive(record(b"\x01" + MAX_HELLO.to_bytes(3, "big")))
    assert not longest.done  # waits for the rest


def test_a_hello_that_does_not_parse_is_left_to_openssl() -> None:
    reader = HelloReader(HTTP)
    reader.receive(record(b"\x01\x00\x00\x03\x03\x03\x00"))
    assert reader.refusal is None and reader.awaiting_answer


# -- records ------------------------------------------------------------------------------


@pytest.mark.parametrize("alpn", [HTTP, None])
def test_a_hello_in_1_byte_records_is_refused_after_a_handful(alpn: bytes | None) -> None:
    message = client_hello(BIG_ALPN)
    assert 14000 < len(message) < 16384
    flight = in_records(message, 1)
    reader = HelloReader(alpn)
    used = feed(reader, flight)
    assert reader.refusal is not None
    assert reader.refusal.alert == UNEXPECTED_MESSAGE_ALERT
    assert reader.refusal.error == (
        f"client_hello_too_many_records: a ClientHello of {len(message)} bytes in more than "
        f"{1 + RECORD_SLACK} TLS records"
    )
    assert used == 6 * (1 + RECORD_SLACK) + 5  # refused at the next record's header


def spread(message: bytes, count: int) -> bytes:
    """`message` in `count` records: four of 1 byte (the handshake header,
    so that the size is known early), then the rest cut evenly."""
    rest = message[4:]
    parts = count - 4
    assert -(-len(rest) // parts) <= 16384
    bounds = [len(rest) * i // parts for i in range(parts + 1)]
    return in_records(message[:4], 1) + b"".join(record(rest[a:b]) for a, b in itertools.pairwise(bounds))


@pytest.mark.parametrize("size", [600, 16384, 16385, 100000])
def test_records_allowed_are_the_fewest_plus_the_slack(size: int) -> None:
    message = padded(client_hello(["http/1.1"]), size)
    allowed = -(-size // 16384) + RECORD_SLACK
    for count in (allowed, allowed + 1):
        flight = spread(message, count)
        assert len(records(flight)) == count
        reader = HelloReader(HTTP)
        feed(reader, flight, 4096)
        if count == allowed:
            assert reader.refusal is None and reader.awaiting_answer
        else:
            assert reader.refusal is not None and "too_many_records" in reader.refusal.error


def test_records_before_the_size_is_known_count_too() -> None:
    reader = HelloReader(HTTP)
    feed(reader, record(b"\x01") + record(b"") * (RECORD_SLACK + 1))
    assert reader.refusal is not None and "more than 5 TLS records" in reader.refusal.error


@pytest.mark.parametrize(("kind", "before"), [(21, False), (21, True), (20, False), (23, False)])
def test_a_hello_mixed_with_other_records_is_refused(kind: int, before: bool) -> None:
    message = client_hello(["http/1.1"])
    other = record(b"\x01\x5a", kind)  # e.g. a user_canceled warning, which TLS 1.3 OpenSSL skips
    flight = record(message[:1]) + other + record(message[1:]) if not before else other + record(message)
    reader = HelloReader(HTTP)
    feed(reader, flight, len(flight))
    if before:  # the very first record: OpenSSL refuses it itself (unexpected_message)
        assert reader.done and reader.refusal is None
        return
    assert reader.refusal is not None and reader.refusal.alert == UNEXPECTED_MESSAGE_ALERT
    assert reader.refusal.error.startswith("client_hello_interleaved: a record of type ")


def test_examining_is_linear_in_the_size() -> None:
    # The longest hello OpenSSL takes, in as many records as allowed, one byte
    # per read: each byte is looked at once. Re-parsing what was gathered at
    # each read, as before, is ~10^10 byte copies here: minutes, not this.
    message = padded(client_hello(["http/1.1"]), 131000)
    allowed = -(-len(message) // 16384) + RECORD_SLACK
    flight = spread(message, allowed)
    reader = HelloReader(HTTP)
    started = time.thread_time()
    assert feed(reader, flight) == len(flight)
    spent = time.thread_time() - started
    assert reader.refusal is None and reader.awaiting_answer
    assert spent < 5.0, f"{spent:.2f}s of CPU for {len(flight)} 1-byte reads"


# -- a HelloRetryRequest and the second hello ---------------------------------------------------


class Server:
    """chatd's TLS context (web on: ALPN http/1.1) over memory BIOs."""

    def __init__(self, certs: PKI) -> None:
        context = server_context(TLSConfig(cert=certs.server_cert, key=certs.server_key), "test", web=True)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    def answer(self, data: bytes) -> bytes:
        self.incoming.write(data)
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()


def retried_client(certs: PKI) -> tuple[Client, Server, bytes, bytes]:
    """A client whose only key share (X448) the server does not take: its first
    hello, the server's HelloRetryRequest, and its second flight."""
    client = Client(["http/1.1"], groups=["X448", "prime256v1"], ca=certs.ca)
    server = Server(certs)
    first = client.hello()
    retry = server.answer(first)
    assert retry[11:43] == RETRY_RANDOM == clienthello.RETRY_RANDOM
    return client, server, first, retry


def test_the_second_hello_after_a_retry_is_examined(certs: PKI) -> None:
    client, server, first, retry = retried_client(certs)
    second = client.answer(retry)
    (ccs, _), (kind, message) = records(second)
    assert ccs == 20 and kind == 22  # middlebox compatibility: a ChangeCipherSpec first
    # No client changes its ALPN between hellos; an attacker's may, and
    # OpenSSL would take it (and Python select nothing): so, edited here.
    h2_only = CHANGE_CIPHER_SPEC + record(with_alpn(message, [b"h2"]))
    reader = HelloReader(HTTP)
    assert reader.receive(first) == len(first) and reader.awaiting_answer
    reader.sent(retry)
    assert not reader.done
    assert reader.receive(h2_only) == len(h2_only)
    assert reader.refusal is not None and reader.refusal.error == "no_application_protocol"
    # The same hello, unedited, passes; the server's ServerHello ends the examination.
    reader = HelloReader(HTTP)
    reader.receive(first)
    reader.sent(retry)
    reader.receive(second)
    assert reader.refusal is None and reader.awaiting_answer
    reader.sent(server.answer(second))
    assert reader.done and reader.refusal is None


def test_a_second_hello_sent_without_waiting_is_held_back(certs: PKI) -> None:
    client, _, first, retry = retried_client(certs)
    _, message = records(client.answer(retry))[1]
    flight = first + CHANGE_CIPHER_SPEC + record(with_alpn(message, [b"h2"]))
    reader = HelloReader(HTTP)
    assert reader.receive(flight) == len(first)  # the rest waits for the server's answer
    assert reader.receive(flight[len(first) :]) == 0
    reader.sent(retry[:20])  # the answer may come in pieces
    reader.sent(retry[20:])
    assert reader.receive(flight[len(first) :]) == len(flight) - len(first)
    assert reader.refusal is not None and reader.refusal.error == "no_application_protocol"


@pytest.mark.parametrize(
    "answer",
    [
        b"\x15\x03\x03\x00\x02\x02\x28",  # an alert
        record(b"\x02\x00\x00\x46\x03\x03" + bytes(32)),  # a ServerHello
    ],
)
def test_any_other_answer_ends_the_examination(answer: bytes) -> None:
    reader = HelloReader(HTTP)
    reader.receive(record(client_hello(["http/1.1"])))
    reader.sent(answer)
    assert reader.done and reader.refusal is None


def test_a_change_cipher_spec_is_taken_only_after_a_retry(certs: PKI) -> None:
    reader = HelloReader(HTTP)
    reader.receive(CHANGE_CIPHER_SPEC)
    assert reader.done and reader.refusal is None  # a first record OpenSSL refuses itself
    client, _, first, retry = retried_client(certs)
    second = client.answer(retry)
    reader = HelloReader(HTTP)
    reader.receive(first)
    reader.sent(retry)
    _, (_, message) = records(second)
    flight = CHANGE_CIPHER_SPEC + record(message[:1]) + CHANGE_CIPHER_SPEC + record(message[1:])
    reader.receive(flight)
    assert reader.refusal is not None and "type 20" in reader.refusal.error
