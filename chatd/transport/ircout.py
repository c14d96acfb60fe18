"""What the line protocol's events look like to IRC clients: `MSG` as
PRIVMSG, `JOIN`, `PART`, `LEAVE` as QUIT, `RENAME` as NICK, a `TOPIC` event,
`TAGMSG`, each with the IRCv3 tags the client negotiated (`server-time`,
`message-tags` with `msgid` = chatd's event id), and the `Frames` that make
each room's block once per set of such capabilities.

A block delivered to a room is the same `bytes` object for every member
(core/rooms.py), so `Frames` keeps the last block's translations, one per
capability `profile`, as `TextFrames` (wsframes.py) keeps a block's
WebSocket frames: the IRC members of a room cost one translation between
them, and each a dictionary lookup. What a translation cannot say for every
member (a member's own message, which only `echo-message` clients see; the
joins, parts and renames that change a member's own state) it leaves to the
member's codec (`Translated.about`). Replies meant for one client (`USERS`,
`ERR`, a history block ...) are the codec's (irc.py, ircreplies.py).

No I/O, no chat imports: who a nickname is (`user@host`) is asked of the
`Directory` the server gives (chatd/irc_directory.py).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Final, Protocol

# Capabilities that change how a block looks (bits of a profile).
TIME: Final = 1  # server-time
TAGS: Final = 2  # message-tags: msgid, client-only tags, TAGMSG
EXTENDED_JOIN: Final = 4  # extended-join: JOIN <room> <account> :<realname>
ACCOUNT_TAG: Final = 8  # account-tag: @account=<name> on what a logged-in client says

CTCP: Final = b"\x01"
# The verbs of lines that reach several clients alike: what `Frames` translates once.
_SAID_IN_A_ROOM: Final = (b"MSG", b"ACTION")  # a DM or TAGMSG may be to oneself: shown twice
SHARED_VERBS: Final = frozenset(
    {b"MSG", b"ACTION", b"DM", b"TAGMSG", b"TOPIC", b"JOIN", b"PART", b"LEAVE", b"RENAME"}
    | {b"KICK", b"ROLE", b"FLAG", b"REGISTERED"}  # a registered room's (protocol v5)
)
# A role as IRC's channel modes: owners and ops are `o`, voices `v` (PREFIX=(ov)@+).
ROLE_MODES: Final = {b"owner": b"+o", b"op": b"+o", b"voice": b"-o+v", b"member": b"-ov"}
# A registered room's flags as channel modes (CHANMODES): what each says, IRC's way.
FLAG_MODES: Final = {"topic_ops": "t", "moderated": "m", "private": "s", "accounts_only": "R"}
# What a block's translation found of its senders: nickname -> (account, mask).
Senders = dict[bytes, tuple[str, bytes]]
# A live message with no tag but its id and time: the line of a room's fan-out.
_PLAIN_MSG: Final = re.compile(rb"@id=([^ ;]+);(time=[^ ;]+) MSG ([^ ]*) ([^ ]*) (.*)", re.DOTALL)
# The same lines in a block, for `_one_senders`: each line's room and sender, and its text.
# NOTE: tags, room and nickname are read as ranges of printable bytes, not
# negated sets: sre reads them against a range in half the time. A line with a
# control byte in them does not match, and its block takes the general way.
_PLAIN_MSG_LINES: Final = re.compile(
    rb"^@id=[!-:<-\xff]+;time=[!-:<-\xff]+ MSG ([!-\xff]* [!-\xff]*) (.*)\n", re.MULTILINE
)
_SAID_BY: Final = operator.itemgetter(0)
_TEXT: Final = operator.itemgetter(1)
_MASKS_KEPT: Final = 10_000  # nicknames whose user@host is remembered after they are gone


@dataclass(slots=True)  # not frozen, though never changed: one is made per block a room's IRC members get
class Person:
    """Who a nickname is, as IRC shows it."""

    nick: str
    user: str  # ident: an IRC client's (`~` and its USER name), "chatd" for the others
    host: str
    realname: str
    away: str = ""  # AWAY text; "" when not away
    account: str = ""  # logged-in account, "" for none

    @property
    def mask(self) -> str:
        return f"{self.nick}!{self.user}@{self.host}"


class Directory(Protocol):
    """The chat's registered clients and rooms, as IRC replies need them
    (chatd/irc_directory.py reads them from the chat core)."""

    def person(self, nick: str) -> Person | None: ...

    def people(self) -> list[Person]: ...

    def rooms_of(self, nick: str) -> tuple[str, ...]:
        """`nick`'s rooms, as named, those it created marked `@` (WHOIS)."""

    def creator(self, room: str) -> str | None:
        """The nickname shown as `room`'s operator (`@`), if any."""

    def room_exists(self, room: str) -> bool: ...

    def flags(self, room: str) -> frozenset[str]:
        """The flags of a registered room that are on (none for others)."""

    def topic_time(self, room: str) -> int:
        """When `room`'s topic was set (seconds since the epoch), 0 if unknown."""

    def shares_room(self, a: str, b: str) -> bool: ...


