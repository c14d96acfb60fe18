"""Issue 19, items 1 and 6: ClientHellos sent the way an attacker would, as
raw TCP to a real chatd at the shipped defaults of config/chatd.yaml (web
on, one I/O thread, the shipped limits).

The hellos are a real client's (OpenSSL's, through Python's `ssl`; see
tests/support/hellos.py), re-framed or edited where the attack needs what no real
client sends. The server's cost is read as the process's CPU time from
/proc/<pid>/stat, never as wall time.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatd.config import TLSConfig
from chatd.tls import server_context, set_groups
from tests.conftest import REPO, Daemon, assert_healthy, wait_until
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
from tests.support.proc import cpu_seconds
from tests.support.wsclient import https_request, tls_http

SHIPPED = yaml.safe_load((REPO / "config" / "chatd.yaml").read_text())
# A 14 KB ClientHello, as OpenSSL's client writes it when offered many ALPN names.
BIG_ALPN = ["http/1.1"] + ["x" * 250] * 55
# Key shares the server does not take first, then one it does: a HelloRetryRequest.
RETRY_GROUPS = ["X448", "prime256v1"]


@pytest.fixture
def shipped(start_daemon: Callable[..., Daemon]) -> Callable[..., Daemon]:
    """Start chatd at the shipped web, limits, threads and groups, with `web` changes."""

    def start(**web: Any) -> Daemon:
        return start_daemon(
            server={"io_threads": SHIPPED["server"]["io_threads"]},
            tls={"groups": SHIPPED["tls"]["groups"]},
            limits=SHIPPED["limits"],
            web={**SHIPPED["web"], **web},
        )

    return start


def connect(daemon: Daemon) -> socket.socket:
    sock = socket.create_connection((daemon.host, daemon.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one segment per send
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """What the server sends until it hangs up (EOF or reset)."""
    received = b""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server did not close the connection (sent {received[:64]!r})")


def read_records(sock: socket.socket, count: int) -> bytes:
    """`count` whole TLS records from the server."""
    data = b""
    while True:
        at, found = 0, 0
        while at + 5 <= len(data) and at + 5 + int.from_bytes(data[at + 3 : at + 5], "big") <= len(data):
            at += 5 + int.from_bytes(data[at + 3 : at + 5], "big")
            found += 1
            if found == count:
                return data[:at]
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data[:64]!r}"
        data += chunk


def _tcp_key(address: tuple[str, int]) -> str:
    host, port = address
    return f"{int.from_bytes(socket.inet_aton(host), 'little'):08X}:{port:04X}"


def taken_by_server(sock: socket.socket) -> bool:
    """True once the server process has read all that `sock` sent: nothing
    unacknowledged on our side, nothing unread on its side (/proc/net/tcp)."""
    ours, theirs = _tcp_key(sock.getsockname()), _tcp_key(sock.getpeername())
    queues = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        queues[(fields[1], fields[2])] = fields[4].split(":")
    if (ours, theirs) not in queues or (theirs, ours) not in queues:
        return False
    sent, _ = queues[(ours, theirs)]
    _, unread = queues[(theirs, ours)]
    return int(sent, 16) == 0 and int(unread, 16) == 0


# -- item 1: a ClientHello in 1-byte records ----------------------------------------------------


@pytest.mark.parametrize("web", [True, False], ids=["web", "web-disabled"])
def test_a_hello_in_1_byte_records_costs_little_and_is_refused(shipped: Callable[..., Daemon], web: bool) -> None:
    daemon = shipped(enabled=web)
    alice = daemon.client("alice")
    message = client_hello(BIG_ALPN)
    assert 14000 < len(message) < 16384
    before = cpu_seconds(daemon.pid)
    with connect(daemon) as sock:
        for at in range(len(message)):
            try:
                sock.sendall(record(message[at : at + 1]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if at == 0:
                alice.send("/ping during")  # while the probe runs
            # The attack's pace: 2 ms a record, unless the server has answered.
            if select.select([sock], [], [], 0.002)[0]:
                break
        reply = read_until_closed(sock)
    failed = daemon.wait_for_event("tls_handshake_failed", timeout=10)
    spent = cpu_seconds(daemon.pid) - before
    assert spent < 0.05, f"the probe cost the server {spent:.3f}s of CPU"
    # The alert, unless a record sent after the server's last read made its
    # close a reset, which may cost us the alert: the log says why, below.
    assert reply in (UNEXPECTED_MESSAGE_ALERT, b""), reply[:32]
    assert failed["error"] == (
        f"client_hello_too_many_records: a ClientHello of {len(message)} bytes in more than 5 TLS records"
    )
    assert alice.readline() == "PONG during"
    # Clients that send their hello as clients do are served as before.
    if web:
        with tls_http(daemon.port, daemon.pki.ca, alpn=["http/1.1"]) as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
            assert https_request(daemon.port, daemon.pki.ca, sock=tls)[0] == 200
    line = daemon.client()  # no ALPN: the line protocol
    line.expect_greeting()
    assert_healthy(daemon)


# -- item 6: the ALPN refusal for any ClientHello OpenSSL takes ------------------------------------


def test_an_h2_only_hello_past_16_kib_in_two_pieces_is_refused(shipped: Callable[..., Daemon]) -> None:
    daemon = shipped()
    message = padded(client_hello(["h2"]), 20000)
    flight = in_records(message, 16384)
    with connect(daemon) as sock:
        sock.sendall(flight[:17000])  # the first record and some of the second
        wait_until(lambda: taken_by_server(sock), 10, "the server to read the first piece")
        sock.sendall(flight[17000:])
        reply = read_until_closed(sock)
    assert reply == NO_APPLICATION_PROTOCOL_ALERT, reply[:32]
    daemon.wait_for_event("tls_handshake_failed", error="no_application_protocol")
    # The same hello offering http/1.1 is answered: the size itself is fine.
    with connect(daemon) as sock:
        sock.sendall(in_records(padded(client_hello(["h2", "http/1.1"]), 20000), 16384))
        server_hello = read_records(sock, 1)
    assert server_hello[0] == 22 and server_hello[5] == 2, server_hello[:16]
    assert_healthy(daemon)


@pytest.mark.parametrize("waits", [True, False], ids=["after-the-retry", "without-waiting"])
def test_the_second_hello_after_a_retry_is_refused_without_http(shipped: Callable[..., Daemon], waits: bool) -> None:
    daemon = shipped()
    client = Client(["http/1.1"], groups=RETRY_GROUPS, ca=daemon.pki.ca)
    first = client.hello()
    with connect(daemon) as sock:
        if waits:
            sock.sendall(first)
            retry = read_records(sock, 1)
        else:
            retry = _retry_from_memory(daemon, first)
        assert retry[11:43] == RETRY_RANDOM  # a HelloRetryRequest
        (ccs, _), (kind, second) = records(client.answer(retry))
        assert (ccs, kind) == (20, 22)
        # No client changes its ALPN between hellos, so this one is edited; an
        # attacker's client may, and OpenSSL would take it and select nothing.
        edited = CHANGE_CIPHER_SPEC + record(with_alpn(second, [b"h2"]))
        sock.sendall(edited if waits else first + edited)
        reply = read_until_closed(sock)
    assert reply.endswith(NO_APPLICATION_PROTOCOL_ALERT), reply[-32:]
    assert b"\x16\x03\x03" not in reply[len(retry) :].replace(NO_APPLICATION_PROTOCOL_ALERT, b""), "a ServerHello"
    daemon.wait_for_event("tls_handshake_failed", error="no_application_protocol")
    assert_healthy(daemon)


def _retry_from_memory(daemon: Daemon, first: bytes) -> bytes:
    """The HelloRetryRequest the daemon will send for `first`, from its own
    TLS settings over memory BIOs: a client that sends its second hello
    without waiting must know it in advance, and can."""
    groups = tuple(SHIPPED["tls"]["groups"])
    tls = TLSConfig(cert=daemon.pki.server_cert, key=daemon.pki.server_key, groups=groups)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context(tls, "test", web=True).wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(first)
    with pytest.raises(ssl.SSLWantReadError):
        server.do_handshake()
    flight = outgoing.read()
    return flight[: 5 + int.from_bytes(flight[3:5], "big")]


@pytest.mark.parametrize("alpn", [["http/1.1"], None], ids=["http", "no-alpn"])
def test_real_clients_that_need_a_retry_are_served(shipped: Callable[..., Daemon], alpn: list[str] | None) -> None:
    # An X448 key share only: the daemon asks again (the test above sees its
    # HelloRetryRequest), and the second hello, the same offer, is served.
    daemon = shipped()
    context = ssl.create_default_context(cafile=str(daemon.pki.ca))
    set_groups(context, RETRY_GROUPS)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    with context.wrap_socket(connect(daemon), server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() == (alpn[0] if alpn else None)
        if alpn:
            assert https_request(daemon.port, daemon.pki.ca, sock=tls)[0] == 200
        else:
            assert tls.recv(4096).startswith(b"HELLO 5 ")
    assert not daemon.find_events("tls_handshake_failed")
