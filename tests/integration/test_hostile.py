"""Hostile clients against the live daemon: connections that never start TLS or
trickle it (slowloris), random bytes instead of TLS, random lines after registration, and forged TLS
records after a real handshake. Each is dropped or answered by the protocol,
never costs a well-behaved client anything, and never crashes the daemon.

The property-based tests share one daemon per test: the `@given` function is
defined inside the test, so the daemon starts once, not per example.
"""

from __future__ import annotations

import re
import selectors
import socket
import ssl
import time
import uuid
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Daemon, assert_healthy, scrape, wait_until, with_io_threads
from tests.support.chatclient import ChatClient
from tests.support.hellos import Client

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# docs/protocol.md, "Server → client" and "Errors".
VERBS = frozenset(
    "HELLO NICK WELCOME JOIN TOPIC USERS CURRENT PART LEAVE RENAME MSG ACTION DM HISTORY ROOM ROOMS "
    "PONG INFO ERR BYE".split()
)
ERR_CODES = frozenset(
    "nick_invalid nick_taken line_too_long bad_encoding unknown_command missing_argument "
    "no_such_nick room_invalid not_in_room no_such_room too_many_rooms bad_argument no_history "
    "rate_limited server_full too_many_connections throttled".split()
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _wait_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the server hangs up (EOF or reset); return what it sent."""
    received = b""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the server did not close the connection (sent {received[:64]!r})"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return received
        if not chunk:
            return received
        received += chunk


CLIENT_HELLO = Client().hello()  # a real TLS ClientHello, as Python's ssl would send it to chatd


# -- connections that never finish the handshake ------------------------------------------


# How long the test below waits for all its sockets to be closed: a deadline for
# the wait, not a bound on the daemon (it closes them after `handshake_timeout`).
CLOSE_WAIT = 60.0


@with_io_threads(1, 2)
def test_100_connections_that_never_start_the_handshake(start_daemon: Callable[..., Daemon], io_threads: int) -> None:
    """100 sockets that connect and send nothing cost the registered clients
    nothing: their lines go round while all 100 still wait (an I/O thread that
    waited on a silent socket would hold every echo until that socket's
    handshake timed out), and each silent socket is closed by the handshake
    timeout, counted from accept, not before."""
    timeout = 2.0
    daemon = start_daemon(server={"io_threads": io_threads}, limits={"handshake_timeout": timeout})
    alice = daemon.client("alice")
    bob = daemon.client("bob")
    alice.expect("JOIN #lobby bob")
    opened = time.monotonic()
    silent = [socket.create_connection((daemon.host, daemon.port), timeout=5) for _ in range(100)]
    selector = selectors.DefaultSelector()
    for sock in silent:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, sock)
    closed_after: list[float] = []
    echoed_while_all_waited = 0  # ticks that went round before any silent socket was closed
    n = 0
    try:
        while len(closed_after) < len(silent):
            assert time.monotonic() - opened < CLOSE_WAIT, f"only {len(closed_after)} of 100 were closed"
            # The registered clients chat on.
            alice.send(f"tick {n}")
            assert alice.readline() == f"MSG #lobby alice tick {n}"
            assert bob.readline() == f"MSG #lobby alice tick {n}"
            n += 1
            for key, _ in selector.select(timeout=0.05):
                sock = key.data
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                assert data == b"", f"a silent client was sent {data!r}"
                selector.unregister(sock)
                closed_after.append(time.monotonic() - opened)
            if not closed_after:  # read after the echoes: they came first
                echoed_while_all_waited = n
    finally:
        selector.close()
        for sock in silent:
            sock.close()
    # The order of events, not a latency: the chat went on while every silent
    # socket was still waiting for its handshake.
    assert echoed_while_all_waited >= 1, f"no line went round before the first silent socket was closed ({n} ticks)"
    # Closed because of the timeout (the deadline runs from accept), not before.
    # (A lower bound: a busy machine only makes the close later.)
    assert min(closed_after) >= timeout - 0.1, min(closed_after)
    timeouts = daemon.find_events("tls_handshake_failed", error="timeout")
    assert len(timeouts) == 100
    assert_healthy(daemon)


@with_io_threads(1, 2)
def test_slowloris_handshakes_are_cut_at_the_handshake_timeout(
    start_daemon: Callable[..., Daemon], io_threads: int
) -> None:
    """A ClientHello trickled a byte at a time: activity must not extend the
    deadline. The trickle goes on (a byte every 50 ms or so, far more often than
    the 1 s timeout) until the daemon closes the sockets, or until all of the
    hello but its last byte has gone: a daemon that counted the deadline from
    the last byte would get that far, some 25 s; this one closes each with a
    handshake timeout, not before the timeout has passed since accept."""
    timeout = 1.0
    daemon = start_daemon(server={"io_threads": io_threads}, limits={"handshake_timeout": timeout})
    alice = daemon.client("alice")
    opened = time.monotonic()
    tricklers = [socket.create_connection((daemon.host, daemon.port), timeout=5) for _ in range(20)]
    selector = selectors.DefaultSelector()
    for sock in tricklers:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, sock)
    closed_after: list[float] = []
    offset = 0
    try:
        while len(closed_after) < len(tricklers):
            # Counted in bytes, not seconds: how far the trickle got.
            assert offset < len(CLIENT_HELLO) - 1, (
                f"all of the hello but a byte went, and {len(closed_after)} of 20 were closed"
            )
            for key in selector.get_map().values():
                try:
                    key.data.send(CLIENT_HELLO[offset : offset + 1])
                except OSError:
                    pass  # reset by the daemon; the select below notices the close
            offset += 1
            for key, _ in selector.select(timeout=0.05):  # also paces the trickle
                sock = key.data
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                assert data == b"", f"a trickler was sent {data!r}"
                selector.unregister(sock)
                closed_after.append(time.monotonic() - opened)
    finally:
        selector.close()
        for sock in tricklers:
            sock.close()
    # Each was cut by the handshake timeout, and not before it had passed since accept.
    assert len(daemon.find_events("tls_handshake_failed", error="timeout")) == 20
    assert min(closed_after) >= timeout - 0.1, closed_after
    alice.send("/ping")
    assert alice.readline() == "PONG"
    assert_healthy(daemon)


# -- random bytes instead of TLS ---------------------------------------------------------------


@st.composite
def _mutated_hello(draw: st.DrawFn) -> bytes:
    data = bytearray(CLIENT_HELLO)
    for index, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=8)):
        data[index] = value
    return bytes(data[: draw(st.integers(0, len(data)))])


_not_tls = st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda body: b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body, st.binary(max_size=600)),
    _mutated_hello(),
    st.sampled_from([b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", b"NICK mallory\r\n", b"\x00" * 64]),
)


def test_random_bytes_instead_of_a_handshake(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"handshake_timeout": 2})
    alice = daemon.client("alice")
    tried = 0

    @FUZZ
    @given(data=_not_tls)
    def garbage_is_dropped(data: bytes) -> None:
        nonlocal tried
        tried += 1
        with socket.create_connection((daemon.host, daemon.port), timeout=5) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)  # and nothing more: EOF ends any handshake
            except OSError:  # ECONNRESET, EPIPE, ENOTCONN: the daemon already hung up
                return
            reply = _wait_closed(sock)
        # At most TLS records (an alert, or a ServerHello for a hello that
        # survived mutation), never a chat line.
        assert reply == b"" or reply[0] in (0x15, 0x16), reply[:32]
        assert b"NICK" not in reply
        assert daemon.process is not None and daemon.process.poll() is None, daemon.log()

    garbage_is_dropped()
    alice.send("/ping")
    assert alice.readline() == "PONG"
    wait_until(lambda: len(daemon.find_events("tls_handshake_failed")) >= tried, 5, "every failure logged")
    assert len(daemon.find_events("connect")) == 1  # alice only
    assert_healthy(daemon)


# -- random lines after registration ---------------------------------------------------------

_COMMANDS = [
    b"/me ",
    b"/msg ",
    b"/msg watcher ",
    b"/nick ",
    b"/who",
    b"/ping ",
    b"/help",
    b"//",
    b"/",
    b"/x",
    b"/join ",
    b"/join #",
    b"/part",
    b"/part #",
    b"/part #lobby ",
    b"/topic ",
    b"/topic #lobby ",
    b"/rooms",
    b"/who #",
    b"/msg #",
    b"/msg #lobby ",
    b"/history ",
    b"/history #lobby ",
    b"/history #lobby before ",
    b"/history #lobby after ",
    b"/history watcher ",
]
_line = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=80).map(str.encode),
    st.builds(bytes.__add__, st.sampled_from(_COMMANDS), st.binary(max_size=40)),
    st.builds(bytes.__add__, st.sampled_from(_COMMANDS), st.text(max_size=40).map(str.encode)),
)
# `/quit` ends the connection by design; everything else must leave it up.
_lines = (
    st.lists(_line, min_size=1, max_size=20)
    .map(lambda ls: b"\n".join(ls) + b"\n")
    .filter(lambda data: not any(piece.startswith(b"/quit") for piece in data.split(b"\n")))
)


def _check_line(line: str) -> str:
    """A server line as docs/protocol.md defines them; returns its verb. (The
    client has already checked and taken off its tags.)"""
    verb, _, rest = line.partition(" ")
    assert verb in VERBS, line
    assert not _CONTROL.search(line), line
    if verb == "ERR":
        assert rest.split(" ")[0] in ERR_CODES, line
    return verb


def _sync(client: ChatClient) -> list[str]:
    """Read until the answer to a `/ping` with a fresh token; check every line on the way."""
    token = uuid.uuid4().hex
    client.send(f"/ping {token}")
    lines: list[str] = []
    while True:
        line = client.readline(timeout=5)
        verb = _check_line(line)
        assert verb != "BYE", f"unexpected {line!r}"
        if line == f"PONG {token}":
            return lines
        lines.append(line)


def test_random_lines_after_registration(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"max_strikes": 1000, "max_line_bytes": 256})
    watcher = daemon.client("watcher")
    count = 0

    @FUZZ
    @given(data=_lines)
    def answered_by_the_protocol(data: bytes) -> None:
        nonlocal count
        count += 1
        client = daemon.client(f"fuzz{count}")
        client.sock.sendall(data)
        lines = _sync(client)
        assert all(not line.startswith(("HELLO", "NICK", "WELCOME")) for line in lines), lines
        nick, in_lobby = client.nick, True
        for line in lines:  # follow renames and the lobby's PART/JOIN, for the LEAVE below
            verb, *words = line.split(" ")
            if verb == "RENAME" and words[0] == nick:
                nick = words[1]
            elif verb in ("PART", "JOIN") and words[:2] == ["#lobby", nick]:
                in_lobby = verb == "JOIN"
        client.send("/quit")
        assert client.expect_closed()[-1:] == ["BYE quit"]
        client.close()
        # The watcher (in #lobby only) saw only valid lines, ending with this
        # client's LEAVE if it was still in #lobby, and no LEAVE otherwise.
        seen = _sync(watcher)
        if in_lobby:
            assert seen and seen[-1] == f"LEAVE {nick} quit", seen
        else:
            assert not [line for line in seen if line.startswith("LEAVE ")], seen

    answered_by_the_protocol()
    assert not daemon.find_events("disconnect", reason="too_many_errors")
    assert_healthy(daemon)


# -- forged TLS records after a real handshake ------------------------------------------------


class RawTLS:
    """TLS through memory BIOs over a plain socket: the test can speak TLS, and
    also write bytes of its own choosing straight onto the TCP stream."""

    def __init__(self, daemon: Daemon, version: ssl.TLSVersion) -> None:
        context = ssl.create_default_context(cafile=str(daemon.pki.ca))
        context.minimum_version = context.maximum_version = version
        self.sock = socket.create_connection((daemon.host, daemon.port), timeout=5)
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_hostname="localhost")
        self._buffer = b""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._pump()
        self.sock.sendall(self._out.read())

    def _pump(self) -> None:
        if self._out.pending:
            self.sock.sendall(self._out.read())
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("closed by the server")
        self._in.write(data)

    def send(self, line: str) -> None:
        self.tls.write(line.encode() + b"\n")
        self.sock.sendall(self._out.read())

    def readline(self) -> str:
        while b"\n" not in self._buffer:
            try:
                self._buffer += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._pump()
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def read_close_notify(self) -> bytes:
        """Read to the server's TLS close_notify; what came before it."""
        data = self._buffer
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._pump()  # EOFError if the FIN comes without a close_notify
                continue
            if not chunk:  # SSL_read's "zero return": the peer's close_notify
                return data
            data += chunk


_records = st.tuples(
    st.sampled_from([0x17, 0x17, 0x17, 0x14, 0x15, 0x16, 0x18]),  # mostly application_data
    st.sampled_from([b"\x03\x03", b"\x03\x01", b"\x03\x04", b"\xfe\xfd"]),
    st.one_of(st.binary(min_size=0, max_size=64), st.binary(min_size=64, max_size=17000)),
)


def test_forged_tls_records_after_the_handshake(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon()
    watcher = daemon.client("watcher")
    count = 0

    @FUZZ
    @given(
        record=_records,
        version=st.sampled_from([ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]),
        register=st.booleans(),
    )
    def forged_records_end_the_connection(
        record: tuple[int, bytes, bytes], version: ssl.TLSVersion, register: bool
    ) -> None:
        nonlocal count
        count += 1
        content_type, legacy_version, body = record
        client = RawTLS(daemon, version)
        try:
            assert client.readline().startswith("HELLO 5 chatd ")
            assert client.readline().startswith("ACCOUNTS ")
            assert client.readline() == "NICK"
            if register:
                client.send(f"forger{count}")
                assert client.readline().startswith(f"WELCOME forger{count} ")
            forged = bytes([content_type]) + legacy_version + len(body).to_bytes(2, "big") + body
            try:
                client.sock.sendall(forged)
            except (ConnectionResetError, BrokenPipeError):
                pass  # dropped before all of it was written
            else:
                _wait_closed(client.sock)
        finally:
            client.sock.close()
        if register:
            assert _sync(watcher) == [f"JOIN #lobby forger{count}", f"LEAVE forger{count} connection_lost"]
        assert daemon.process is not None and daemon.process.poll() is None, daemon.log()

    forged_records_end_the_connection()
    dropped = [e for e in daemon.find_events("disconnect") if e.get("nick") != "watcher"]
    assert dropped and all(e["reason"] == "connection_lost" for e in dropped), dropped
    watcher.send("still here")
    assert watcher.readline() == "MSG #lobby watcher still here"
    assert_healthy(daemon)


# -- a client that keeps talking after BYE ----------------------------------------------------


def test_the_daemon_drains_a_client_that_talks_after_bye(start_daemon: Callable[..., Daemon]) -> None:
    # docs/architecture.md: after BYE the daemon sends FIN and drains the peer for
    # up to 2 s, so that late data from the client cannot make the daemon's kernel
    # answer with a reset that destroys the BYE before the client has read it.
    daemon = start_daemon()
    client = RawTLS(daemon, ssl.TLSVersion.TLSv1_3)
    try:
        assert client.readline().startswith("HELLO 5 chatd ")
        assert client.readline().startswith("ACCOUNTS ")
        assert client.readline() == "NICK"
        client.send("chatty")
        assert client.readline().startswith("WELCOME chatty ")
        assert [client.readline() for _ in range(4)] == [
            "JOIN #lobby chatty",
            "USERS #lobby chatty",
            "HISTORY #lobby 0 end",
            "CURRENT #lobby",
        ]
        client.send("/quit")
        assert client.readline() == "BYE quit"
        received = scrape(daemon)("chatd_received_bytes_total")
        late = "did you say something?"
        client.send(late)  # a client that has not noticed yet
        # Still draining: the daemon read the late line (it counts the bytes it
        # reads, after TLS) and has not given up on the connection.
        wait_until(
            lambda: scrape(daemon)("chatd_received_bytes_total") >= received + len(late) + 1,
            10,
            "the daemon to read the line sent after its BYE",
        )
        assert not daemon.find_events("disconnect", nick="chatty"), "stopped draining"
        assert scrape(daemon)("chatd_clients", state="closing") == 1
        # The BYE was followed by a TLS close_notify (and FIN): a client that reads
        # it, as a careful one does, then closes without a reset.
        assert client.read_close_notify() == b""
    finally:
        client.sock.close()
    event = daemon.wait_for_event("disconnect", nick="chatty")
    assert (event["reason"], event["detail"]) == ("quit", "closed by peer")
    assert_healthy(daemon)