@dataclass(slots=True)  # not frozen, though never changed: one is made per line translated (as Command)
class Native:
    """A line of the line protocol: its tags read, the rest as it came."""

    id: bytes = b""
    time: bytes = b""
    history: bool = False
    notice: bool = False
    action: bool = False
    client: bytes = b""  # client-only tags, `;`-joined, escaped
    verb: bytes = b""
    rest: bytes = b""  # after the verb and one space

    def args(self, count: int) -> list[bytes]:
        """The first `count` - 1 arguments and the rest (fewer if the line has fewer)."""
        return self.rest.split(b" ", count - 1)


def read_native(line: bytes) -> Native:
    id_ = time = client = b""
    history = notice = action = False
    if line.startswith(b"@"):
        raw, _, line = line[1:].partition(b" ")
        extra = []
        for item in raw.split(b";"):
            if item.startswith(b"id="):
                id_ = item[3:]
            elif item.startswith(b"time="):
                time = item[5:]
            elif item == b"history":
                history = True
            elif item == b"notice":
                notice = True
            elif item == b"action":
                action = True
            elif item.startswith(b"+"):
                extra.append(item)
        client = b";".join(extra)
    verb, _, rest = line.partition(b" ")
    return Native(id_, time, history, notice, action, client, verb, rest)


@dataclass(frozen=True, slots=True)
class Translated:
    data: bytes
    lines: int
    # The nickname key of the client the block is about (its sender, joiner,
    # leaver ...): that member's codec translates the block itself.
    about: str
    # Only lines said in a room (MSG, ACTION): for the member they are about,
    # its echo is these same lines, and without echo-message nothing.
    said: bool = False


