"""chatd/transport/tlsstream.py against a real TLS client (OpenSSL through
Python's memory BIOs) over a real socketpair, with chatd's own server
context: the handshake, records both ways, backpressure, input already
decrypted that epoll cannot see, and both ways of closing. Python's `ssl`
cannot ask for a TLS 1.3 KeyUpdate, so that test uses `openssl s_client`
over loopback.
"""

from __future__ import annotations

import gc
import select
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatd.config import TLSConfig
from chatd.tls import server_context
from chatd.transport.tlsstream import RECV_SIZE, SEND_BATCH, TLSStream
from tests.conftest import PKI


class Client:
    """A TLS client over memory BIOs, its ciphertext carried by one end of a socketpair."""

    def __init__(self, sock: socket.socket, ca: str | None) -> None:
        self.sock = sock
        context = ssl.create_default_context(cafile=ca)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname="localhost")

    def send_pending(self) -> None:
        if self._outgoing.pending:
            self.sock.sendall(self._outgoing.read())

    def receive_available(self) -> bool:
        """Move what the socket holds into the TLS layer; False at the end of the stream."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return True
            if not data:
                self._incoming.write_eof()
                return False
            self._incoming.write(data)

    def handshake_step(self) -> bool:
        self.receive_available()
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        finally:
            self.send_pending()
        return True

    def write(self, data: bytes) -> None:
        self.tls.write(data)
        self.send_pending()

    def read_all(self) -> bytes:
        """The plaintext the server has sent so far (up to its close_notify)."""
        self.receive_available()
        out = b""
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                return out
            if not data:
                return out  # close_notify (a close without one raises SSLEOFError)
            out += data


@pytest.fixture(scope="module")
def context(certs: PKI) -> ssl.SSLContext:
    return server_context(TLSConfig(cert=certs.server_cert, key=certs.server_key))


@pytest.fixture
def pair(context: ssl.SSLContext, certs: PKI) -> Iterator[tuple[TLSStream, Client]]:
    """A server stream and a client, handshaken."""
    server_sock, client_sock = socket.socketpair()
    server_sock.setblocking(False)
    client_sock.setblocking(False)
    stream = TLSStream(server_sock, context, bytearray(RECV_SIZE))
    client = Client(client_sock, str(certs.ca))
    handshake(stream, client)
    yield stream, client
    stream.close()
    client_sock.close()


def server_step(stream: TLSStream) -> None:
    """A server's handshake step as a worker takes it (pump.handshake): the
    three parts in a row, raising what OpenSSL's part answered."""
    stream.handshake_input()
    error = stream.handshake_continue(stream.handshake_call())
    if error is not None:
        raise error


def handshake(stream: TLSStream, client: Client) -> None:
    server_done = client_done = False
    for _ in range(10):  # a TLS 1.3 handshake is two flights each way
        client_done = client.handshake_step() or client_done
        if not server_done:
            try:
                server_step(stream)
                server_done = True
            except ssl.SSLWantReadError:
                pass
        if server_done and client_done:
            stream.flush()  # TLS 1.3's tickets-free last flight, if any
            return
    raise AssertionError("the handshake did not finish in 10 rounds")


def read_server(stream: TLSStream) -> bytes:
    """All the plaintext the server stream can read now."""
    out = b""
    while True:
        try:
            data = stream.recv(65536)
        except ssl.SSLWantReadError:
            return out
        if not data:
            return out
        out += data


def test_the_handshake_with_chatds_context(pair: tuple[TLSStream, Client]) -> None:
    stream, client = pair
    assert stream.version() == client.tls.version() == "TLSv1.3"
    cipher = stream.cipher()
    assert cipher is not None and cipher[1] == "TLSv1.3"
    assert stream.getpeercert() is None  # client_auth: none
    assert stream.selected_alpn_protocol() is None
    assert stream.pending_out == 0


def test_records_both_ways(pair: tuple[TLSStream, Client]) -> None:
    stream, client = pair
    for line in (b"NICK alice\n", b"JOIN #a\n", b"MSG #a hi\n"):
        client.write(line)  # one record each
    assert read_server(stream) == b"NICK alice\nJOIN #a\nMSG #a hi\n"
    assert stream.send(b"WELCOME alice\n") == len(b"WELCOME alice\n")
    assert stream.flush() and stream.pending_out == 0
    assert client.read_all() == b"WELCOME alice\n"


