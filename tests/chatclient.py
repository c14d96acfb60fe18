"""A tiny blocking TLS line client for tests: what a user's client would see."""

from __future__ import annotations

import collections
import socket
import ssl
import time
import uuid
from pathlib import Path

# docs/protocol.md, "Version": the server's first line.
HELLO = "HELLO 2 "


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
        self.sock = self._connect(port, ca, host, cert, timeout, source)
        self._buffer = b""
        # Lines read ahead while taking this client's own JOIN/USERS/CURRENT
        # answers; readline hands them out first, in order.
        self._pending: collections.deque[str] = collections.deque()
        self.nick = ""
        self.autojoin: list[str] = []  # the lines taken after WELCOME, up to CURRENT

    @classmethod
    def registered(cls, port: int, ca: Path, nick: str, **kwargs: object) -> "ChatClient":
        """Connect and register as `nick`: `HELLO 2`, `NICK`, `WELCOME` first
        after the nickname, then the autojoin rooms up to `CURRENT`, so that a
        test starts from a clean slate (see `take_joins`)."""
        client = cls(port, ca, **kwargs)  # type: ignore[arg-type]
        client.register(nick)
        return client

    def register(self, nick: str) -> None:
        self.expect_greeting()
        self.send(nick)
        self.expect(f"WELCOME {nick} ")
        self.nick = nick
        self.autojoin = self.take_joins()

    def expect_greeting(self, timeout: float = 5.0) -> str:
        """The first two lines: `HELLO 2 <text>`, then `NICK`; returns the HELLO line."""
        hello = self.expect(HELLO, timeout)
        line = self.readline(timeout)
        assert line == "NICK", f"expected 'NICK' after {hello!r}, got {line!r}"
        return hello

    def join(self, room: str, timeout: float = 5.0) -> list[str]:
        """`/join <room>`; returns this client's own answer up to `CURRENT`
        (`JOIN`, `TOPIC` if any, `USERS`, `CURRENT`; or `CURRENT` alone for a switch)."""
        self.send(f"/join {room}")
        return self.take_joins(timeout)

    def take_joins(self, timeout: float = 5.0) -> list[str]:
        """Read this client's own joining lines up to and including `CURRENT`,
        and return them: `JOIN <room> <own nick>`, then that room's `TOPIC` and
        `USERS`, for each room joined, and the `CURRENT` that ends them.

        Other lines that arrive in between (another client's `JOIN` or `MSG`
        in a room already joined) are not taken: `readline` returns them next.
        An `ERR` fails the test.
        """
        taken: list[str] = []
        joining: str | None = None  # the room whose TOPIC/USERS come next
        skipped: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self._read(max(0.01, deadline - time.monotonic()))
            verb, _, rest = line.partition(" ")
            words = rest.split(" ")
            if verb == "JOIN" and words[1:] == [self.nick]:
                joining = words[0]
            elif verb in ("TOPIC", "USERS") and joining is not None and words[0] == joining:
                if verb == "USERS":
                    joining = None
            elif verb == "CURRENT":
                taken.append(line)
                break
            else:
                assert verb != "ERR", f"{line!r} while joining (after {taken})"
                skipped.append(line)
                continue
            taken.append(line)
        self._pending.extend(skipped)
        return taken

    def sync(self, timeout: float = 5.0) -> list[str]:
        """`/ping` with a fresh token; return the lines that came before its `PONG`.

        Whatever the server had queued for this client before it read the
        `/ping` arrives first, so an empty list means nothing more was on its way.
        """
        token = uuid.uuid4().hex
        self.send(f"/ping {token}")
        lines = []
        while (line := self.readline(timeout)) != f"PONG {token}":
            lines.append(line)
        return lines

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.sock.sendall(data + (b"" if data.endswith(b"\n") else b"\n"))

    def readline(self, timeout: float = 5.0) -> str:
        if self._pending:
            return self._pending.popleft()
        return self._read(timeout)

    def _read(self, timeout: float) -> str:
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

    def _connect(
        self, port: int, ca: Path, host: str, cert: tuple[Path, Path] | None, timeout: float, source: str | None
    ) -> ssl.SSLSocket:
        """The TLS socket lines go through (tests/wsclient.py carries them over a WebSocket)."""
        context = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            context.load_cert_chain(*cert)
        source_address = (source, 0) if source is not None else None
        raw = socket.create_connection((host, port), timeout=timeout, source_address=source_address)
        sock = context.wrap_socket(raw, server_hostname="localhost")
        sock.settimeout(timeout)
        return sock
