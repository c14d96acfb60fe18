"""A tiny blocking TLS line client for tests: what a user's client would see."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path


class ChatClient:
    def __init__(
        self,
        port: int,
        ca: Path,
        host: str = "127.0.0.1",
        cert: tuple[Path, Path] | None = None,
        timeout: float = 5.0,
        source: str | None = None,
    ) -> None:
        """Connect and complete the TLS handshake.

        Args:
            host: the daemon's address; "::1" makes an IPv6 client.
            cert: a client certificate and its key, for mutual TLS.
            source: the local address to connect from; 127.0.0.0/8 is all local
                on Linux, so per-IP limits see another client address.
        """
        context = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            context.load_cert_chain(*cert)
        source_address = (source, 0) if source is not None else None
        raw = socket.create_connection((host, port), timeout=timeout, source_address=source_address)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.sock.settimeout(timeout)
        self._buffer = b""
        self.nick = ""

    @classmethod
    def registered(cls, port: int, ca: Path, nick: str, **kwargs: object) -> "ChatClient":
        client = cls(port, ca, **kwargs)  # type: ignore[arg-type]
        client.expect("NICK")
        client.send(nick)
        client.expect(f"WELCOME {nick} ")
        client.nick = nick
        return client

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.sock.sendall(data + (b"" if data.endswith(b"\n") else b"\n"))

    def readline(self, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete line within {timeout}s (have {self._buffer!r})")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed (have {self._buffer!r})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def expect(self, prefix: str, timeout: float = 5.0) -> str:
        """Read the next line and assert it starts with `prefix`."""
        line = self.readline(timeout)
        assert line.startswith(prefix), f"expected {prefix!r}, got {line!r}"
        return line

    def expect_eventually(self, prefix: str, timeout: float = 5.0) -> str:
        """Skip lines until one starts with `prefix`."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.01, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line

    def expect_closed(self, timeout: float = 5.0) -> list[str]:
        """Read until the server closes; return the lines seen on the way."""
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                lines.append(self.readline(max(0.01, deadline - time.monotonic())))
            except EOFError:
                return lines
            except (ConnectionResetError, ssl.SSLError):
                return lines

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