def test_a_read_takes_at_most_one_record_and_the_rest_waits_where_epoll_cannot_see_it(
    pair: tuple[TLSStream, Client],
) -> None:
    stream, client = pair
    client.write(b"first\n")
    client.write(b"second\n")
    assert stream.recv(65536) == b"first\n"
    assert stream.has_buffered_input()  # the socket is empty: only the stream knows
    assert stream.recv(65536) == b"second\n"
    assert not stream.has_buffered_input()
    with pytest.raises(ssl.SSLWantReadError):
        stream.recv(65536)


def test_a_full_socket_refuses_more_once_a_batch_is_encrypted(pair: tuple[TLSStream, Client]) -> None:
    stream, client = pair
    line = b"x" * 1000 + b"\n"
    sent = 0
    with pytest.raises(ssl.SSLWantWriteError):  # the client reads nothing: the socket fills
        for _ in range(100_000):
            sent += stream.send(line)
    assert 0 < stream.pending_out <= SEND_BATCH + 2 * len(line)  # encrypted ahead of the socket: one batch
    received = b""
    while stream.pending_out or len(received) < sent:
        received += client.read_all()
        stream.flush()
    assert received == line * (sent // len(line))


def test_shutdown_sends_close_notify_then_fin_and_the_peer_can_still_be_read(
    pair: tuple[TLSStream, Client],
) -> None:
    stream, client = pair
    stream.send(b"BYE quit\n")
    stream.shutdown_write()
    assert client.read_all() == b"BYE quit\n"
    assert client.tls.read(1) == b""  # close_notify: the end, not a truncation (SSLEOFError)
    assert not client.receive_available()  # and the FIN after it
    client.write(b"late line\n")  # the client's lines after our close_notify are still read
    client.tls.unwrap()
    client.send_pending()
    assert read_server(stream) == b"late line\n"
    assert stream.recv(1) == b""  # its close_notify


def test_a_tcp_close_without_close_notify_reads_as_the_end(pair: tuple[TLSStream, Client]) -> None:
    stream, client = pair
    client.write(b"last\n")
    client.sock.shutdown(socket.SHUT_WR)
    assert stream.recv(65536) == b"last\n"
    assert stream.recv(65536) == b""


def test_a_client_that_speaks_no_tls_fails_the_handshake(context: ssl.SSLContext) -> None:
    server_sock, client_sock = socket.socketpair()
    with server_sock, client_sock:
        server_sock.setblocking(False)
        stream = TLSStream(server_sock, context, bytearray(RECV_SIZE))
        client_sock.sendall(b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n")
        with pytest.raises(ssl.SSLError, match=r"HTTP_REQUEST|http request"):
            server_step(stream)


def test_a_client_that_refuses_the_certificate_fails_the_handshake_with_its_alert(context: ssl.SSLContext) -> None:
    server_sock, client_sock = socket.socketpair()
    with server_sock, client_sock:
        server_sock.setblocking(False)
        client_sock.setblocking(False)
        stream = TLSStream(server_sock, context, bytearray(RECV_SIZE))
        client = Client(client_sock, None)  # trusts the system's CAs, not chatd's test CA
        with pytest.raises(ssl.SSLError):
            handshake(stream, client)
        with pytest.raises(ssl.SSLError, match=r"UNKNOWN_CA|unknown ca"):
            server_step(stream)  # the client's alert, read by the server


def drive(stream: TLSStream, step: Callable[[], bool], what: str) -> None:
    """Run `step` (some work on the stream) whenever its socket may have news,
    until it says done."""
    deadline = time.monotonic() + 10
    while not step():
        assert time.monotonic() < deadline, f"{what}: not within 10 s"
        select.select([stream.sock], [], [], 0.05)


def read_some(stream: TLSStream) -> bytes:
    try:
        return stream.recv(65536)
    except ssl.SSLWantReadError:
        return b""


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_key_update_is_read_and_answered_with_the_servers_own(
    context: ssl.SSLContext, certs: PKI, tmp_path: Path
) -> None:
    out = tmp_path / "s_client.out"
    with socket.create_server(("127.0.0.1", 0)) as listener, out.open("wb") as log:
        # s_client turns a line "K" into a KeyUpdate that asks the server to update its keys too.
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        client = subprocess.Popen(
            ["openssl", "s_client", "-connect", address, "-tls1_3", "-CAfile", str(certs.ca), "-verify_return_error"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        assert client.stdin is not None
        sock: socket.socket | None = None
        try:
            listener.settimeout(10)
            sock, _ = listener.accept()
            sock.setblocking(False)
            stream = TLSStream(sock, context, bytearray(RECV_SIZE))

            def handshake_done() -> bool:
                try:
                    server_step(stream)
                except ssl.SSLWantReadError:
                    return False
                return stream.flush()

            drive(stream, handshake_done, "the handshake")
            client.stdin.write(b"K\n")
            client.stdin.flush()
            # s_client reads a command per read() of stdin: the line waits for the KeyUpdate.
            drive(stream, lambda: read_some(stream) == b"" and b"KEYUPDATE" in out.read_bytes(), "the KeyUpdate")
            client.stdin.write(b"after the update\n")
            client.stdin.flush()
            received = bytearray()
            drive(stream, lambda: received.extend(read_some(stream)) or received.endswith(b"\n"), "the client's line")
            assert received == b"after the update\n"  # read under the client's new keys
            # Asked to update its keys too, the server does so with its next record:
            # its first reply carries a KeyUpdate record (27 bytes) before it, the second not.
            stream.send(b"WELCOME under new keys\n")
            with_update = stream.pending_out
            assert stream.flush()
            stream.send(b"WELCOME under new keys\n")
            assert with_update > stream.pending_out
            drive(stream, lambda: stream.flush() and out.read_bytes().count(b"WELCOME under new keys") == 2, "replies")
        finally:
            if sock is not None:
                sock.close()
            client.kill()
            client.wait(10)
            client.stdin.close()


def test_an_idle_stream_gives_back_its_buffers(pair: tuple[TLSStream, Client]) -> None:
    stream, client = pair
    stream.send(b"x" * 16384)  # one full record: the outgoing BIO grows to hold it
    assert stream.flush()
    assert client.read_all() == b"x" * 16384
    client.write(b"hello\n")
    assert read_server(stream) == b"hello\n"
    assert stream.buffered() > 16384
    assert not stream.release_buffers()  # busy since the last call (there was none)
    assert stream.release_buffers()  # idle since the last call: given back
    assert stream.buffered() == 0
    assert not stream.release_buffers()  # nothing more to give
    stream.send(b"after\n")  # and the stream works on, both ways
    assert stream.flush()
    assert client.read_all() == b"after\n"
    client.write(b"more\n")
    assert read_server(stream) == b"more\n"


def test_a_busy_stream_keeps_its_buffers(pair: tuple[TLSStream, Client]) -> None:
    stream, client = pair
    assert not stream.release_buffers()  # the handshake
    stream.send(b"x" * 1000)
    assert stream.flush()
    assert not stream.release_buffers()  # written since
    client.write(b"y\n")
    assert read_server(stream) == b"y\n"
    assert not stream.release_buffers()  # read since
    assert stream.buffered() > 1000


def test_openssl_is_asked_to_handshake_only_when_the_client_has_sent_something(
    context: ssl.SSLContext, certs: PKI
) -> None:
    # Asked with nothing new to read, OpenSSL only raises SSLWantReadError, whose
    # message _ssl builds in C: twice per connection, before this was checked.
    server_sock, client_sock = socket.socketpair()
    server_sock.setblocking(False)
    client_sock.setblocking(False)
    stream = TLSStream(server_sock, context, bytearray(RECV_SIZE))
    asked: list[int] = []
    real = stream._tls

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def do_handshake(self) -> None:
            asked.append(1)
            real.do_handshake()

    stream._tls = Counting()  # type: ignore[assignment]
    try:
        with pytest.raises(ssl.SSLWantReadError):
            server_step(stream)  # the client has not spoken yet
        assert asked == []
        handshake(stream, Client(client_sock, str(certs.ca)))
        assert len(asked) == 2  # the ClientHello, then the client's Finished
    finally:
        stream.close()
        client_sock.close()


def test_a_stream_holds_its_ssl_object_without_the_python_wrapper() -> None:
    # ssl.SSLObject only forwards each call to the SSL object it wraps: 160
    # bytes per client, and a Python call per read and per write.
    left, right = socket.socketpair()
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        stream = TLSStream(left, context, bytearray(RECV_SIZE))
        held = gc.get_referents(stream)
        assert [obj for obj in held if isinstance(obj, ssl.SSLObject)] == []
        assert [type(obj).__name__ for obj in held if type(obj).__module__ == "_ssl"].count("_SSLSocket") == 1
    finally:
        left.close()
        right.close()
