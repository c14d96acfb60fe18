"""A small TCP forwarder for partition tests: 127.0.0.1:<port> to a Unix socket.

A cluster node pointed at it (`redis://127.0.0.1:<port>`) reaches Redis
through it; `stop()` closes the listener and every connection at once, as a
network partition would cut them, and `start()` opens the same port again.
One thread runs a selector loop over every socket.
"""

from __future__ import annotations

import selectors
import socket
import threading
from pathlib import Path


class Forwarder:
    def __init__(self, target: Path) -> None:
        self.target = target
        self.port = 0
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> Forwarder:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(listener,), name="test-forwarder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Cut every connection and stop listening (the port is kept for `start`)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)
            assert not self._thread.is_alive(), "the forwarder did not stop"
            self._thread = None

    def _run(self, listener: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is listener:
                        self._accept(listener, selector, peers)
                    else:
                        self._pump(sock, selector, peers)
        finally:
            for sock in [listener, *peers]:
                sock.close()
            selector.close()

    def _accept(
        self, listener: socket.socket, selector: selectors.BaseSelector, peers: dict[socket.socket, socket.socket]
    ) -> None:
        try:
            client, _ = listener.accept()
        except BlockingIOError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(str(self.target))
        except OSError:
            client.close()
            upstream.close()
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, None)
        peers[client], peers[upstream] = upstream, client

    @staticmethod
    def _pump(sock: socket.socket, selector: selectors.BaseSelector, peers: dict[socket.socket, socket.socket]) -> None:
        other = peers.get(sock)
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data and other is not None:
            try:
                other.setblocking(True)  # the test's Redis traffic is small: a blocking send is fine
                other.sendall(data)
                other.setblocking(False)
                return
            except OSError:
                pass
        for end in (sock, other):
            if end is not None and end in peers:
                selector.unregister(end)
                peers.pop(end)
                end.close()
