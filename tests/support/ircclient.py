"""A tiny blocking IRC client over TLS, for tests of chatd's IRC listener:
what an IRC client sees, one parsed message at a time."""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


@dataclass
class Msg:
    command: str
    params: list[str]
    prefix: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    raw: str = ""

    @property
    def nick(self) -> str:
        return self.prefix.partition("!")[0]


def parse(line: str) -> Msg:
    raw = line
    tags: dict[str, str] = {}
    if line.startswith("@"):
        head, _, line = line[1:].partition(" ")
        for item in head.split(";"):
            key, _, value = item.partition("=")
            out, chars = [], iter(value)
            for char in chars:
                out.append(_UNESCAPE.get(next(chars, ""), "") if char == "\\" else char)
            tags[key] = "".join(out)
    prefix = ""
    if line.startswith(":"):
        prefix, _, line = line[1:].partition(" ")
    head, colon, trailing = line.partition(" :")
    words = head.split()
    params = words[1:] + ([trailing] if colon else [])
    return Msg(words[0].upper() if words else "", params, prefix, tags, raw)


class IrcClient:
    def __init__(self, port: int, ca: Path, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self._buffer = b""
        self.nick = ""
        self.welcome: list[Msg] = []

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.sock.sendall(data + b"\r\n")

    def read(self, timeout: float = 5.0) -> Msg:
        """The next message; fails the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line from the server in {timeout}s (have {self._buffer!r})")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise EOFError(f"the server closed the connection (have {self._buffer!r})")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        assert b"\n" not in line, f"a bare newline in {line!r}"
        return parse(line.decode())

    def expect(self, command: str, timeout: float = 5.0, **fields: Any) -> Msg:
        """Read up to a `command` message, failing on an error numeric (4xx, 5xx, FAIL) first."""
        seen = []
        while True:
            msg = self.read(timeout)
            if msg.command == command and all(getattr(msg, k) == v for k, v in fields.items()):
                return msg
            assert not (msg.command[:1] in "45" and msg.command.isdigit()) and msg.command != "FAIL", (
                f"{msg.raw!r} while waiting for {command} (after {[m.raw for m in seen]})"
            )
            seen.append(msg)

    def expect_error(self, code: str, timeout: float = 5.0) -> Msg:
        """Read up to the error numeric (or FAIL) `code`, failing on another one first."""
        while True:
            msg = self.read(timeout)
            if msg.command == code:
                return msg
            assert not (msg.command[:1] in "45" and msg.command.isdigit()), f"{msg.raw!r} while waiting for {code}"

    def sync(self, timeout: float = 5.0) -> list[Msg]:
        """PING with a fresh token; the messages that came before its PONG."""
        token = uuid.uuid4().hex
        self.send(f"PING {token}")
        got = []
        while True:
            msg = self.read(timeout)
            if msg.command == "PONG" and msg.params[-1:] == [token]:
                return got
            got.append(msg)

    def register(self, nick: str, caps: tuple[str, ...] = (), user: str | None = None) -> list[Msg]:
        """CAP REQ (if `caps`), NICK, USER; returns what came up to the end of the MOTD."""
        if caps:
            self.send("CAP LS 302")
            self.expect("CAP")
            self.send(f"CAP REQ :{' '.join(caps)}")
            ack = self.expect("CAP")
            assert ack.params[1] == "ACK", ack.raw
        self.send(f"NICK {nick}")
        self.send(f"USER {user or nick} 0 * :{nick}'s real name")
        if caps:
            self.send("CAP END")
        got = []
        while (msg := self.read()).command not in ("376", "422"):
            assert msg.command not in ("432", "433", "ERROR"), msg.raw
            got.append(msg)
        self.nick = nick
        self.welcome = got
        return got

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def irc_port(daemon: Any) -> int:
    """The port of a test daemon's IRC listener (its `irc_listening` event)."""
    return int(daemon.wait_for_event("irc_listening")["port"])
