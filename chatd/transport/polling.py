"""Poller: one I/O worker's epoll, the descriptors it watches, for which
events, and the connection each belongs to (trio keeps its epoll apart from
its run loop the same way, in `_core/_io_epoll.py`).

A connection is in the epoll only while it waits for something: reading
(unless its input is paused), writing (while its socket holds back output).
`set_interest` adds, changes or removes it, and `by_fd` maps each watched
descriptor to its connection, which is how the worker finds whose event
came. The worker's wake-up and its listeners are in the same epoll
(`epoll.register`, by the worker and its `Acceptor`), but not in `by_fd`.
Only the owning worker's thread uses a `Poller`.

What is not here: waiting and dispatching the events (the worker's turn,
worker.py), and input that TLS holds decrypted, which the epoll cannot see
(`Worker.mark_readable`).
"""

from __future__ import annotations

import select
from typing import Final, Generic, Protocol, TypeVar

READ: Final = select.EPOLLIN
WRITE: Final = select.EPOLLOUT


class Watched(Protocol):
    """What the poller keeps on a connection (chatd.transport.endpoint.Endpoint)."""

    fd: int
    interest: int  # epoll events currently registered; 0: not in the epoll


C = TypeVar("C", bound=Watched)


class Poller(Generic[C]):
    __slots__ = ("by_fd", "epoll")

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.by_fd: dict[int, C] = {}  # the connections the epoll watches, by descriptor

    def set_interest(self, conn: C, read: bool, write: bool) -> None:
        """Watch `conn` for reading, writing, both, or (neither) not at all."""
        events = (READ if read else 0) | (WRITE if write else 0)
        if events == conn.interest:
            return
        if conn.interest == 0:
            self.epoll.register(conn.fd, events)
            self.by_fd[conn.fd] = conn
        elif events == 0:
            self.epoll.unregister(conn.fd)
            del self.by_fd[conn.fd]
        else:
            self.epoll.modify(conn.fd, events)
        conn.interest = events

    def forget(self, conn: C) -> None:
        """`conn` is closing: out of the epoll, whatever became of its socket."""
        if conn.interest:
            self.by_fd.pop(conn.fd, None)
            try:
                self.epoll.unregister(conn.fd)
            except OSError:
                pass  # the socket was already closed underneath the epoll
            conn.interest = 0

    def close(self) -> None:
        self.epoll.close()
