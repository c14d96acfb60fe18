"""Acceptor: where one I/O worker's connections come from: the listening
sockets it accepts from, as its epoll sees them, the pause after running out
of descriptors, and the hand-over of an accepted socket to a new connection.

Every worker watches every listener (the chat port, the IRC port) in its
own epoll, with `EPOLLEXCLUSIVE`, so that the kernel wakes one waiting
worker per new connection, not all of them (docs/architecture.md, "The life
of a connection"). When one is ready, the worker asks the server to accept
(`Service.accept_from`: a batch of sockets, each admitted or refused and
handed to the least busy worker). A listener is level-triggered: when
accepting fails for want of descriptors or memory (`EMFILE` and the like),
the client still waiting would wake the worker again at once, so the
worker takes the listeners out of its epoll for `ACCEPT_PAUSE` instead of
spinning, or sleeping, and puts them back once that has passed (`resume`).
The worker that is handed a socket opens its connection (`open`): the
server makes the endpoint; if even that fails, the socket is closed and
its admission slot given back.

What is not here: admission (the server's, chatd/admission.py), the
worker's loop and its registry of connections (worker.py), and TLS (the
endpoint's, once started). Only the owning worker's thread uses an
`Acceptor`. It knows its worker only as what it hands to the server.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Callable
from typing import Final, Generic, Protocol, TypeVar

import structlog

from chatd.addresses import format_host_port

log = structlog.get_logger(__name__)

ACCEPT_PAUSE: Final = 0.1  # seconds without accepting after EMFILE and the like
# Wake only one of the workers waiting on the listener per connection (Linux ≥ 4.5).
_EXCLUSIVE: Final = getattr(select, "EPOLLEXCLUSIVE", 0)

W = TypeVar("W")  # the worker (worker.py's `Worker`)
C = TypeVar("C")  # its connections (an endpoint)
W_contra = TypeVar("W_contra", contravariant=True)
C_co = TypeVar("C_co", covariant=True)


class Service(Protocol[W_contra, C_co]):
    """What a worker needs from the server (chatd.server.Server) to accept."""

    def accept_from(self, acceptor: W_contra, listener: int) -> bool:
        """Accept from the listener with descriptor `listener`; True if out of
        descriptors or memory."""

    def open_endpoint(
        self, worker: W_contra, sock: socket.socket, peer: tuple[str, int], conn_id: int, reject: str | None, kind: str
    ) -> C_co: ...

    def release(self, ip: str, reject: str | None) -> None:
        """Give back the admission slot of a client that will not be served."""


class Acceptor(Generic[W, C]):
    __slots__ = ("_clock", "_epoll", "_name", "_server", "_worker", "fds", "held", "paused_until")

    def __init__(
        self, server: Service[W, C], worker: W, name: str, epoll: select.epoll, clock: Callable[[], float]
    ) -> None:
        self._server = server
        self._worker = worker
        self._name = name  # the worker's, for the logs
        self._epoll = epoll  # the worker's
        self._clock = clock
        self.fds: set[int] = set()  # the listeners' descriptors, while this worker accepts from them
        self.paused_until = 0.0  # out of descriptors: accept again after this (monotonic; 0: not paused)
        self.held = False  # the worker owes all the handshake steps it may (`hold`)

    def watch(self, fd: int) -> None:
        """Accept from the listener `fd` too."""
        self.fds.add(fd)
        if not self.paused_until and not self.held:
            self._listening(True, [fd])

    def unwatch(self) -> None:
        """Accept from no listener any more."""
        if not self.paused_until and not self.held:
            self._listening(False)
        self.fds.clear()
        self.paused_until = 0.0
        self.held = False

    def hold(self) -> None:
        """Stop watching the listeners until `unhold`: the worker owes as many
        handshake steps as it may, and a listener with clients waiting would
        wake it every turn (level-triggered) while some are at the handshake
        threads and the turns have nothing to do."""
        if not self.held:
            self.held = True
            if not self.paused_until:
                self._listening(False)

    def unhold(self) -> None:
        """Watch the listeners again (unless out of descriptors)."""
        if self.held:
            self.held = False
            if not self.paused_until:
                self._listening(True)

    def accept(self, fd: int) -> None:
        """The listener `fd` is ready: have the server accept from it."""
        try:
            out_of_resources = self._server.accept_from(self._worker, fd)
        except Exception:
            # A bug here must not take this worker's connections with it.
            log.exception("accept_crashed", worker=self._name)
            return
        # Level-triggered: the waiting client would wake us again at once. Out
        # of descriptors, stop watching for a moment instead of spinning (or sleeping).
        if out_of_resources and self._listening(False):
            self.paused_until = self._clock() + ACCEPT_PAUSE

    def resume(self, now: float) -> None:
        """Watch the listeners again if a pause has ended by `now`."""
        if self.paused_until and now >= self.paused_until:
            self.paused_until = 0.0
            if not self.held:
                self._listening(True)

    def open(self, sock: socket.socket, peer: tuple[str, int], conn_id: int, reject: str | None, kind: str) -> C | None:
        """The connection for a socket accepted from the listener of `kind`
        and handed to this worker; None (the socket closed, its admission slot
        given back) if the server could not make one."""
        try:
            return self._server.open_endpoint(self._worker, sock, peer, conn_id, reject, kind)
        except Exception as exc:
            if not isinstance(exc, (ssl.SSLError, OSError)):
                log.exception("session_crashed", session=conn_id, peer=format_host_port(peer[0], peer[1]))
            else:
                log.info(
                    "tls_handshake_failed", session=conn_id, peer=format_host_port(peer[0], peer[1]), error=str(exc)
                )
            sock.close()
            self._server.release(peer[0], reject)
            return None

    def _listening(self, on: bool, fds: list[int] | None = None) -> bool:
        """Put the listeners in the epoll or take them out; False (and
        accepting from one over) if stop(0) closed it meanwhile, which took it
        out already."""
        done = True
        for fd in list(self.fds) if fds is None else fds:
            try:
                if on:
                    self._epoll.register(fd, select.EPOLLIN | _EXCLUSIVE)
                else:
                    self._epoll.unregister(fd)
            except OSError:
                self.fds.discard(fd)
                done = False
        return done
