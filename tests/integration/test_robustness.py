"""The daemon under conditions production brings and polite tests do not: SIGTERM
in the middle of heavy traffic, a crowd connecting at the same moment, peers that
reset mid-handshake, and an IPv6 listener.
"""

from __future__ import annotations

import concurrent.futures
import signal
import socket
import ssl
import struct
import threading
from collections.abc import Callable

import pytest

from chatd.cli import SHUTDOWN_GRACE
from tests.conftest import CRASH_EVENTS, Daemon, assert_healthy, wait_until, with_io_threads
from tests.support.chatclient import ChatClient

# -- SIGTERM under heavy traffic ------------------------------------------------------------

SENDERS = 4
BURST = 20  # lines a sender writes before it reads again
LINE = 1000
STUCK_BYTES = 8 << 20  # sent to the room before SIGTERM: far more than the kernel buffers hold


def _send_and_read_until_bye(client: ChatClient, sent: list[int], outcome: dict[str, list[str]]) -> None:
    """Write a burst, read up to its echo, and again, until the server says `BYE`.

    Records the lines that came after the last `MSG` (the `BYE` and what follows).
    """
    tail: list[str] = []
    try:
        n = 0
        while True:
            for _ in range(BURST):
                client.send(f"{client.nick} {n} " + "x" * LINE)
                n += 1
                sent[0] += LINE
            while not (line := client.readline(timeout=15)).startswith(
                f"MSG #lobby {client.nick} {client.nick} {n - 1} "
            ):
                if line.startswith("BYE"):
                    tail = [line, *client.expect_closed(timeout=15)]
                    return
    except BaseException as exc:  # reported by the test thread
        tail.append(repr(exc))
    finally:
        outcome[client.nick] = tail


def _read_until_bye(client: ChatClient, outcome: dict[str, list[str]]) -> None:
    tail: list[str] = []
    try:
        while not (line := client.readline(timeout=15)).startswith("BYE"):
            pass
        tail = [line, *client.expect_closed(timeout=15)]
    except BaseException as exc:  # reported by the test thread
        tail.append(repr(exc))
    finally:
        outcome[client.nick] = tail


@with_io_threads(1, 2)
def test_sigterm_under_heavy_traffic_with_a_stuck_reader(start_daemon: Callable[..., Daemon], io_threads: int) -> None:
    """SIGTERM while senders flood the room and one client never reads: chatd exits 0
    within its grace period, every reading client gets `BYE shutdown` as its last
    line, and nothing was left running or crashed."""
    # A queue big enough that the stuck reader is still connected at SIGTERM, its
    # socket full, so that its BYE cannot be delivered.
    daemon = start_daemon(server={"io_threads": io_threads}, limits={"send_queue_bytes": 256 << 20})
    stuck = daemon.client("stuck")
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    senders = [daemon.client(f"s{i}") for i in range(SENDERS)]
    listeners = [daemon.client(f"l{i}") for i in range(2)]
    sent = [0]  # bytes of text, all senders together (a rough count is enough)
    outcome: dict[str, list[str]] = {}
    threads = [threading.Thread(target=_send_and_read_until_bye, args=(s, sent, outcome)) for s in senders]
    threads += [threading.Thread(target=_read_until_bye, args=(c, outcome)) for c in listeners]
    for thread in threads:
        thread.start()
    wait_until(lambda: sent[0] >= STUCK_BYTES or len(outcome) > 0, 60, "the senders to send 8 MB")
    assert not outcome, f"a client stopped before SIGTERM: {outcome}"
    daemon.signal(signal.SIGTERM)
    assert daemon.process is not None
    assert daemon.process.wait(SHUTDOWN_GRACE + 5) == 0, daemon.log()
    for thread in threads:
        thread.join(15)
    assert not any(thread.is_alive() for thread in threads), "a client was never let go"
    for client in senders + listeners:
        assert outcome[client.nick] == ["BYE shutdown"], (client.nick, outcome[client.nick])
    assert [e["reason"] for e in daemon.find_events("disconnect", nick="stuck")] == ["shutdown"]
    assert not daemon.find_events("sessions_still_running"), daemon.log()
    for event in CRASH_EVENTS:
        assert not daemon.find_events(event), daemon.log()
    assert "Traceback" not in daemon.log()


# -- a crowd connecting at once -------------------------------------------------------------

CROWD = 300


