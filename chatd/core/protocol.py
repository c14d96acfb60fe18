"""The line protocol (v3), without I/O: parsing, formatting, codes.

No sockets, threads or logging live here, so every rule in docs/protocol.md
can be tested exhaustively on plain bytes. Message text stays as validated
UTF-8 `bytes` end to end: the hot path (a chat line fanned out to many
clients) never decodes and re-encodes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from chatd import names
from chatd.errors import ProtocolError

# ERR codes (stable; docs/protocol.md "Errors").
NICK_INVALID: Final = "nick_invalid"
NICK_TAKEN: Final = "nick_taken"
LINE_TOO_LONG: Final = "line_too_long"
BAD_ENCODING: Final = "bad_encoding"
UNKNOWN_COMMAND: Final = "unknown_command"
MISSING_ARGUMENT: Final = "missing_argument"
NO_SUCH_NICK: Final = "no_such_nick"
RATE_LIMITED: Final = "rate_limited"
SERVER_FULL: Final = "server_full"
TOO_MANY_CONNECTIONS: Final = "too_many_connections"
THROTTLED: Final = "throttled"
ROOM_INVALID: Final = "room_invalid"
NOT_IN_ROOM: Final = "not_in_room"
NO_SUCH_ROOM: Final = "no_such_room"
TOO_MANY_ROOMS: Final = "too_many_rooms"
BAD_ARGUMENT: Final = "bad_argument"
NO_HISTORY: Final = "no_history"

VERSION: Final = 3  # the `HELLO <version>` line; docs/protocol.md "Version"

# Errors that count as strikes towards `limits.max_strikes`.
STRIKE_CODES: Final = frozenset({LINE_TOO_LONG, BAD_ENCODING, UNKNOWN_COMMAND})

TOO_LONG: Final = None  # what a transport hands over in place of an oversized line

# C0 controls but tab, DEL, and C1 controls (U+0080..U+009F, e.g. U+009B, a
# terminal's CSI), as they appear in UTF-8: none of them belongs in chat text.
_CONTROL_CHARS = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|\xc2[\x80-\x9f]")

HELP_LINES: Final = (
    "Commands:",
    "<text>  say something in your current room (//text sends a text starting with /)",
    "/me <text>  describe an action",
    "/join <#room>  join a room (creating it) or switch to it",
    "/part [#room] [text]  leave a room (default: the current one)",
    "/msg <#room|nick> <text>  speak in a room without switching, or send a direct message",
    "/topic [#room] [text]  show or set a room's topic",
    "/rooms  list the rooms",
    "/who [#room]  list a room's members",
    "/history <#room|nick> [before|after <id>] [limit]  earlier (or later) events",
    "/nick <new>  change your nickname",
    "/ping [token]  check the connection",
    "/quit [text]  leave",
    "/help  this list",
)


@dataclass(frozen=True, slots=True)
class Command:
    """One client line after registration.

    `verb` is one of: say, me, msg, nick, who, ping, quit, help, empty, join,
    part, topic, rooms, history. `text` is validated UTF-8; `target` is a
    nickname or room argument ("" when an optional one was left out).
    """

    verb: str
    text: bytes = b""
    target: str = ""


_SIMPLE_VERBS: Final = frozenset({"help", "rooms"})


def clean_line(raw: bytes) -> bytes:
    """Strip a trailing `\\r` and check the line is UTF-8 text without control characters."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(BAD_ENCODING, "Lines must be valid UTF-8.") from None
    if _CONTROL_CHARS.search(raw):
        raise ProtocolError(BAD_ENCODING, "Lines must not contain control characters.")
    return raw


