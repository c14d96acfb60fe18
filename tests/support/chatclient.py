"""A tiny blocking TLS line client for tests: what a user's client would see.

Server lines may start with tags (docs/protocol.md, "Events and tags"):
`readline` returns a line without them and keeps them in `last_tags`;
`read_event` returns both. Every line read is checked against the tag rules
on the way in (`split_tags`), so no test ignores a missing or malformed tag.
"""

from __future__ import annotations

import collections
import datetime
import re
import socket
import ssl
import time
import uuid
from pathlib import Path

# docs/protocol.md, "Version": the server's first line, and on a server with
# accounts ("Accounts") the line between it and NICK.
HELLO = "HELLO 5 "
ACCOUNTS = "ACCOUNTS "

Tags = dict[str, str]  # a bare key (`history`) maps to ""
EVENT_VERBS = ("MSG", "ACTION", "DM", "TAGMSG")  # always tagged; a TOPIC is when it reports a change
TAG_KEYS = ("id", "time", "history", "notice", "action")
BARE_TAGS = ("history", "notice", "action")  # keys without a value
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# A live event's tags as a regular expression, for tests that read a tool's output.
EVENT_TAGS = rf"@id=[1-9]\d*;time={_TIME.pattern}"


def split_tags(line: str) -> tuple[Tags, str]:
    """`@id=7;time=...;history MSG #a bob hi` → `({"id": "7", ...}, "MSG #a bob hi")`,
    asserting the rules of docs/protocol.md, "Events and tags": `MSG`,
    `ACTION` and `DM` carry a positive decimal `id` and a `time` in
    `YYYY-MM-DDTHH:MM:SS.mmmZ`, as does a tagged `TOPIC`; no other line is
    tagged; `history` is bare; no key comes twice or is unknown."""
    tags: Tags = {}
    if line.startswith("@"):
        prefix, space, line = line.partition(" ")
        assert space and prefix != "@", f"tags without a line: {prefix!r}"
        for item in prefix[1:].split(";"):
            key, equals, value = item.partition("=")
            if key.startswith("+"):  # an IRC client's client-only tag: any value, escaped
                assert key not in tags and " " not in value, f"tag {key!r} in {prefix!r}"
                tags[key] = value
                continue
            assert key in TAG_KEYS and key not in tags, f"tag {key!r} in {prefix!r}"
            assert (key in BARE_TAGS) != bool(equals), f"tag {item!r} in {prefix!r}"
            tags[key] = value
    verb = line.partition(" ")[0]
    if verb in EVENT_VERBS or (verb == "TOPIC" and tags):
        assert tags.keys() >= {"id", "time"}, f"an event without id and time: {tags} {line!r}"
        assert re.fullmatch(r"[1-9][0-9]*", tags["id"]), tags
        assert _TIME.fullmatch(tags["time"]), tags
        datetime.datetime.strptime(tags["time"], "%Y-%m-%dT%H:%M:%S.%fZ")  # a real date
    else:
        assert not tags, f"tags on a line that is not an event: {tags} {line!r}"
    return tags, line


