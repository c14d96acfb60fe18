"""The listening sockets: the chat port (`server.port`) and the IRC listener
(`irc.listen`), each with the kind of client it serves, the options every
accepted socket inherits, and the accept loop a worker runs on one of them
(a batch at a time, with failures logged at most once a second).

What does not live here: whether an accepted client is served
(chatd/admission.py, booked in chatd/connections.py), which worker serves it and
when the workers stop watching the sockets (chatd/server.py).
"""

from __future__ import annotations

import errno
import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Final

import structlog

from chatd.config import Config
from chatd.errors import StartupError
from chatd.irc_listener import IrcListener
from chatd.transport.listening import listen_on

log = structlog.get_logger(__name__)

KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 15, "TCP_KEEPCNT": 4}
_ACCEPT_BATCH: Final = 64
_ACCEPT_FAILED_EVERY: Final = 1.0  # seconds between `accept_failed` lines; the rest are counted

Admit = Callable[[socket.socket, tuple[str, int], str], None]  # socket, peer, kind


class Listeners:
    """Every listening socket by descriptor, with the kind of client it serves ("chat", "irc")."""

    def __init__(self) -> None:
        self._by_fd: dict[int, tuple[socket.socket, str]] = {}
        self._lock = threading.Lock()
        self._accept_failures = 0
        self._accept_failed_logged = -math.inf

    def sockets(self) -> list[socket.socket]:
        return [listener for listener, _ in self._by_fd.values()]

    def open_chat(self, config: Config) -> tuple[str, int]:
        """Listen on `server.host`/`server.port`; the bound (host, port).

        Raises:
            StartupError: the address cannot be bound.
        """
        host, port = config.server.host, config.server.port
        try:
            listener = listen_on(host, port, backlog=1024, reuse_port=config.server.reuse_port)
        except OSError as exc:
            raise StartupError(
                f"{config.path}: server.port: cannot listen on {host} port {port}: "
                f"{exc.strerror or exc} (is another server using it?)"
            ) from exc
        tune_listener(listener)
        self._by_fd[listener.fileno()] = (listener, "chat")
        address: tuple[str, int] = listener.getsockname()[:2]
        return address

    def open_irc(self, config: Config, irc: IrcListener) -> socket.socket:
        """Listen on `irc.listen`; on failure every socket opened so far is closed.

        Raises:
            StartupError: the address cannot be bound.
        """
        try:
            listener = irc.listen(config)
        except OSError as exc:
            self.close()
            raise StartupError(
                f"{config.path}: irc.listen: cannot listen on {config.irc.listen}: "
                f"{exc.strerror or exc} (is another server using it?)"
            ) from exc
        tune_listener(listener)
        self._by_fd[listener.fileno()] = (listener, "irc")
        return listener

    def close(self) -> None:
        for listener, _ in self._by_fd.values():
            listener.close()

    def accept(self, fd: int, stopping: Callable[[], bool], admit: Admit) -> bool:
        """Accept what is waiting on the listener `fd`, up to a batch, handing
        each socket to `admit`; True if out of descriptors or memory."""
        if fd not in self._by_fd:
            return False
        listener, kind = self._by_fd[fd]
        for _ in range(_ACCEPT_BATCH):
            if stopping():
                return False
            try:
                sock, peer = listener.accept()
            except BlockingIOError:
                return False  # another worker took it, or nothing is left
            except OSError as exc:
                # EMFILE/ENFILE/ENOBUFS/ENOMEM: out of resources; ECONNABORTED: the
                # client gave up in the backlog. Log and keep serving.
                self._accept_failed(exc)
                return exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
            admit(sock, peer, kind)
        return False

    def _accept_failed(self, exc: OSError) -> None:
        """Log at most one `accept_failed` a second, with how many failed since."""
        now = time.monotonic()
        with self._lock:
            self._accept_failures += 1
            if now - self._accept_failed_logged < _ACCEPT_FAILED_EVERY:
                return
            count, self._accept_failures = self._accept_failures, 0
            self._accept_failed_logged = now
        log.warning("accept_failed", error=exc.strerror or str(exc), count=count)


def tune_listener(listener: socket.socket) -> None:
    """Options every accepted socket inherits from the listener (Linux copies
    them at accept), so a connection costs no setsockopt() calls of its own."""
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Dead peers are found by TCP keepalive (docs/protocol.md), not app-level PING.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        if hasattr(socket, name):
            listener.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