def parse_command(raw: bytes) -> Command:
    """Parse a registered client's line (already through `clean_line`)."""
    if not raw.startswith(b"/"):
        return Command("say", raw) if raw else Command("empty")
    if raw.startswith(b"//"):
        return Command("say", raw[1:])
    word, _, rest = raw[1:].partition(b" ")
    verb = word.decode("utf-8")
    if verb in _SIMPLE_VERBS:
        return Command(verb)
    if verb in ("ping", "quit"):
        return Command(verb, rest)
    if verb == "me":
        return Command("me", _required(rest, "Usage: /me <text>"))
    if verb == "nick":
        return Command("nick", target=_required(rest.strip(b" \t"), "Usage: /nick <new>").decode())
    if verb == "msg":
        target, _, text = rest.partition(b" ")
        _required(target, "Usage: /msg <#room|nick> <text>")
        return Command("msg", _required(text, "Usage: /msg <#room|nick> <text>"), target.decode())
    if verb == "join":
        room = _required(rest.strip(b" \t"), "Usage: /join <#room>")
        return Command("join", target=room.decode())
    if verb == "history":
        target, _, rest = rest.strip(b" ").partition(b" ")
        _required(target, HISTORY_USAGE)
        return Command("history", rest, target.decode())
    if verb in ("part", "topic", "who"):
        name, words = _optional_room(rest)
        return Command(verb, b"" if verb == "who" else words, name)
    raise ProtocolError(UNKNOWN_COMMAND, f"Unknown command /{verb}; type /help for the list.")


HISTORY_USAGE: Final = "Usage: /history <#room|nick> [before <id> | after <id>] [limit]"


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    before: int | None
    after: int | None
    limit: int


def parse_history(words: bytes, default_limit: int, max_limit: int) -> HistoryQuery:
    """`[before <id> | after <id>] [<limit>]` of a `/history` line."""
    parts = words.split()
    before = after = None
    if parts and parts[0] in (b"before", b"after"):
        if len(parts) < 2:
            raise ProtocolError(MISSING_ARGUMENT, HISTORY_USAGE)
        if not parts[1].isdigit() or int(parts[1]) >= 1 << 62:
            raise ProtocolError(BAD_ARGUMENT, f"An event id is a number such as 1042 (got {parts[1].decode()}).")
        before, after = (int(parts[1]), None) if parts[0] == b"before" else (None, int(parts[1]))
        parts = parts[2:]
    limit = default_limit
    if parts:
        if not parts[0].isdigit() or not 1 <= int(parts[0]) <= max_limit:
            raise ProtocolError(BAD_ARGUMENT, f"The limit is 1-{max_limit} (got {parts[0].decode()}).")
        limit = int(parts[0])
        parts = parts[1:]
    if parts:
        raise ProtocolError(BAD_ARGUMENT, HISTORY_USAGE)
    return HistoryQuery(before, after, limit)


def _optional_room(rest: bytes) -> tuple[str, bytes]:
    """`[#room] [text]`: the room if the first word names one, and the rest."""
    rest = rest.lstrip(b" ")
    if not rest.startswith(b"#"):
        return "", rest.rstrip(b" ")
    room, _, text = rest.partition(b" ")
    return room.decode(), text.strip(b" ")


def _required(value: bytes, usage: str) -> bytes:
    if not value.strip():
        raise ProtocolError(MISSING_ARGUMENT, usage)
    return value


def check_nick(nick: str, max_length: int) -> str:
    """Return `nick` if it follows the nickname rules, else raise `nick_invalid`."""
    if not names.is_nick(nick, max_length):
        raise ProtocolError(NICK_INVALID, f"Nicknames are {names.NICK_RULE.format(max_length=max_length)}.")
    return nick


def check_room(name: str) -> str:
    """Return `name` if it follows the room-name rules, else raise `room_invalid`."""
    if not names.is_room_name(name):
        raise ProtocolError(ROOM_INVALID, f"Room names are {names.ROOM_RULE}.")
    return name


def format_line(verb: str, *args: str) -> bytes:
    """`VERB arg ...\\n` as bytes; only the last argument may contain spaces,
    and an empty last argument leaves no trailing space."""
    if args and not args[-1]:
        args = args[:-1]
    return " ".join((verb, *args)).encode("utf-8") + b"\n"


def format_error(error: ProtocolError) -> bytes:
    return format_line("ERR", error.code, error.text)


def format_users(room: str, nicks: list[str]) -> bytes:
    return format_line("USERS", room, *sorted(nicks, key=str.lower))
