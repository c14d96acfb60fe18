"""`chatctl connect` for tests, as a subprocess: its command line, script mode
with stdin kept open (`ScriptClient`), the tags it prints, and `Peer`, the
user on the other end of a chat.

The interactive client in a pseudo-terminal is in terminal.py; the fixtures
that hand these out (`peer`, `script_clients`) are in the conftest.py files.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.support import REPO

TIMEOUT = 10.0


def connect_cmd(port: int, *args: str, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "chatctl", "connect", f"{host}:{port}", *args]


class ScriptClient:
    """`chatctl connect` in script mode with its stdin kept open; stdout read by a thread."""

    def __init__(self, port: int, ca: Path, nick: str | None, *extra: str, env: dict[str, str] | None = None) -> None:
        """`nick` None: no `--nick` (`extra` says who, e.g. `--login alice`)."""
        who = ["--nick", nick] if nick is not None else []
        self.process = subprocess.Popen(
            connect_cmd(port, *who, "--ca", str(ca), *extra),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"read-{nick or 'login'}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, prefix: str, timeout: float = TIMEOUT) -> str:
        """Skip lines until one starts with `prefix`."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line starting {prefix!r} within {timeout}s; saw {seen}") from None
            if line.startswith(prefix):
                return line
            seen.append(line)

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """Close stdin (end of input) and return the exit status and stderr."""
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            self.process.stdin.close()
        return self.wait(timeout)

    def wait(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        status = self.process.wait(timeout)
        assert self.process.stderr is not None
        stderr = self.process.stderr.read()
        self._reader.join(timeout)
        return status, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass


TAGS = re.compile(r"@id=[1-9][0-9]*;time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z(;history)? ")


def untagged(line: str) -> str:
    """A server line without its tags, which must be well-formed `id` and `time`
    when there are any (docs/protocol.md, "Events and tags")."""
    if not line.startswith("@"):
        return line
    match = TAGS.match(line)
    assert match, f"malformed tags: {line!r}"
    return line[match.end() :]


class Peer:
    """The other user in chatctl's tests, on its own TLS socket: it registers
    (taking the autojoin's answers, up to `CURRENT`), sends, and reads lines
    without their tags, whose form `untagged` checks."""

    def __init__(self, daemon: Any, nick: str) -> None:
        context = ssl.create_default_context(cafile=str(daemon.pki.ca))
        raw = socket.create_connection((daemon.host, daemon.port), timeout=TIMEOUT)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.nick = nick
        self._buffer = b""
        assert self.readline().startswith("HELLO ")
        line = self.readline()
        if line.startswith("ACCOUNTS "):  # a server with accounts (protocol v4)
            line = self.readline()
        assert line == "NICK", line
        self.send(nick)
        self.expect_eventually(f"WELCOME {nick} ")
        self.expect_eventually("CURRENT ")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def readline(self, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"{self.nick}: no line within {timeout}s") from None
            assert chunk, f"{self.nick}: the connection closed"
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return untagged(line.decode())

    def expect_eventually(self, prefix: str, timeout: float = TIMEOUT) -> str:
        """Skip lines until one starts with `prefix`; return it, without tags."""
        deadline = time.monotonic() + timeout
        while not (line := self.readline(max(0.01, deadline - time.monotonic()))).startswith(prefix):
            pass
        return line

    def join(self, room: str) -> None:
        self.send(f"/join {room}")
        self.expect_eventually("CURRENT ")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass  # already gone