class Frames:
    """Translations of the last block delivered, by profile. Any thread may
    call `translate`: the cache is one tuple, replaced whole (at worst two
    threads translating at once both do the work)."""

    def __init__(self, directory: Directory, server: str) -> None:
        self.directory = directory
        self.server = server  # irc.server_name: the source of what the server itself does
        # The last block and its translations by profile (the codec reads it first).
        self.last: tuple[bytes, dict[int, Translated | None]] = (b"", {})
        self._masks: dict[str, str] = {}  # nick key -> its last mask, for those gone (QUIT)

    def translate(self, data: bytes, profile: int) -> Translated | None:
        """`data` as IRC lines for `profile`, or None when it is not a block
        of shared events (a reply to one client: the codec's)."""
        last, done = self.last
        if last is data:
            if profile in done:
                return done[profile]
        else:
            done = {}
            self.last = (data, done)
        translated = self._translate(data, profile)
        done[profile] = translated
        return translated

    def _translate(self, data: bytes, profile: int) -> Translated | None:
        plain = self._one_senders(data, profile)
        if plain is not None:
            return plain
        lines = data.split(b"\n")
        lines.pop()  # what followed the last newline: nothing
        plain = self._messages(lines, profile)
        if plain is not None:
            return plain
        out = []
        about = ""
        said = True
        senders: Senders = {}  # a block's lines are one client's: its mask is looked up once
        for raw in lines:
            native = read_native(raw)
            if native.verb not in SHARED_VERBS or native.history or (native.verb == b"TOPIC" and not native.id):
                return None
            said = said and native.verb in _SAID_IN_A_ROOM
            line, about = self.event(native, profile, senders)
            if line:
                out.append(line)
        return Translated(b"".join(out), len(out), about, said)

    def _one_senders(self, data: bytes, profile: int) -> Translated | None:
        """`_messages` for a block of one sender's plain messages to one room
        (what one read of a client's makes), for a client without tags: the
        lines' room, sender and text read with one `findall` anchored at each
        line's start, and the texts joined with the line's head between them.
        A line it does not read (a tag, another verb) leaves the count short,
        and a block of several senders or rooms reads as more than one; both
        go to `_messages` (NOTE: the fan-out's path, bench/INSTRUCTIONS.md).
        Where a client gets tags, a line's own formatting is most of the cost,
        and `_messages` does it."""
        if profile & (TAGS | TIME | ACCOUNT_TAG):
            return None
        found: list[tuple[bytes, bytes]] = _PLAIN_MSG_LINES.findall(data)
        if not found or len(found) != data.count(b"\n"):
            return None
        said_by = set(map(_SAID_BY, found))
        if len(said_by) != 1:
            return None
        room, _, nick = said_by.pop().partition(b" ")
        head = b":%s PRIVMSG %s :" % (self.mask(nick.decode()).encode(), room)
        return Translated(
            head + (b"\r\n" + head).join(map(_TEXT, found)) + b"\r\n", len(found), nick.lower().decode(), True
        )

    def _messages(self, lines: list[bytes], profile: int) -> Translated | None:
        """A block of plain live messages (`@id=<id>;time=<time> MSG <room> <nick>
        <text>`, no other tag: what a room's fan-out is, bench/INSTRUCTIONS.md)
        as `_translate`'s general way makes it, in fewer steps; None for any other."""
        out: list[bytes] = []
        heads: dict[tuple[bytes, bytes], tuple[str, bytes]] = {}  # (nick, room) -> account, line head
        nick = b""
        for raw in lines:
            plain = _PLAIN_MSG.fullmatch(raw)
            if plain is None:
                return None
            id_, time, room, nick, text = plain.groups()
            known = heads.get((nick, room))
            if known is None:
                account, mask = self._sender(True, profile, nick)
                known = heads[nick, room] = account, b":%s PRIVMSG %s :" % (mask, room)
            account, head = known
            if profile & (TAGS | TIME) or account:
                items = [b"msgid=" + id_] if profile & TAGS else []
                if profile & TIME:
                    items.append(time)
                if account:
                    items.append(b"account=" + account.encode())
                out += (b"@", b";".join(items), b" ", head, text, b"\r\n")
            else:
                out += (head, text, b"\r\n")
        if not lines:
            return None
        return Translated(b"".join(out), len(lines), nick.lower().decode(), True)

    def event(self, native: Native, profile: int, senders: Senders | None = None) -> tuple[bytes, str]:
        """One shared event as an IRC line, and the nickname key it is about
        (`senders`: what the block's other lines found of their senders)."""
        verb = native.verb
        if verb in (b"MSG", b"ACTION", b"TOPIC", b"TAGMSG"):
            target, nick, text = ([*native.args(3), b""])[:3]
            return self._said(native, profile, nick, target, text, senders), nick.lower().decode()
        if verb == b"DM":
            nick, target, text = ([*native.args(3), b""])[:3]
            return self._said(native, profile, nick, target, text, senders), nick.lower().decode()
        if verb == b"JOIN":
            room, nick = native.args(2)
            return self._join(profile, room.decode(), nick.decode()), nick.lower().decode()
        if verb == b"PART":
            room, nick, text = ([*native.args(3), b""])[:3]
            tail = b" :%s" % text if text else b""
            return b":%s PART %s%s\r\n" % (self.mask(nick.decode()).encode(), room, tail), nick.lower().decode()
        if verb == b"LEAVE":
            nick, reason = ([*native.args(2), b""])[:2]
            mask = self.mask(nick.decode()).encode()
            return b":%s QUIT :%s\r\n" % (mask, quit_text(reason.decode()).encode()), nick.lower().decode()
        if verb == b"RENAME":
            old, new = native.args(2)
            return b":%s NICK %s\r\n" % (self.mask(new.decode(), old.decode()).encode(), new), old.lower().decode()
        return self._moderation(native)

    def _moderation(self, native: Native) -> tuple[bytes, str]:
        """KICK, ROLE, FLAG and REGISTERED of a registered room (protocol v5)."""
        verb = native.verb
        if verb == b"KICK":  # KICK <room> <nick> <by> <kicked|banned> [text]
            room, nick, by, why = ([*native.args(4), b"", b"", b""])[:4]
            reason, _, text = why.decode().partition(" ")
            comment = text or ("Banned" if reason == "banned" else "Kicked")
            line = f":{self.source(by)} KICK {room.decode()} {nick.decode()} :{comment}\r\n"
            return line.encode(), nick.lower().decode()
        if verb == b"ROLE":  # ROLE <room> <nick> <role> <by>
            room, nick, role, by = ([*native.args(4), b"", b""])[:4]
            modes = ROLE_MODES.get(role, b"-ov")
            nicks = b" ".join([nick] * (len(modes) - modes.count(b"+") - modes.count(b"-")))
            return b":%s MODE %s %s %s\r\n" % (self.source(by).encode(), room, modes, nicks), ""
        if verb == b"FLAG":  # FLAG <room> <flag> <on|off> <by>
            room, flag, value, by = ([*native.args(4), b"", b""])[:4]
            sign = "+" if value == b"on" else "-"
            letter = FLAG_MODES.get(flag.decode(), "")
            line = f":{self.source(by)} MODE {room.decode()} {sign}{letter}\r\n" if letter else ""
            return line.encode(), ""
        room, owner = ([*native.args(2), b""])[:2]  # REGISTERED <room> <owner|*>
        text = (
            f"{room.decode()} is no longer registered"
            if owner == b"*"
            else f"{room.decode()} is registered to {owner.decode()}"
        )
        return f":{self.server} NOTICE {room.decode()} :{text}\r\n".encode(), ""

    def source(self, by: bytes) -> str:
        """Who did something: a nickname's mask, or the server (`*`: the operator)."""
        return self.server if by in (b"*", b"") else self.mask(by.decode())

    def _said(
        self, native: Native, profile: int, nick: bytes, target: bytes, text: bytes, senders: Senders | None
    ) -> bytes:
        known = senders.get(nick) if senders is not None and not native.history else None
        if known is None:
            known = self._sender(not native.history, profile, nick)
            if senders is not None and not native.history:
                senders[nick] = known
        account, mask = known
        tags = self.tags(native, profile, account)
        verb = native.verb
        if verb == b"TAGMSG":
            if not profile & TAGS:
                return b""  # a client without message-tags gets no TAGMSG
            return b"%s:%s TAGMSG %s\r\n" % (tags, mask, target)
        if verb == b"TOPIC":
            return b"%s:%s TOPIC %s :%s\r\n" % (tags, mask, target, text)
        command = b"NOTICE" if native.notice else b"PRIVMSG"
        if verb == b"ACTION" or native.action:
            text = b"\x01ACTION %s\x01" % text
        return b"%s:%s %s %s :%s\r\n" % (tags, mask, command, target, text)

    def _sender(self, live: bool, profile: int, nick: bytes) -> tuple[str, bytes]:
        """The sender's account (account-tag: a live event's only) and mask."""
        account = ""
        if profile & ACCOUNT_TAG and live:
            person = self.directory.person(nick.decode())
            account = person.account if person is not None else ""
        return account, self.mask(nick.decode()).encode()

    def _join(self, profile: int, room: str, nick: str) -> bytes:
        if profile & EXTENDED_JOIN:
            person = self.directory.person(nick)
            account = person.account if person is not None and person.account else "*"
            realname = person.realname if person is not None else nick
            return f":{self.mask(nick)} JOIN {room} {account} :{realname}\r\n".encode()
        return f":{self.mask(nick)} JOIN {room}\r\n".encode()

    @staticmethod
    def tags(native: Native, profile: int, account: str = "") -> bytes:
        """`account` (account-tag): the sender's, when it is proven and live."""
        parts = []
        if profile & TAGS and native.id:
            parts.append(b"msgid=" + native.id)
        if profile & TIME and native.time:
            parts.append(b"time=" + native.time)
        if account:
            parts.append(b"account=" + account.encode())
        if profile & TAGS and native.client:
            parts.append(native.client)
        return b"@%s " % b";".join(parts) if parts else b""

    def mask(self, nick: str, shown: str | None = None) -> str:
        """`nick!user@host` for `nick` (shown as `shown`: a rename's old nickname)."""
        person = self.directory.person(nick)
        key = nick.lower()
        if person is not None:
            at = f"{person.user}@{person.host}"
            if len(self._masks) > _MASKS_KEPT:
                self._masks.clear()
            self._masks[key] = at
        else:
            at = self._masks.get(key, "chatd@chatd")
        return f"{shown or nick}!{at}"


def quit_text(reason: str) -> str:
    """A `LEAVE` reason (code and text) as a QUIT message."""
    code, _, text = reason.partition(" ")
    if code == "quit":
        return f"Quit: {text}" if text else "Quit"
    words = {
        "connection_lost": "Connection closed",
        "kicked": "Kicked by an operator",
        "shutdown": "Server shutting down",
        "slow_consumer": "SendQ exceeded",
        "write_timeout": "Write timeout",
        "flood": "Excess flood",
        "too_many_errors": "Too many errors",
    }.get(code, code)
    return f"{words}: {text}" if text else words