def event_id(tags: Tags) -> int:
    return int(tags["id"])


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
        # Lines read ahead while taking this client's own joining lines;
        # read_event hands them out first, in order.
        self._pending: collections.deque[tuple[Tags, str]] = collections.deque()
        # The id of the last live event of each room (by lower-case name):
        # in one room, events arrive in increasing id order.
        self._last_ids: dict[str, int] = {}
        self.nick = ""
        self.autojoin: list[str] = []  # the lines taken after WELCOME, up to CURRENT
        self.backlog: dict[str, list[tuple[Tags, str]]] = {}  # each room's backlog at its last join
        self.last_tags: Tags = {}  # the tags of the line `readline` returned last
        self.accounts = ""  # the ACCOUNTS line of the greeting, if the server sent one

    @classmethod
    def registered(cls, port: int, ca: Path, nick: str, **kwargs: object) -> ChatClient:
        """Connect and register as `nick`: `HELLO 5`, `NICK`, `WELCOME` first
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
        """The first lines: `HELLO 5 <text>`, `ACCOUNTS ...` on a server with
        accounts (kept in `self.accounts`), then `NICK`; returns the HELLO line."""
        hello = self.expect(HELLO, timeout)
        line = self.readline(timeout)
        self.accounts = ""
        if line.startswith(ACCOUNTS):
            self.accounts, line = line, self.readline(timeout)
        assert line == "NICK", f"expected 'NICK' after {hello!r}, got {line!r}"
        return hello

    def join(self, room: str, timeout: float = 5.0) -> list[str]:
        """`/join <room>`; returns this client's own answer up to `CURRENT`
        (`JOIN`, `TOPIC` if any, `USERS`, `HISTORY`, `CURRENT`; or `CURRENT`
        alone for a switch). The backlog goes to `self.backlog[room]`."""
        self.send(f"/join {room}")
        return self.take_joins(timeout)

    def take_joins(self, timeout: float = 5.0) -> list[str]:
        """Read this client's own joining lines up to and including `CURRENT`,
        and return them: `JOIN <room> <own nick>`, then that room's `TOPIC`,
        `USERS` (`ROLES` and `FLAGS` in a registered room) and `HISTORY`, for
        each room joined, and the `CURRENT` that ends them.

        The backlog events between a room's `USERS` and its `HISTORY` are not
        in the list: they go to `self.backlog[room]` (the room as the server
        spells it), as (tags, line) pairs. Each must carry the `history` tag,
        their ids must increase, their number must be the `HISTORY` line's
        count, and the room's live events that follow must have greater ids.

        Other lines that arrive in between (another client's `JOIN` or `MSG`
        in a room already joined) are not taken: `readline` returns them next.
        An `ERR` fails the test.
        """
        taken: list[str] = []
        joining: str | None = None  # the room whose TOPIC/USERS come next
        filling: str | None = None  # the room whose backlog and HISTORY come next
        skipped: list[tuple[Tags, str]] = []
        deadline = time.monotonic() + timeout
        while True:
            tags, line = self._read_event(max(0.01, deadline - time.monotonic()))
            verb, _, rest = line.partition(" ")
            words = rest.split(" ")
            if verb == "JOIN" and words[1:] == [self.nick]:
                assert filling is None, f"{line!r} before HISTORY {filling} (after {taken})"
                joining = words[0]
            elif verb in ("TOPIC", "USERS") and joining is not None and words[0] == joining:
                assert not tags, f"{line!r} is a state, not an event, yet tagged {tags}"
                if verb == "USERS":
                    filling, joining = joining, None
                    self.backlog[filling] = []
            elif verb in ("ROLES", "FLAGS") and filling is not None and words[0] == filling:
                assert not tags, f"{line!r} is a state, not an event, yet tagged {tags}"  # a registered room's (v5)
            elif filling is not None and "history" in tags and words[0] == filling:
                self.backlog[filling].append((tags, line))
                continue
            elif verb == "HISTORY" and filling is not None and words[0] == filling:
                self._check_backlog(line, self.backlog[filling])
                filling = None
            elif verb == "CURRENT":
                assert joining is None and filling is None, f"{line!r} in the middle of a join: {taken}"
                taken.append(line)
                break
            else:
                assert verb != "ERR", f"{line!r} while joining (after {taken})"
                skipped.append((tags, line))
                continue
            taken.append(line)
        self._pending.extend(skipped)
        return taken

    def _check_backlog(self, history: str, events: list[tuple[Tags, str]]) -> None:
        """`HISTORY <room> <count> <more|end>` against the backlog that came before it."""
        room, count, more = history.split(" ")[1:]
        assert count == str(len(events)) and more in ("more", "end"), (history, events)
        ids = [event_id(tags) for tags, _ in events]
        assert ids == sorted(set(ids)), f"backlog ids out of order: {ids}"
        if ids:
            key = room.lower()
            self._last_ids[key] = max(self._last_ids.get(key, 0), ids[-1])

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
        """The next line without its tags, which go to `last_tags`."""
        self.last_tags, line = self.read_event(timeout)
        return line

    def read_event(self, timeout: float = 5.0) -> tuple[Tags, str]:
        """The next line as (its tags, the line without them)."""
        if self._pending:
            return self._pending.popleft()
        return self._read_event(timeout)

    def _read_event(self, timeout: float) -> tuple[Tags, str]:
        tags, line = split_tags(self._read(timeout))
        verb, _, rest = line.partition(" ")
        if tags and "history" not in tags and verb in ("MSG", "ACTION", "TOPIC"):
            key, new = rest.partition(" ")[0].lower(), event_id(tags)
            last = self._last_ids.get(key, 0)
            assert new > last, f"event {new} in {key} after event {last}: {line!r}"
            self._last_ids[key] = new
        return tags, line

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

    def expect_refused(self, code: str) -> None:
        """The server explains (`ERR <code> <text>`), says `BYE <code>`, and hangs up."""
        lines = self.expect_closed(timeout=10)
        assert len(lines) == 2, lines
        assert lines[0].startswith(f"ERR {code} "), lines
        assert lines[1] == f"BYE {code}", lines

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _connect(
        self, port: int, ca: Path, host: str, cert: tuple[Path, Path] | None, timeout: float, source: str | None
    ) -> ssl.SSLSocket:
        """The TLS socket lines go through (tests/support/wsclient.py carries them over a WebSocket)."""
        context = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            context.load_cert_chain(*cert)
        source_address = (source, 0) if source is not None else None
        raw = socket.create_connection((host, port), timeout=timeout, source_address=source_address)
        sock = context.wrap_socket(raw, server_hostname="localhost")
        sock.settimeout(timeout)
        return sock
