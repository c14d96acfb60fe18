"""Wire specifics of each target: how a client registers, what a chat message,
a window marker and the server's lines look like.

Four dialects: `chatd` (docs/protocol.md, protocol v2: rooms, and v3:
history, whose lines start with tags and whose joins end with a backlog and
`HISTORY`), `chatd1` (protocol v1, the one-room chatd before rooms: the
`chatd-before` target),
`irc` (RFC 2812 as ngircd speaks it) and `seed` (the tutorial server: `NICK`
without a newline, raw bytes relayed). No sockets here: `Registration`
objects consume received bytes and say what to send back, so the engine
stays protocol-agnostic.

Every benchmark message has the same fixed-width body, `MSG_BODY`, so every
target carries the same payload and a receiver finds the send timestamp at a
fixed offset after `t=`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

# t=<perf_counter_ns, 19 digits> s=<sender, 4 digits> n=<sequence, 7 digits>
MSG_BODY = b"t=%019d s=%04d n=%07d"
MSG_BODY_LEN = 38
T_OFF, S_OFF, N_OFF = 2, 24, 31  # digit offsets from the `t=`
MSG_RE = re.compile(rb"t=\d{19} s=\d{4} n=\d{7}(?: x+)?\r?")  # optional padding
SYNC_TEXT = b"SYNC-BARRIER"
CHANNEL = "#bench"  # IRC's equivalent of chatd's one room (#lobby, the autojoin room)
OPER_NAME = "bench"
OPER_PASSWORD = "bench"


class RegistrationFailed(Exception):
    """The server refused or garbled the registration."""


@dataclass(frozen=True)
class Dialect:
    name: str
    kind: Literal["chatd", "irc", "seed"]  # the family of wire protocol
    echo: bool  # a sender receives its own messages
    window: Literal["ping", "echo"]  # how a sender learns the server took its messages
    eol: bytes
    msg_prefix: bytes  # what precedes MSG_BODY in a line the client sends to the common room
    body_at_start: bool  # the relayed line *is* the body (seed): corruption check is stricter
    line_re: re.Pattern[bytes]  # a whole relayed benchmark line; groups t, s, n (multiline)
    stamp_re: re.Pattern[bytes]  # the end of a benchmark line; group t only
    rooms: bool = False  # a client can move to a room of its own (chatd v2 and later, IRC)
    websocket: bool = False  # lines as WebSocket text messages (bench/websocket.py), after ALPN http/1.1

    def message(self, t_ns: int, sender: int, seq: int, pad: bytes = b"", prefix: bytes | None = None) -> bytes:
        """A benchmark line; `pad` (b" xxx…") makes it longer without moving the
        fields; `prefix` (from `room_prefix`) addresses it to a room of its own."""
        return (self.msg_prefix if prefix is None else prefix) + MSG_BODY % (t_ns, sender, seq) + pad + self.eol

    def sync_message(self, prefix: bytes | None = None) -> bytes:
        return (self.msg_prefix if prefix is None else prefix) + SYNC_TEXT + self.eol

    def chat_line(self, text: bytes) -> bytes:
        """A line to the common room (chatd's #lobby, IRC's #bench)."""
        return self.msg_prefix + text + self.eol

    def room_prefix(self, room: str) -> bytes:
        """What precedes a message to `room` once the client has moved there:
        nothing for chatd (plain text goes to the current room, as people type
        it), `PRIVMSG <room> :` for IRC."""
        if self.kind == "irc":
            return b"PRIVMSG %s :" % room.encode()
        if self.rooms:
            return b""
        raise ValueError(f"{self.name} has no rooms")

    def quit(self) -> bytes:
        if self.kind == "chatd":
            return b"/quit bye\n"
        if self.kind == "irc":
            return b"QUIT :bye\r\n"
        raise ValueError(f"{self.name} has no quit")

    def ping(self, token: int) -> bytes:
        if self.kind == "chatd":
            return b"/ping %d\n" % token
        if self.kind == "irc":
            return b"PING %d\r\n" % token
        raise ValueError(f"{self.name} has no ping")

    def is_pong(self, line: bytes) -> bool:
        if self.kind == "chatd":
            return line.startswith(b"PONG")
        return b" PONG " in line[:64] if self.kind == "irc" else False

    def registration(self, nick: str, privileged: bool, room: str | None = None) -> Registration:
        """How `nick` registers. With `room`, registration ends only once the
        client is in that room and no other (a dialect with `rooms`)."""
        if room is not None and not self.rooms:
            raise ValueError(f"{self.name} has no rooms")
        if self.name in ("chatd", "chatd-ws"):
            return ChatdRegistration(nick, room)
        if self.name == "chatd1":
            return Chatd1Registration(nick)
        if self.kind == "irc":
            return IrcRegistration(nick, privileged, room or CHANNEL)
        return SeedRegistration(nick)


_BODY_RE = rb"t=(\d{19}) s=(\d{4}) n=(\d{7})(?: x+)?"
_STAMP_RE = re.compile(rb"t=(\d{19}) s=\d{4} n=\d{7}(?: x+)?\n")
# v2: `MSG <room> <nick> <text>`; v3 puts tags before it (`@id=…;time=… MSG …`).
# A nickname never starts with `#`, so the v1 pattern below cannot match a v2
# or v3 line, nor the other way round. (A tag value never holds `t=`: the
# stamp is found by its own pattern.)
CHATD = Dialect(
    "chatd",
    "chatd",
    echo=True,
    window="ping",
    eol=b"\n",
    msg_prefix=b"",
    body_at_start=False,
    line_re=re.compile(rb"^(?:@[^ \n]+ )?MSG #[^ \n]+ [^ \n]+ " + _BODY_RE + rb"$", re.M),
    stamp_re=_STAMP_RE,
    rooms=True,
)
# v1: `MSG <nick> <text>`.
CHATD1 = Dialect(
    "chatd1",
    "chatd",
    echo=True,
    window="ping",
    eol=b"\n",
    msg_prefix=b"",
    body_at_start=False,
    line_re=re.compile(rb"^MSG [^ #\n][^ \n]* " + _BODY_RE + rb"$", re.M),
    stamp_re=_STAMP_RE,
)
IRC = Dialect(
    "irc",
    "irc",
    echo=False,
    window="ping",
    eol=b"\r\n",
    msg_prefix=b"PRIVMSG #bench :",
    body_at_start=False,
    line_re=re.compile(rb"^:[^ \n]+ PRIVMSG #[^ \n]+ :" + _BODY_RE + rb"\r$", re.M),
    stamp_re=re.compile(rb"t=(\d{19}) s=\d{4} n=\d{7}(?: x+)?\r\n"),
    rooms=True,
)
SEED = Dialect(
    "seed",
    "seed",
    echo=True,
    window="echo",
    eol=b"\n",
    msg_prefix=b"",
    body_at_start=True,
    line_re=re.compile(rb"^" + _BODY_RE + rb"$", re.M),
    stamp_re=re.compile(rb"^t=(\d{19}) s=\d{4} n=\d{7}(?: x+)?\n", re.M),
)
# chatd's lines over a WebSocket, as its web client sends and reads them (the fanout-ws and
# idle-ws scenarios): the same lines, so the same patterns.
CHATD_WS = dataclasses.replace(CHATD, name="chatd-ws", websocket=True)
DIALECTS = {d.name: d for d in (CHATD, CHATD1, IRC, SEED, CHATD_WS)}


class Registration:
    """Feed it received bytes; it returns bytes to send. `done` once registered;
    `leftover` then holds what arrived after the registration reply."""

    done = False
    leftover = b""
    flood_exempt: bool | None = None  # irc: whether user mode +F was granted

    def start(self) -> bytes:
        return b""

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError


CHATD_VERSIONS = (b"2 ", b"3 ", b"4 ", b"5 ")  # the `HELLO <version> ` this dialect speaks (v4, v5: as a guest)


class ChatdRegistration(Registration):
    """Protocol v2 to v5: `HELLO 2 …` to `HELLO 5 …` (v4 and v5 with an `ACCOUNTS` line,
    ignored: the benchmark's clients are guests), `NICK`; after the
    nickname `WELCOME`, then per autojoin room `JOIN <room> <nick>`, `TOPIC`
    (if set), `USERS <room> …` (in v3 then the room's backlog, tagged events,
    and `HISTORY <room> <count> <more>`), and `CURRENT <room>` last. Registered
    at that `CURRENT`: a backlog, older benchmark lines among them, is never
    counted as a delivery. With `room`, the client
    then joins it and parts the autojoin rooms, and is registered once it has
    seen the `CURRENT <room>` of its `/join` and its own `PART` from each
    autojoin room (every member gets it, the leaver too).
    """

    def __init__(self, nick: str, room: str | None = None) -> None:
        self.nick = nick.encode()
        self.room = room.encode() if room is not None else None
        self.buf = b""
        self.hello = False
        self.asked = False
        self.welcomed = False
        self.autojoined: list[bytes] = []  # rooms the server put us in
        self.moving = False  # /join and /part sent
        self.arrived = False  # /join's CURRENT seen
        self.parting: set[bytes] = set()  # rooms whose own PART we still wait for

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = b""
        while not self.done:
            end = self.buf.find(b"\n")
            if end < 0:
                break
            line, self.buf = self.buf[:end], self.buf[end + 1 :]
            out += self._line(line)
            if self.done:
                self.leftover, self.buf = self.buf, b""
        return out

    def _line(self, line: bytes) -> bytes:
        if line.startswith(b"@"):  # v3 tags (an event of a backlog): not needed here
            line = line.partition(b" ")[2]
        verb, _, rest = line.partition(b" ")
        if not self.hello:
            if verb != b"HELLO" or not rest.startswith(CHATD_VERSIONS):
                got = line[:80].decode(errors="replace")
                raise RegistrationFailed(f"expected HELLO 2 to 5 (protocol v2 to v5), got {got!r}")
            self.hello = True
        elif verb in (b"ERR", b"BYE"):
            raise RegistrationFailed(line.decode(errors="replace"))
        elif verb == b"NICK" and not self.asked:
            self.asked = True
            return self.nick + b"\n"
        elif verb == b"WELCOME":
            self.welcomed = True
        elif not self.welcomed:
            pass
        elif verb == b"JOIN" and self.room is not None and not self.moving:
            room, _, nick = rest.partition(b" ")
            if nick == self.nick and room != self.room:
                self.autojoined.append(room)
        elif verb == b"CURRENT":
            if self.room is None:
                self.done = True
            elif not self.moving:  # the autojoin's CURRENT: move
                self.moving = True
                self.parting = {r.lower() for r in self.autojoined}
                parts = b"".join(b"/part %s\n" % r for r in self.autojoined)
                return b"/join %s\n" % self.room + parts
            elif rest.lower() == self.room.lower():  # /join's, before the PARTs
                self.arrived = True
                self.done = not self.parting
        elif verb == b"PART" and self.parting:
            room, _, who = rest.partition(b" ")
            if who.partition(b" ")[0] == self.nick:
                self.parting.discard(room.lower())
                self.done = self.arrived and not self.parting
        return b""


class Chatd1Registration(Registration):
    """Protocol v1 (chatd before rooms): `NICK` first, then `WELCOME`."""

    def __init__(self, nick: str) -> None:
        self.nick = nick.encode()
        self.buf = b""
        self.asked = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = b""
        while b"\n" in self.buf and not self.done:
            line, _, self.buf = self.buf.partition(b"\n")
            if line == b"NICK" and not self.asked:
                self.asked = True
                out += self.nick + b"\n"
            elif line.startswith(b"HELLO ") and not self.asked:
                raise RegistrationFailed("the server speaks protocol v2 or later (HELLO before NICK), not v1")
            elif line.startswith(b"WELCOME "):
                self.done = True
                self.leftover, self.buf = self.buf, b""
            elif line.startswith((b"ERR ", b"BYE ")):
                raise RegistrationFailed(line.decode(errors="replace"))
        return out


class IrcRegistration(Registration):
    """NICK/USER, then (an operator with user mode +F if `privileged`) JOIN
    `channel`; registered at the end of its NAMES list (366)."""

    def __init__(self, nick: str, privileged: bool, channel: str = CHANNEL) -> None:
        self.nick = nick
        self.privileged = privileged
        self.channel = channel
        self.buf = b""
        self.joined = False

    def start(self) -> bytes:
        return f"NICK {self.nick}\r\nUSER {self.nick} 0 * :bench\r\n".encode()

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = b""
        while b"\n" in self.buf and not self.done:
            line, _, self.buf = self.buf.partition(b"\n")
            parts = line.split(b" ", 3)
            code = parts[1] if len(parts) > 1 else b""
            if line.startswith(b"PING"):
                out += b"PONG" + line[4:].rstrip(b"\r") + b"\r\n"
            elif code in (b"376", b"422") and not self.joined:  # end of (missing) MOTD
                self.joined = True
                if self.privileged:
                    # An IRC operator may set user mode +F, which ngircd exempts from
                    # its per-loop command limit and throttling (conn.c, Handle_Buffer).
                    out += f"OPER {OPER_NAME} {OPER_PASSWORD}\r\nMODE {self.nick} +F\r\n".encode()
                out += f"JOIN {self.channel}\r\n".encode()
            elif code == b"MODE" and b"+F" in line:
                self.flood_exempt = True
            elif code in (b"481", b"491", b"464", b"501"):
                self.flood_exempt = False
            elif code == b"366":
                self.done = True
                self.leftover, self.buf = self.buf, b""
            elif line.startswith(b"ERROR") or code in (b"403", b"405", b"432", b"433", b"471", b"473", b"474"):
                raise RegistrationFailed(line.decode(errors="replace"))
        return out


class SeedRegistration(Registration):
    # The seed sends b"NICK" without a newline, takes whatever one recv(1024)
    # returns as the nickname, then sends b"Connected to server!" (no newline).
    def __init__(self, nick: str) -> None:
        self.nick = nick.encode()
        self.buf = b""
        self.asked = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = b""
        if not self.asked and self.buf.startswith(b"NICK"):
            self.asked = True
            self.buf = self.buf[4:]
            out = self.nick
        marker = b"Connected to server!"
        if self.asked and marker in self.buf:
            self.done = True
            self.leftover = self.buf.split(marker, 1)[1]
            self.buf = b""
        return out
