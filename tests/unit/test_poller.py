"""chatd/transport/polling.py with a real epoll and socketpairs: a connection
is in the epoll (and in `by_fd`) exactly while it waits for something, with
the events it waits for, and forgetting one whose socket is already closed
is harmless."""

from __future__ import annotations

import socket

from chatd.transport.polling import READ, WRITE, Poller


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.fd = sock.fileno()
        self.interest = 0


def test_interest_is_registered_changed_and_dropped() -> None:
    ours, theirs = socket.socketpair()
    poller: Poller[Conn] = Poller()
    with ours, theirs:
        conn = Conn(ours)
        poller.set_interest(conn, read=True, write=False)
        assert conn.interest == READ and poller.by_fd == {conn.fd: conn}
        assert poller.epoll.poll(0) == []  # nothing to read yet
        theirs.send(b"x")
        assert poller.epoll.poll(0) == [(conn.fd, READ)]
        poller.set_interest(conn, read=True, write=True)
        assert conn.interest == READ | WRITE
        assert poller.epoll.poll(0) == [(conn.fd, READ | WRITE)]
        poller.set_interest(conn, read=False, write=False)
        assert conn.interest == 0 and poller.by_fd == {}
        assert poller.epoll.poll(0) == []
    poller.close()


def test_forgetting_a_connection_whose_socket_is_closed_is_harmless() -> None:
    ours, theirs = socket.socketpair()
    poller: Poller[Conn] = Poller()
    with theirs:
        conn = Conn(ours)
        poller.set_interest(conn, read=True, write=False)
        ours.close()  # which takes it out of the epoll underneath
        poller.forget(conn)
        assert conn.interest == 0 and poller.by_fd == {}
        poller.forget(conn)  # twice: nothing left to do
    poller.close()
