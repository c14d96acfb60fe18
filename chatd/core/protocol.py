"""The line protocol (v5), without I/O: parsing, formatting, codes.

No sockets, threads or logging live here, so every rule in docs/protocol.md
can be tested exhaustively on plain bytes. Message text stays as validated
UTF-8 `bytes` end to end: the hot path (a chat line fanned out to many
clients) never decodes and re-encodes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from chatd import names
from chatd.errors import ProtocolError
from chatd.outlet import Command

__all__ = ["Command"]  # re-exported: where the grammar's commands are defined (chatd/outlet.py)

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
# v4: accounts (docs/protocol.md "Accounts").
NICK_REGISTERED: Final = "nick_registered"
LOGIN_REQUIRED: Final = "login_required"
AUTH_FAILED: Final = "auth_failed"
AUTH_THROTTLED: Final = "auth_throttled"
AUTH_BUSY: Final = "auth_busy"
ACCOUNT_DISABLED: Final = "account_disabled"
REGISTRATION_CLOSED: Final = "registration_closed"
INVITE_INVALID: Final = "invite_invalid"
PASSWORD_INVALID: Final = "password_invalid"
TOKEN_INVALID: Final = "token_invalid"
NOT_LOGGED_IN: Final = "not_logged_in"
REAUTH_REQUIRED: Final = "reauth_required"
ALREADY_REGISTERED: Final = "already_registered"
BANNED: Final = "banned"
# v5: room roles and moderation (docs/protocol.md "Room roles").
NOT_ALLOWED: Final = "not_allowed"
INVITE_ONLY: Final = "invite_only"
BANNED_FROM_ROOM: Final = "banned_from_room"
ACCOUNTS_ONLY: Final = "accounts_only"
MODERATED: Final = "moderated"

VERSION: Final = 5  # the `HELLO <version>` line; docs/protocol.md "Version"

# Errors that count as strikes towards `limits.max_strikes`.
STRIKE_CODES: Final = frozenset({LINE_TOO_LONG, BAD_ENCODING, UNKNOWN_COMMAND})

TOO_LONG: Final = None  # what a transport hands over in place of an oversized line

# C0 controls but tab, DEL, and C1 controls (U+0080..U+009F, e.g. U+009B, a
# terminal's CSI), as they appear in UTF-8: none of them belongs in chat text.
_CONTROL_CHARS = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|\xc2[\x80-\x9f]")


Reader = Callable[[str, bytes, str], Command]  # (verb, the rest of the line, its usage) -> Command


@dataclass(frozen=True, slots=True)
class Syntax:
    """How the line protocol spells one slash command: how its arguments are
    read (`read`, one of the readers below) and its line in `/help`."""

    form: str  # "/join <#room>"
    about: str  # what it does, after the form in /help
    read: Reader
    usage_text: str = ""  # the `missing_argument` text, when not "Usage: <form>"

    @property
    def usage(self) -> str:
        return self.usage_text or f"Usage: {self.form}"

    @property
    def help(self) -> str:
        return f"{self.form}  {self.about}"


def _nothing(verb: str, rest: bytes, usage: str) -> Command:
    """No arguments: anything after the verb is ignored."""
    return Command(verb)


def _rest(verb: str, rest: bytes, usage: str) -> Command:
    """Optional free text: the rest of the line as it is."""
    return Command(verb, rest)


def _text(verb: str, rest: bytes, usage: str) -> Command:
    """Required free text."""
    return Command(verb, _required(rest, usage))


def _word(verb: str, rest: bytes, usage: str) -> Command:
    """One required name (a nickname, a room)."""
    return Command(verb, target=_required(rest.strip(b" \t"), usage).decode())


def _target_and_text(verb: str, rest: bytes, usage: str) -> Command:
    """A required name, then required free text after one space."""
    target, _, text = rest.partition(b" ")
    _required(target, usage)
    return Command(verb, _required(text, usage), target.decode())


def _target_and_words(verb: str, rest: bytes, usage: str) -> Command:
    """A required name, then words read by the command itself (`parse_history`)."""
    target, _, words = rest.strip(b" ").partition(b" ")
    _required(target, usage)
    return Command(verb, words, target.decode())


def _two_words_and_text(verb: str, rest: bytes, usage: str) -> Command:
    """Two required words, then required free text after one space (a password:
    the rest of the line, spaces and all)."""
    target, _, rest = rest.partition(b" ")
    option, _, text = rest.partition(b" ")
    _required(target, usage)
    _required(option, usage)
    return Command(verb, _required(text, usage), target.decode(), option.decode())


def _two_words_and_rest(verb: str, rest: bytes, usage: str) -> Command:
    """Two required words (a room, then a nickname or a ban's mask), then
    optional free text (a reason) after one space."""
    target, _, rest = rest.strip(b" ").partition(b" ")
    option, _, text = rest.lstrip(b" ").partition(b" ")
    _required(target, usage)
    _required(option, usage)
    return Command(verb, text.strip(b" "), target.decode(), option.decode())


def _room_words(verb: str, rest: bytes, usage: str) -> Command:
    """`/room`: `register|drop <#room>`, or `<#room> [<word> [<word>]]` (a flag
    and on|off, or `owner` and a nickname): the room is the target, the first
    other word the option, the next one the text. What they say is checked by
    the command (core/room_commands.py)."""
    words = rest.split()
    _required(b" ".join(words), usage)
    if words[0] in (b"register", b"drop"):
        if len(words) < 2:
            raise ProtocolError(MISSING_ARGUMENT, usage)
        return Command(verb, target=words[1].decode(), option=words[0].decode())
    option = words[1].decode() if len(words) > 1 else ""
    return Command(verb, b" ".join(words[2:3]), words[0].decode(), option)


def _room_and_text(verb: str, rest: bytes, usage: str) -> Command:
    """An optional room (a first word starting with #), then optional text."""
    room, text = _optional_room(rest)
    return Command(verb, text, room)


def _room(verb: str, rest: bytes, usage: str) -> Command:
    """An optional room; anything after it is ignored."""
    return Command(verb, target=_optional_room(rest)[0])


HISTORY_USAGE: Final = "Usage: /history <#room|nick> [before <id> | after <id>] [limit]"

# Every slash command of the line protocol, in the order /help lists them: the
# one place that says which verbs exist and how their arguments are read.
# A line that is not a command has the verb "say" (an empty one "empty").
# What each does is chatd/core/commands.py's table, which has a row for each.
GRAMMAR: Final[Mapping[str, Syntax]] = MappingProxyType(
    {
        "me": Syntax("/me <text>", "describe an action", _text),
        "join": Syntax("/join <#room>", "join a room (creating it) or switch to it", _word),
        "part": Syntax("/part [#room] [text]", "leave a room (default: the current one)", _room_and_text),
        "msg": Syntax(
            "/msg <#room|nick> <text>",
            "speak in a room without switching, or send a direct message",
            _target_and_text,
        ),
        "topic": Syntax("/topic [#room] [text]", "show or set a room's topic", _room_and_text),
        "rooms": Syntax("/rooms", "list the rooms", _nothing),
        "who": Syntax("/who [#room]", "list a room's members", _room),
        "history": Syntax(
            "/history <#room|nick> [before|after <id>] [limit]",
            "earlier (or later) events",
            _target_and_words,
            HISTORY_USAGE,
        ),
        "nick": Syntax("/nick <new>", "change your nickname", _word),
        # v5: registered rooms, roles and moderation (core/room_commands.py).
        "room": Syntax(
            "/room register|drop <#room> | /room <#room> [<flag> on|off | owner <nick>]",
            "register a room, show or set its flags (topic_ops, private, moderated, accounts_only)",
            _room_words,
        ),
        "op": Syntax("/op <#room> <nick>", "make an account an op of a room (owners)", _two_words_and_rest),
        "deop": Syntax("/deop <#room> <nick>", "take an op's role away (owners)", _two_words_and_rest),
        "voice": Syntax("/voice <#room> <nick>", "let an account speak in a moderated room (ops)", _two_words_and_rest),
        "devoice": Syntax("/devoice <#room> <nick>", "take a voice away (ops)", _two_words_and_rest),
        "kick": Syntax("/kick <#room> <nick> [reason]", "remove someone from a room (ops)", _two_words_and_rest),
        "ban": Syntax(
            "/ban <#room> <nick|account:name|address/cidr> [reason]",
            "keep someone out of a room (ops)",
            _two_words_and_rest,
        ),
        "unban": Syntax("/unban <#room> <mask>", "lift a ban (ops)", _two_words_and_rest),
        "bans": Syntax("/bans <#room>", "list a room's bans (ops)", _word),
        "invite": Syntax("/invite <#room> <nick>", "let someone into a private room once (ops)", _two_words_and_rest),
        # v4: accounts. /login, /register and /resume answer `NICK`; after
        # WELCOME they are refused (`already_registered`), never said in a room.
        "login": Syntax("/login <account> <password>", "sign in (instead of a nickname)", _target_and_text),
        "register": Syntax(
            "/register <account> <invite-code|*> <password>", "create an account and sign in", _two_words_and_text
        ),
        "resume": Syntax("/resume <token>", "sign in with a token from /remember", _word),
        "remember": Syntax("/remember [days]", "a token to sign in with later (shown once)", _rest),
        "passwd": Syntax("/passwd <new password>", "change your password", _text),
        "logout": Syntax("/logout [all]", "sign out (all: every token of the account)", _rest),
        "ping": Syntax("/ping [token]", "check the connection", _rest),
        "quit": Syntax("/quit [text]", "leave", _rest),
        "help": Syntax("/help", "this list", _nothing),
    }
)

HELP_LINES: Final = (
    "Commands:",
    "<text>  say something in your current room (//text sends a text starting with /)",
    *(syntax.help for syntax in GRAMMAR.values()),
)


def clean_line(raw: bytes) -> bytes:
    """Strip a trailing `\\r` and check the line is UTF-8 text without control characters."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return check_text(raw)


def check_text(raw: bytes) -> bytes:
    """Return `raw` if it is UTF-8 text without control characters, else raise `bad_encoding`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(BAD_ENCODING, "Lines must be valid UTF-8.") from None
    # NOTE: every message comes here. A printable text has no control character;
    # `isprintable` says so in one C pass, 5x faster than the regex alone.
    if not text.isprintable() and _CONTROL_CHARS.search(raw):
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
    syntax = GRAMMAR.get(verb)
    if syntax is None:
        raise ProtocolError(UNKNOWN_COMMAND, f"Unknown command /{verb}; type /help for the list.")
    return syntax.read(verb, rest, syntax.usage)


def command_verb(raw: bytes) -> str | None:
    """The verb of a line (already through `clean_line`) that names a slash
    command of `GRAMMAR`, else None: what a line before registration is asked,
    before it is taken for a nickname."""
    if not raw.startswith(b"/") or raw.startswith(b"//"):
        return None
    verb = raw[1:].partition(b" ")[0].decode("utf-8")
    return verb if verb in GRAMMAR else None


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
