"""chatd/transport/endpoint.py: one endpoint over a real socketpair with real
TLS, driven by hand as its worker would drive it.

The client is an `ssl.SSLObject` over the other socket of the pair, pumped by
`Client`; the worker is `Worker` below, which does on the test's thread what
an I/O worker does (flush what was marked dirty, read what was marked
readable, fire a deadline when told); the host hands each endpoint the real
`LineCodec` and an application that records what reaches it. Deadlines are
fired by calling `on_timer` with the deadline the endpoint armed, so no test
waits for a clock.
"""

from __future__ import annotations

import functools
import gc
import math
import socket
import ssl
import time
import types
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from chatd.config import LimitsConfig, TLSConfig
from chatd.outlet import Outlet
from chatd.tls import server_context
from chatd.transport.codec import Codec, Finished, Idle
from chatd.transport.endpoint import Endpoint
from chatd.transport.framing import LineBuffer
from chatd.transport.lifecycle import BYE_SECONDS, LINGER_SECONDS, Phase
from chatd.transport.lines import LineCodec
from chatd.transport.tlsstream import RECV_SIZE, TLSStream
from chatd.transport.worker import READ, WRITE, IOStats
from tests.conftest import PKI


class App:
    """A chat session as its codec sees it: it records what reaches it and
    answers a close with a `BYE`. Like a session, it holds its outlet and
    that outlet's `deliver`."""

    def __init__(self, outlet: Outlet) -> None:
        self.outlet = outlet
        self.deliver = outlet.deliver
        self.nick = ""
        self.messages_in = 0
        self.rate_limited = 0
        self.opened: tuple[str | None, str | None] | None = None
        self.lines: list[bytes | None] = []
        self.timers: list[float] = []
        self.closed: list[str] = []

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        self.opened = (reject, cert_nick)

    def on_lines(self, lines: list[bytes | None]) -> None:
        self.lines += lines
        self.messages_in += len(lines)
        if self.nick == "" and lines and lines[0] is not None:
            self.nick = lines[0].decode()

    def charge(self, frames: int) -> bool:
        return True

    def on_timer(self, now: float) -> None:
        self.timers.append(now)

    def on_close(self, reason: str, text: str) -> bytes:
        self.closed.append(reason)
        return b"BYE %s\n" % reason.encode()

    def limits_changed(self) -> None:
        pass


@dataclass
class Host:
    limits: LimitsConfig
    unregistered: int = 0
    handshake_failures: int = 0
    alpn: list[str | None] = field(default_factory=list)

    def open_codec(self, endpoint: Endpoint, alpn: str | None) -> Codec:
        self.alpn.append(alpn)
        return LineCodec(endpoint, App(endpoint))

    def unregister(self, endpoint: Endpoint) -> None:
        self.unregistered += 1

    def note_handshake_failure(self) -> None:
        self.handshake_failures += 1

    def note_rejected(self, endpoint: Endpoint, reason: str) -> None:
        raise AssertionError("no client is rejected here")