@with_io_threads(1, 2)
def test_300_clients_connecting_at_once_are_all_served(start_daemon: Callable[..., Daemon], io_threads: int) -> None:
    """300 clients connecting at the same moment (under max_clients) each get `HELLO`
    and `NICK`, have their nickname answered with `WELCOME` and the lobby, and all
    hear one message."""
    daemon = start_daemon(server={"io_threads": io_threads})
    barrier = threading.Barrier(CROWD)
    before_welcome: dict[str, list[str]] = {}  # lines a client got between its nickname and WELCOME

    def arrive(n: int) -> ChatClient:
        barrier.wait(timeout=30)
        client = ChatClient(daemon.port, daemon.pki.ca, timeout=30)
        daemon.clients.append(client)  # closed at teardown, whatever happens here
        client.nick = f"n{n}"
        client.expect_greeting(timeout=30)
        client.send(client.nick)
        while not (line := client.readline(timeout=30)).startswith(f"WELCOME {client.nick} "):
            before_welcome.setdefault(client.nick, []).append(line)
        # Its own JOIN, USERS and CURRENT; others' JOINs in between are left to read.
        client.take_joins(timeout=30)
        return client

    with concurrent.futures.ThreadPoolExecutor(max_workers=CROWD) as pool:
        crowd = list(pool.map(arrive, range(CROWD), timeout=120))
    crowd[0].send("hello, crowd")
    for client in crowd:
        while (line := client.readline(timeout=10)) != "MSG #lobby n0 hello, crowd":
            assert line.startswith("JOIN #lobby n"), (client.nick, line)
    crowd[-1].send("/who")
    users = crowd[-1].expect("USERS #lobby ").split()[2:]
    assert sorted(users) == sorted(f"n{n}" for n in range(CROWD))
    assert len(daemon.find_events("connect")) == CROWD
    assert_healthy(daemon)
    # docs/protocol.md, "Registration": the answer to a valid, free nickname is
    # WELCOME; the room's lines (its own and others' JOINs) follow it.
    assert not before_welcome, f"{len(before_welcome)} clients got lines before WELCOME: {before_welcome}"


# -- a peer that resets right after the ServerHello -----------------------------------------

RESETS = 200


def _reset_after_server_hello(daemon: Daemon) -> None:
    """Send a real ClientHello, read the server's first flight, then close with a TCP reset."""
    context = ssl.create_default_context(cafile=str(daemon.pki.ca))
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    with socket.create_connection((daemon.host, daemon.port), timeout=5) as sock:
        sock.sendall(outgoing.read())
        flight = sock.recv(65536)
        assert flight[:1] == b"\x16", flight[:16]  # a handshake record: the ServerHello
        # SO_LINGER on, timeout 0: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@with_io_threads(1, 2)
def test_peers_that_reset_after_the_server_hello(start_daemon: Callable[..., Daemon], io_threads: int) -> None:
    """200 peers that reset the connection right after the ServerHello are each logged
    as a failed handshake, noticed at the reset (not at the handshake timeout), and
    cost the daemon nothing: a chat goes on throughout, and new clients are served."""
    # A handshake timeout longer than the test: a reset the daemon missed would show.
    daemon = start_daemon(server={"io_threads": io_threads}, limits={"handshake_timeout": 600})
    alice = daemon.client("alice")
    for n in range(RESETS):
        _reset_after_server_hello(daemon)
        if n % 20 == 0:
            alice.send(f"tick {n}")
            assert alice.readline() == f"MSG #lobby alice tick {n}"

    def ended() -> list[dict[str, object]]:
        failed = daemon.find_events("tls_handshake_failed")
        gone = [e for e in daemon.find_events("disconnect") if e.get("nick") is None]
        return failed + gone if len(failed) + len(gone) >= RESETS else []

    endings = wait_until(ended, 10, f"{RESETS} failed handshakes logged")
    assert len(endings) == RESETS, endings
    assert not [e for e in endings if e.get("error") == "timeout"], endings
    assert len(daemon.find_events("connect")) == 1  # alice only
    assert_healthy(daemon)
    bob = daemon.client("bob")
    alice.expect_eventually("JOIN #lobby bob")
    bob.send("after the resets")
    assert alice.readline() == bob.readline() == "MSG #lobby bob after the resets"


# -- IPv6 -------------------------------------------------------------------------------


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_a_listener_on_ipv6_loopback_serves_ipv6_clients(start_daemon: Callable[..., Daemon]) -> None:
    """With server.host "::1" chatd listens on IPv6, serves IPv6 clients, and logs
    their address in brackets: `[::1]:port`."""
    daemon = start_daemon(server={"host": "::1"})
    assert daemon.find_events("listening")[0]["host"] == "::1"
    alice = daemon.client("alice")
    bob = daemon.client("bob")
    assert alice.sock.family == bob.sock.family == socket.AF_INET6
    alice.expect("JOIN #lobby bob")
    bob.send("hello over IPv6")
    assert alice.readline() == bob.readline() == "MSG #lobby bob hello over IPv6"
    peers = {client.nick: f"[::1]:{client.sock.getsockname()[1]}" for client in (alice, bob)}
    for peer in peers.values():
        daemon.wait_for_event("connect", peer=peer)
    alice.send("/quit")
    assert alice.expect_closed() == ["BYE quit"]
    alice.close()
    assert daemon.wait_for_event("disconnect", nick="alice")["peer"] == peers["alice"]
    assert_healthy(daemon)
