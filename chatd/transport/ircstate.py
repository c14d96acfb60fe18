"""One IRC connection's state, and what its codec remembers about the
commands in flight.

`IrcState` is who the client is on IRC (nickname, user name, real name,
away text), the capabilities it negotiated (and the `profile` they make for
ircout.py), whether it has registered, the rooms it is in (for `JOIN 0`),
and how its server lines start. `Reply` gathers the answer to one client
line (one IRC message), which may be several session commands (`JOIN
#a,#b`); `Asked` is one such command, with what its answer needs to be read
right (the mask a WHO asked for, the rooms a LIST asked about, the ids a
CHATHISTORY keeps). No I/O here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from chatd.transport import ircmessage
from chatd.transport.ircout import ACCOUNT_TAG, EXTENDED_JOIN, TAGS, TIME

# The IRCv3 capabilities always offered (`sasl` and the account ones only
# where accounts or certificates prove names: ircreg.Settings.caps).
CAPS: Final = (
    "batch",
    "cap-notify",
    "draft/chathistory",
    "echo-message",
    "extended-join",
    "labeled-response",
    "message-tags",
    "multi-prefix",
    "server-time",
    "userhost-in-names",
)
_PROFILE_BITS: Final = {
    "server-time": TIME,
    "message-tags": TAGS,
    "extended-join": EXTENDED_JOIN,
    "account-tag": ACCOUNT_TAG,
}


@dataclass(slots=True)
class History:
    """What a CHATHISTORY command keeps of the session's `/history` answer."""

    target: str  # as the client wrote it (the batch's parameter)
    sub: str  # LATEST, BEFORE, ...
    after: int | None = None  # ids kept: greater than `after`, less than `before`
    before: int | None = None
    parts: int = 1  # answers that make one batch (AROUND asks twice)
    events: list[bytes] = field(default_factory=list)  # translated, from the answers so far


@dataclass(slots=True)
class Reply:
    """The answer to one client line: what was said so far, and how many
    session commands (and their history answers) have not finished."""

    command: str
    label: str | None = None
    waiting: int = 0
    out: list[bytes] = field(default_factory=list)
    quiet: bool = False  # a NOTICE: no error is ever sent back (RFC 2812, 3.3.2)


@dataclass(slots=True)
class Asked:
    """One command handed to the session, and how to read what it answers."""

    reply: Reply
    target: str = ""  # the channel or nickname as the client wrote it
    mask: str = ""  # WHO: the mask as sent (RPL_ENDOFWHO repeats it)
    rooms: frozenset[str] | None = None  # LIST: the room keys asked about (None: all)
    history: History | None = None  # CHATHISTORY


class IrcState:
    """Who the client is, what it negotiated, and its server's name."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.nick = ""  # once registered (or accepted as a NICK change)
        self.key = ""  # the nickname's key (lower case), set with it (`rename`)
        self.wanted = ""  # the NICK sent during registration
        self.user = ""  # "~" and the USER name, as shown in user@host
        self.realname = ""
        self.away = ""
        self.password = b""  # PASS, kept for the accounts' SASL-less login
        self.sasl_mechanism = ""  # AUTHENTICATE <mechanism> came; its data has not all come
        self.sasl_data = ""  # the base64 chunks of it so far
        self.sasl_pending = False  # handed to the session; its answer has not come
        self.account = ""  # what SASL proved (RPL_LOGGEDIN), the nickname it registers as
        self.registered = False
        self.caps: set[str] = set()
        self.cap_version = 0  # 302 after `CAP LS 302`
        self.negotiating = False  # `CAP LS` or `REQ` before registration: wait for `CAP END`
        self.profile = 0
        self.rooms: dict[str, str] = {}  # key -> name, the rooms this client is in
        self._batch_ids = itertools.count(1)

    @property
    def shown(self) -> str:
        """The client's nickname in numerics: `*` before it has one."""
        return self.nick or "*"

    def rename(self, nick: str) -> None:
        self.nick, self.key = nick, nick.lower()

    def has(self, cap: str) -> bool:
        return cap in self.caps

    def set_caps(self, caps: Iterable[str]) -> None:
        self.caps = set(caps)
        profile = 0
        for cap in self.caps:
            profile |= _PROFILE_BITS.get(cap, 0)
        self.profile = profile

    def batch_id(self) -> str:
        return f"b{next(self._batch_ids)}"

    def numeric(self, code: str, *params: str) -> bytes:
        """`:server <code> <nick> params...` with CRLF."""
        return ircmessage.line(self.server, code, self.shown, *params)

    def notice(self, text: str) -> bytes:
        return ircmessage.line(self.server, "NOTICE", self.shown, text)

    def fail(self, command: str, code: str, *context: str) -> bytes:
        """An IRCv3 standard reply: `FAIL <command> <code> [context...] :<text>`."""
        return ircmessage.line(self.server, "FAIL", command, code, *context)