class Worker:
    """What an I/O worker does for its endpoints, on the test's thread."""

    hands_over = False  # a test that hands the ClientHello's step over sets it

    def __init__(self) -> None:
        self.stats = IOStats()
        self.dirty: list[Endpoint] = []
        self.readable: list[Endpoint] = []
        self.away: list[tuple[Endpoint, Callable[[], ssl.SSLError | None]]] = []

    def hand_over(self, conn: Endpoint, call: Callable[[], ssl.SSLError | None]) -> None:
        self.away.append((conn, call))

    def answer(self) -> None:
        """What a handshake thread does for the steps handed over: OpenSSL's part, then the answer."""
        away, self.away = self.away, []
        for conn, call in away:
            conn.handshake_answered(call())

    def in_thread(self) -> bool:
        return True

    def call_soon(self, call: Callable[[], None], conn: Endpoint | None = None) -> bool:
        call()
        return True

    def mark_dirty(self, conn: Endpoint) -> None:
        self.dirty.append(conn)

    def mark_readable(self, conn: Endpoint) -> None:
        self.readable.append(conn)

    def set_interest(self, conn: Endpoint, read: bool, write: bool) -> None:
        conn.interest = (READ if read else 0) | (WRITE if write else 0)

    def queue_handshake(self, conn: Endpoint) -> None:
        conn.handshake_step()  # at once: the worker's slice for handshakes is tested in test_worker.py

    def arm_timer(self, conn: Endpoint, when: float) -> None:
        conn.timer_at = min(conn.timer_at, when)

    def forget(self, conn: Endpoint) -> None:
        conn.interest = 0
        conn.timer_at = math.inf

    def turn(self) -> None:
        """The end of a worker's turn: read what TLS holds, then flush what was queued."""
        readable, self.readable = self.readable, []
        for conn in readable:
            conn.on_readable()
        while self.dirty:
            dirty, self.dirty = self.dirty, []
            for conn in dirty:
                conn.flush()

    def fire(self, conn: Endpoint) -> float:
        """The endpoint's timer, at the deadline it armed; returns that deadline."""
        when, conn.timer_at = conn.timer_at, math.inf
        assert when < math.inf, "no deadline armed"
        conn.on_timer(when)
        return when


