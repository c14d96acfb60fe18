"""Wire specifics of each target: how a client registers, what a chat message,
a window marker and the server's lines look like.

Three dialects: `chatd` (docs/protocol.md), `irc` (RFC 2812 as ngircd speaks
it) and `seed` (the tutorial server: `NICK` without a newline, raw bytes
relayed). No sockets here: `Registration` objects consume received bytes and
say what to send back, so the engine stays protocol-agnostic.

Every benchmark message has the same fixed-width body, `MSG_BODY`, so every
target carries the same payload and a receiver finds the send timestamp at a
fixed offset after `t=`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# t=<perf_counter_ns, 19 digits> s=<sender, 4 digits> n=<sequence, 7 digits>
MSG_BODY = b"t=%019d s=%04d n=%07d"
MSG_BODY_LEN = 38
T_OFF, S_OFF, N_OFF = 2, 24, 31  # digit offsets from the `t=`
MSG_RE = re.compile(rb"t=\d{19} s=\d{4} n=\d{7}(?: x+)?\r?")  # optional padding
SYNC_TEXT = b"SYNC-BARRIER"
CHANNEL = b"#bench"
OPER_NAME = "bench"
OPER_PASSWORD = "bench"


class RegistrationFailed(Exception):
    """The server refused or garbled the registration."""


@dataclass(frozen=True)
class Dialect:
    name: str
    echo: bool  # a sender receives its own messages
    window: Literal["ping", "echo"]  # how a sender learns the server took its messages
    eol: bytes
    msg_prefix: bytes  # what precedes MSG_BODY in a line the client sends
    body_at_start: bool  # the relayed line *is* the body (seed): corruption check is stricter
    line_re: re.Pattern[bytes]  # a whole relayed benchmark line; groups t, s, n (multiline)
    stamp_re: re.Pattern[bytes]  # the end of a benchmark line; group t only

    def message(self, t_ns: int, sender: int, seq: int, pad: bytes = b"") -> bytes:
        """A benchmark line; `pad` (b" xxx…") makes it longer without moving the fields."""
        return self.msg_prefix + MSG_BODY % (t_ns, sender, seq) + pad + self.eol

    def sync_message(self) -> bytes:
        return self.msg_prefix + SYNC_TEXT + self.eol

    def chat_line(self, text: bytes) -> bytes:
        """A line to the room (chatd's one room, IRC's #bench)."""
        return self.msg_prefix + text + self.eol

    def quit(self) -> bytes:
        if self.name == "chatd":
            return b"/quit bye\n"
        if self.name == "irc":
            return b"QUIT :bye\r\n"
        raise ValueError(f"{self.name} has no quit")

    def ping(self, token: int) -> bytes:
        if self.name == "chatd":
            return b"/ping %d\n" % token
        if self.name == "irc":
            return b"PING %d\r\n" % token
        raise ValueError(f"{self.name} has no ping")

    def is_pong(self, line: bytes) -> bool:
        if self.name == "chatd":
            return line.startswith(b"PONG")
        return b" PONG " in line[:64] if self.name == "irc" else False

    def registration(self, nick: str, privileged: bool) -> "Registration":
        if self.name == "chatd":
            return ChatdRegistration(nick)
        if self.name == "irc":
            return IrcRegistration(nick, privileged)
        return SeedRegistration(nick)


_BODY_RE = rb"t=(\d{19}) s=(\d{4}) n=(\d{7})(?: x+)?"
CHATD = Dialect("chatd", echo=True, window="ping", eol=b"\n", msg_prefix=b"", body_at_start=False,
                line_re=re.compile(rb"^MSG [^ \n]+ " + _BODY_RE + rb"$", re.M),
                stamp_re=re.compile(rb"t=(\d{19}) s=\d{4} n=\d{7}(?: x+)?\n"))
IRC = Dialect("irc", echo=False, window="ping", eol=b"\r\n", msg_prefix=b"PRIVMSG #bench :",
              body_at_start=False,
              line_re=re.compile(rb"^:[^ \n]+ PRIVMSG #bench :" + _BODY_RE + rb"\r$", re.M),
              stamp_re=re.compile(rb"t=(\d{19}) s=\d{4} n=\d{7}(?: x+)?\r\n"))
SEED = Dialect("seed", echo=True, window="echo", eol=b"\n", msg_prefix=b"", body_at_start=True,
               line_re=re.compile(rb"^" + _BODY_RE + rb"$", re.M),
               stamp_re=re.compile(rb"^t=(\d{19}) s=\d{4} n=\d{7}(?: x+)?\n", re.M))
DIALECTS = {d.name: d for d in (CHATD, IRC, SEED)}


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


class ChatdRegistration(Registration):
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
            elif line.startswith(b"WELCOME "):
                self.done = True
                self.leftover, self.buf = self.buf, b""
            elif line.startswith((b"ERR ", b"BYE ")):
                raise RegistrationFailed(line.decode(errors="replace"))
        return out


class IrcRegistration(Registration):
    def __init__(self, nick: str, privileged: bool) -> None:
        self.nick = nick
        self.privileged = privileged
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
                out += b"JOIN #bench\r\n"
            elif code == b"MODE" and b"+F" in line:
                self.flood_exempt = True
            elif code in (b"481", b"491", b"464", b"501"):
                self.flood_exempt = False
            elif code == b"366":
                self.done = True
                self.leftover, self.buf = self.buf, b""
            elif line.startswith(b"ERROR") or code in (b"432", b"433", b"471", b"473", b"474"):
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
