"""chatd/transport/accepting.py with a real listening socket and a real epoll:
a ready listener is accepted from through the server, running out of
descriptors takes the listeners out of the epoll for ACCEPT_PAUSE (a fake
clock says when), and a socket whose connection cannot be made is closed and
its admission slot given back."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest

from chatd.transport.accepting import ACCEPT_PAUSE, Acceptor


class FakeServer:
    def __init__(self) -> None:
        self.accepts: list[tuple[str, int]] = []
        self.out_of_resources = False
        self.released: list[tuple[str, str | None]] = []

    def accept_from(self, acceptor: str, listener: int) -> bool:
        self.accepts.append((acceptor, listener))
        return self.out_of_resources

    def open_endpoint(
        self, worker: str, sock: socket.socket, peer: tuple[str, int], conn_id: int, reject: str | None, kind: str
    ) -> str:
        raise OSError(107, "Transport endpoint is not connected")

    def release(self, ip: str, reject: str | None) -> None:
        self.released.append((ip, reject))


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.setblocking(False)
        with socket.create_connection(sock.getsockname()):  # waiting to be accepted: always ready
            yield sock


def ready(epoll: select.epoll) -> list[int]:
    return [fd for fd, _ in epoll.poll(0)]


def test_a_ready_listener_is_accepted_from_and_out_of_descriptors_pauses_it(listener: socket.socket) -> None:
    server, clock = FakeServer(), Clock()
    with select.epoll() as epoll:
        acceptor: Acceptor[str, str] = Acceptor(server, "worker-0", "chatd-io-0", epoll, clock)
        fd = listener.fileno()
        acceptor.watch(fd)
        assert ready(epoll) == [fd]
        acceptor.accept(fd)
        assert server.accepts == [("worker-0", fd)]
        assert ready(epoll) == [fd]  # nothing was taken: still ready, still watched

        server.out_of_resources = True
        acceptor.accept(fd)
        assert acceptor.paused_until == clock.now + ACCEPT_PAUSE
        assert ready(epoll) == []  # not spinning on it
        clock.now += ACCEPT_PAUSE / 2
        acceptor.resume(clock.now)
        assert ready(epoll) == []
        clock.now = acceptor.paused_until
        acceptor.resume(clock.now)
        assert acceptor.paused_until == 0.0
        assert ready(epoll) == [fd]

        acceptor.unwatch()
        assert ready(epoll) == [] and not acceptor.fds


def test_a_socket_whose_connection_cannot_be_made_is_closed_and_released() -> None:
    server = FakeServer()
    ours, theirs = socket.socketpair()
    with theirs, select.epoll() as epoll:
        acceptor: Acceptor[str, str] = Acceptor(server, "worker-0", "chatd-io-0", epoll, Clock())
        assert acceptor.open(ours, ("192.0.2.1", 4000), 7, "server_full", "chat") is None
        assert ours.fileno() == -1
        assert theirs.recv(10) == b""
        assert server.released == [("192.0.2.1", "server_full")]