class Client:
    """The client's end of a socketpair, TLS in memory, pumped by hand."""

    def __init__(self, sock: socket.socket) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out)
        self.closed = False  # the server's close_notify, or its FIN, has arrived

    def offer_only(self, ciphers: str) -> None:
        """Say a TLS 1.2 hello with only `ciphers` (before the handshake)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)
        self.tls = context.wrap_bio(self._in, self._out)

    def handshake(self) -> bool:
        self._pull()
        try:
            self.tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        self._push()
        return done

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._push()

    def read(self) -> bytes:
        """All the plaintext that has arrived so far."""
        self._pull()
        out = bytearray()
        while not self.closed:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                data = b""
            out += data
            self.closed = not data
        return bytes(out)

    def _push(self) -> None:
        if self._out.pending:
            self.sock.sendall(self._out.read())

    def _pull(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not data:
                self._in.write_eof()
                return
            self._in.write(data)


@dataclass
class Pair:
    endpoint: Endpoint
    client: Client
    worker: Worker
    host: Host

    @property
    def app(self) -> App:
        app = self.endpoint.app
        assert isinstance(app, App)
        return app


@pytest.fixture(scope="module")
def context(certs: PKI) -> ssl.SSLContext:
    return server_context(TLSConfig(cert=certs.server_cert, key=certs.server_key))


@pytest.fixture
def connect(context: ssl.SSLContext) -> Iterator[Callable[..., Pair]]:
    sockets: list[socket.socket] = []

    def make(worker: Worker | None = None, handshake: bool = True, sndbuf: int = 0, **limits: Any) -> Pair:
        host = Host(LimitsConfig(**limits))
        worker = worker or Worker()
        server_sock, client_sock = socket.socketpair()
        sockets.extend((server_sock, client_sock))
        if sndbuf:
            server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        server_sock.setblocking(False)
        tls = TLSStream(server_sock, context, bytearray(RECV_SIZE))
        endpoint = Endpoint(host, worker, tls, ("127.0.0.1", 50000), len(sockets), None)
        pair = Pair(endpoint, Client(client_sock), worker, host)
        endpoint.start()
        if handshake:
            for _ in range(10):
                done = pair.client.handshake()
                endpoint.on_readable()
                if done and endpoint.state is Phase.OPEN:
                    break
            assert endpoint.state is Phase.OPEN
            # The handshake's deadline is still in the worker's heap (it is
            # not taken out when the handshake ends); when it comes, nothing
            # is due and the timer is armed again for whatever is.
            worker.fire(endpoint)
        return pair

    yield make
    for sock in sockets:
        sock.close()


def lines(count: int, size: int) -> bytes:
    """`count` lines of `size` bytes each, newline included, each one different."""
    return b"".join(b"%06d" % i + b"x" * (size - 7) + b"\n" for i in range(count))


def drain(pair: Pair) -> bytes:
    """Read as the client until the server has closed its side, letting the
    server write whenever the client has made room."""
    received = bytearray()
    for _ in range(10_000):
        received += pair.client.read()
        if pair.client.closed:
            return bytes(received)
        pair.endpoint.on_writable()
    raise AssertionError("the server never closed its side")


def test_lines_reach_the_application_of_the_codec_the_host_chose(connect: Callable[..., Pair]) -> None:
    pair = connect()
    assert pair.host.alpn == [None]
    assert pair.app.opened == (None, None)
    pair.client.send(b"alice\nhello\n")
    pair.endpoint.on_readable()
    assert pair.app.lines == [b"alice", b"hello"]
    assert pair.worker.stats.bytes_in == 12
    assert pair.endpoint.interest == READ


def test_a_handshake_that_does_not_finish_in_time_fails(connect: Callable[..., Pair]) -> None:
    before = time.monotonic()
    pair = connect(handshake=False, handshake_timeout=10.0)
    assert before + 10.0 <= pair.endpoint.timer_at <= time.monotonic() + 10.0

    pair.worker.fire(pair.endpoint)
    assert pair.endpoint.state is Phase.CLOSED
    assert pair.host.handshake_failures == 1 and pair.host.unregistered == 1
    assert pair.worker.stats.disconnects == {"tls_handshake_failed": 1}


def handed_over(connect: Callable[..., Pair]) -> Pair:
    """A connection whose answer to the ClientHello is at a handshake thread."""
    return handed_over_with(connect)


def handed_over_with(connect: Callable[..., Pair], ciphers: str | None = None) -> Pair:
    worker = Worker()
    worker.hands_over = True
    pair = connect(worker, handshake=False)
    if ciphers is not None:
        pair.client.offer_only(ciphers)
    assert not pair.client.handshake()  # the ClientHello
    pair.endpoint.on_readable()
    assert [conn for conn, _ in worker.away] == [pair.endpoint]
    return pair


def test_a_handshake_whose_hello_is_handed_over_opens_once_the_answer_is_back(connect: Callable[..., Pair]) -> None:
    pair = handed_over(connect)
    pair.endpoint.on_readable()  # the worker takes no step of it meanwhile
    assert pair.endpoint.release_idle() is False  # nor gives back its buffers
    assert len(pair.worker.away) == 1 and pair.endpoint.state is Phase.HANDSHAKE

    pair.worker.answer()  # the server's flight leaves
    assert pair.client.handshake()
    pair.endpoint.on_readable()  # the client's Finished: taken on the worker, not handed over
    assert pair.worker.away == [] and pair.endpoint.state is Phase.OPEN
    pair.client.send(b"alice\n")
    pair.endpoint.on_readable()
    assert pair.app.lines == [b"alice"]


def test_a_connection_closed_while_its_hello_is_away_ignores_the_answer(connect: Callable[..., Pair]) -> None:
    pair = handed_over(connect)
    pair.worker.fire(pair.endpoint)  # the handshake's deadline
    assert pair.endpoint.state is Phase.CLOSED
    pair.worker.answer()
    assert pair.endpoint.state is Phase.CLOSED
    assert pair.host.alpn == [] and pair.host.handshake_failures == 1


def test_a_hello_the_handshake_thread_refuses_fails_the_handshake_with_its_alert(
    connect: Callable[..., Pair],
) -> None:
    pair = handed_over_with(connect, ciphers="AES128-SHA")  # TLS 1.2, no ECDHE: none of the server's
    pair.worker.answer()
    assert pair.endpoint.state is Phase.CLOSED and pair.host.handshake_failures == 1
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        pair.client.handshake()  # the alert OpenSSL wrote on the handshake thread was sent


def test_the_application_deadline_reaches_its_on_timer(connect: Callable[..., Pair]) -> None:
    pair = connect()
    deadline = time.monotonic() + 60.0
    pair.endpoint.set_deadline(deadline)
    assert pair.endpoint.timer_at == deadline
    pair.worker.fire(pair.endpoint)
    assert pair.app.timers == [deadline]
    assert pair.endpoint.timer_at == math.inf  # spent, and nothing else is due


def test_a_client_is_not_read_while_its_own_queue_is_over_half_full(connect: Callable[..., Pair]) -> None:
    pair = connect(send_queue_bytes=8192)
    pair.endpoint.deliver(b"x" * 4097)  # its worker has not flushed yet
    pair.client.send(b"hi\n")
    pair.endpoint.on_readable()
    assert pair.app.lines == []
    assert pair.endpoint.interest == 0  # not even watched: TCP holds the client back

    pair.worker.turn()  # the flush: the socket takes it all
    assert pair.endpoint.interest == READ
    pair.worker.turn()  # marked readable: what TLS or the socket holds is read
    assert pair.app.lines == [b"hi"]


def test_a_sender_waits_for_a_recipient_far_behind_and_reads_again_once_it_is_taken(
    connect: Callable[..., Pair],
) -> None:
    worker = Worker()
    sender = connect(worker, send_queue_bytes=8192)
    recipient = connect(worker, send_queue_bytes=8192)
    recipient.endpoint.deliver(b"x" * 4097, 1, sender.endpoint)  # more than half a queue not taken
    sender.client.send(b"more\n")
    sender.endpoint.on_readable()
    assert sender.app.lines == []
    assert sender.endpoint.interest == 0

    worker.turn()  # the recipient's worker takes its queue: the sender may go on
    assert sender.endpoint.interest == READ
    worker.turn()
    assert sender.app.lines == [b"more"]
    assert recipient.client.read() == b"x" * 4097


def test_a_bye_leaves_then_the_peer_is_drained_until_the_linger_ends(connect: Callable[..., Pair]) -> None:
    pair = connect()
    pair.client.send(b"alice\n")
    pair.endpoint.on_readable()
    app = pair.app
    closing_at = time.monotonic()
    pair.endpoint.begin_close("quit")
    assert pair.endpoint.state is Phase.CLOSING
    assert pair.endpoint.timer_at <= time.monotonic() + BYE_SECONDS

    pair.worker.turn()
    assert pair.client.read() == b"BYE quit\n"
    assert pair.client.closed  # close_notify, then FIN
    assert pair.endpoint.queued == 0  # the BYE counted while it waited, and left
    assert closing_at + LINGER_SECONDS <= pair.endpoint.timer_at <= time.monotonic() + LINGER_SECONDS

    pair.worker.fire(pair.endpoint)
    assert pair.endpoint.state is Phase.CLOSED
    assert pair.worker.stats.disconnects == {"quit": 1}
    assert app.closed == ["quit"]  # once: the end of the linger does not tell it again
    assert pair.host.unregistered == 1


def test_a_client_that_takes_nothing_is_a_slow_consumer_and_gets_whole_lines_then_bye(
    connect: Callable[..., Pair],
) -> None:
    pair = connect(send_queue_bytes=20_000, sndbuf=4096)
    block = lines(100, 1000)
    pair.endpoint.deliver(block, 100)
    pair.worker.turn()
    assert pair.worker.stats.slow_consumers == 1
    assert pair.endpoint.state is Phase.CLOSING

    received = drain(pair)
    assert received.endswith(b"\nBYE slow_consumer\n")
    sent = received.split(b"\n")[:-2]
    assert 0 < len(sent) < 100
    assert sent == block.split(b"\n")[: len(sent)]  # whole lines, in order: the cut one finished

    pair.worker.fire(pair.endpoint)
    assert pair.worker.stats.disconnects == {"slow_consumer": 1}


def test_a_socket_that_takes_nothing_for_write_timeout_ends_the_connection(connect: Callable[..., Pair]) -> None:
    pair = connect(send_queue_bytes=1 << 20, write_timeout=30.0, sndbuf=4096)
    pair.endpoint.deliver(b"x" * 200_000)
    refused_from = time.monotonic()
    pair.worker.turn()
    assert pair.endpoint.interest == READ | WRITE
    assert pair.worker.stats.slow_consumers == 0  # under send_queue_bytes
    assert refused_from + 30.0 <= pair.endpoint.timer_at <= time.monotonic() + 30.0

    pair.worker.fire(pair.endpoint)
    assert pair.endpoint.state is Phase.CLOSED
    assert pair.worker.stats.disconnects == {"write_timeout": 1}


def test_switch_codec_moves_the_counters_to_the_new_codecs_application(connect: Callable[..., Pair]) -> None:
    pair = connect()
    first = pair.app
    second = App(pair.endpoint)
    pair.endpoint.switch_codec(LineCodec(pair.endpoint, second))
    assert pair.endpoint.app is second
    pair.client.send(b"bob\nhi\n")
    pair.endpoint.on_readable()
    assert (first.lines, second.lines) == ([], [b"bob", b"hi"])

    pair.endpoint.finish("connection_lost")
    assert second.closed == ["connection_lost"] and first.closed == []
    assert isinstance(pair.endpoint.codec, Idle)
    app = pair.endpoint.app
    assert isinstance(app, Finished)
    assert (app.nick, app.messages_in, app.rate_limited) == ("bob", 2, 0)


def test_a_finished_endpoint_is_freed_at_once_with_its_codec_and_application(connect: Callable[..., Pair]) -> None:
    pair = connect()
    pair.client.send(b"alice\n")
    pair.endpoint.on_readable()
    pair.endpoint.deliver(b"MSG #lobby alice hi\n")
    endpoint, app = weakref.ref(pair.endpoint), weakref.ref(pair.app)
    pair.endpoint.finish("quit")
    pair.worker.turn()
    gc.disable()
    try:
        del pair
        assert app() is None
        assert endpoint() is None  # no cycle through its send queue: no GC pass needed
    finally:
        gc.enable()


def test_the_pump_keeps_no_object_per_connection(connect: Callable[..., Pair]) -> None:
    # An idle client's memory decides how many fit (docs/architecture.md,
    # "Memory per connection"): the pump is functions the endpoint passes
    # itself to, not an object of 96 bytes per client that copies its fields.
    pair = connect()
    pair.client.send(b"alice\n")
    pair.endpoint.on_readable()
    held = gc.get_referents(pair.endpoint)
    assert [type(obj).__name__ for obj in held if type(obj).__module__ == "chatd.transport.pump"] == []


def test_an_idle_client_keeps_no_partial_line_buffer_and_no_list_of_unsent_blocks(connect: Callable[..., Pair]) -> None:
    # Between lines the codec's line buffer holds no bytearray, and a queue
    # that wrote everything keeps its outbox only: 56 bytes each per idle client.
    pair = connect()
    pair.client.send(b"ali")  # a line in two reads leaves a partial line behind, at first
    pair.endpoint.on_readable()
    pair.client.send(b"ce\n")
    pair.endpoint.on_readable()
    assert pair.app.lines == [b"alice"]
    pair.endpoint.deliver(b"MSG #lobby bob hi\n")
    pair.endpoint.deliver(b"MSG #lobby carol hi\n")
    pair.worker.turn()
    assert pair.client.read() == b"MSG #lobby bob hi\nMSG #lobby carol hi\n"
    (buffer,) = [obj for obj in gc.get_referents(pair.endpoint.codec) if isinstance(obj, LineBuffer)]
    assert [obj for obj in gc.get_referents(buffer) if isinstance(obj, bytearray)] == []
    assert len([obj for obj in gc.get_referents(pair.endpoint.send_queue) if isinstance(obj, list)]) == 1


def test_the_send_queue_asks_the_worker_itself_with_no_callable_made_per_client(connect: Callable[..., Pair]) -> None:
    # A functools.partial of the worker's bound method was 275 bytes per client.
    pair = connect()
    held = gc.get_referents(pair.endpoint.send_queue)
    assert pair.worker in held and pair.endpoint in held
    assert [type(obj).__name__ for obj in held if isinstance(obj, (functools.partial, types.MethodType))] == []
