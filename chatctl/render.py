"""How `chatctl connect` shows server lines to people: pure functions, no I/O.

`render_line()` turns one protocol line (docs/protocol.md, "Server → client")
into a list of `(style, text)` fragments, the shape prompt_toolkit calls
`FormattedText`; `render_plain()` is the same without styles, for tests and
for terminals without colour. A line from a room other than the current one
starts with the room's name. An event shows the time its `time` tag gives
(in local time), and one tagged `history` is drawn in grey throughout
(`class:history`); `render_day()` is the separator shown when the day
changes. In a registered room a message's author is marked `@` (op, owner)
or `+` (voice) when `render_line` is told roles; the lines about roles are
chatctl/roles.py's. The status line is chatctl/status.py's. Lines of a v1
server (no room argument) are shown too. Nothing here imports
prompt_toolkit, so the module is cheap to import and easy to test; `STYLE` is
plain data that chatctl/interactive.py turns into a prompt_toolkit `Style`.

Everything that came over the network passes through `sanitize()` before it
is shown, so a peer cannot move the cursor, retitle the terminal or reorder
text with escape sequences or bidirectional controls.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from typing import Final, TypeAlias

from chatctl.roles import mark, render_moderation
from chatctl.state import (
    MODERATION_VERBS,
    ROOM_VERBS,
    is_room,
    line_room,
    line_tags,
    room_key,
    same_nick,
    split_line,
)

Fragment: TypeAlias = tuple[str, str]
Fragments: TypeAlias = list[Fragment]
Roles: TypeAlias = Callable[[str, str], str]  # (room, nick) -> its role there (ClientState.role)

# Class names used in the fragments; chatctl/interactive.py maps them to colours.
STYLE: Final[dict[str, str]] = {
    "time": "#8a8a8a",
    "nick": "bold",
    "own": "bold ansiyellow",  # your own nickname, wherever it appears
    "mention": "bold ansiyellow",
    "text": "",
    "action": "italic ansimagenta",
    "dm": "ansicyan",
    "event": "#8a8a8a",  # joins, leaves, renames, the user list
    "info": "ansigreen",
    "error": "bold ansired",
    "bye": "ansired",
    "local": "ansiblue",  # chatctl's own notices, not the server's
    "unknown": "#8a8a8a",
    "room": "bold ansicyan",  # the room a line comes from, when it is not the current one
    "day": "bold #8a8a8a",  # the separator when the day changes
    # The status line, on the background of prompt_toolkit's `bottom-toolbar` class.
    "status": "",
    "status-current": "bold #ffffff",
    "status-unread": "bold ansiyellow",
    "status-topic": "#a8a8a8",
    # Events sent again from the server's history: grey, whatever else they are.
    # NOTE: keep it last. prompt_toolkit applies the rules that match a
    # fragment in the order they are defined here, so the last one wins.
    "history": "nobold noitalic #7a7a7a",
}

_BIDI_CONTROLS: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_NICK_CHARS = "A-Za-z0-9_-"

_LEAVE_WORDS: Final[dict[str, str]] = {
    "quit": "left",
    "connection_lost": "lost the connection",
    "kicked": "was kicked",
    "shutdown": "left (the server is stopping)",
    "slow_consumer": "was disconnected (not reading fast enough)",
    "write_timeout": "was disconnected (stopped reading)",
    "flood": "was disconnected for flooding",
    "too_many_errors": "was disconnected after too many errors",
    "replaced": "signed in elsewhere",
    "logout": "signed out",
    "banned": "was banned",
}

# What BYE <code> means for the person who receives it.
BYE_WORDS: Final[dict[str, str]] = {
    "quit": "goodbye",
    "shutdown": "the server is shutting down",
    "kicked": "an operator removed you",
    "slow_consumer": "you were not reading fast enough",
    "write_timeout": "you stopped reading",
    "flood": "you sent too fast for too long",
    "too_many_errors": "too many refused lines",
    "register_timeout": "no nickname was chosen in time",
    "nick_failed": "too many refused nicknames",
    "server_full": "the server is full",
    "too_many_connections": "too many connections from your address",
    "throttled": "too many connections from your address in the last minute",
    "replaced": "your account signed in elsewhere",
    "logout": "you signed out",
    "banned": "banned by an operator",
}


def sanitize(text: str) -> str:
    """Make network text safe to print on a terminal.

    C0/C1 control characters and DEL become caret or `<U+XXXX>` notation, so
    they are visible but inert; bidirectional overrides (which can make text
    read differently from what was sent) become `<U+XXXX>`; tabs and the
    Unicode line and paragraph separators become spaces.
    """
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char == "\t" or char in "\u2028\u2029":
            out.append(" ")
        elif code < 0x20:
            out.append("^" + chr(code + 0x40))
        elif code == 0x7F:
            out.append("^?")
        elif char in _BIDI_CONTROLS or unicodedata.category(char) == "Cc":
            out.append(f"<U+{code:04X}>")
        else:
            out.append(char)
    return "".join(out)


def render_line(
    line: str, own_nick: str, now: datetime, current: str | None = None, roles: Roles | None = None
) -> Fragments:
    """One server line as styled fragments, prefixed with the time as HH:MM.

    Args:
        line: a server line without its newline (a trailing `\\r` is ignored).
        own_nick: the user's current nickname ("" before registration);
            it is highlighted wherever it appears.
        now: when the line arrived.
        current: the current room; a line from any other room (or from any
            room, when this is None) starts with that room's name.
        roles: who holds which role where, for the `@` and `+` before the
            author of a live message.
    """
    tags = line_tags(line)
    line = sanitize(line.removesuffix("\r"))
    verb, rest = split_line(line)
    body = _render_body(verb, rest, own_nick, roles if not tags.history else None)
    if body is None:
        body = [("class:unknown", line)]
        room = None
    else:
        room = _prefix_room(verb, rest, own_nick, current)
    prefix: Fragments = [("class:room", room), ("", " ")] if room is not None else []
    when = line_time(line, now)
    fragments = [("class:time", when.strftime("%H:%M")), ("", " "), *prefix, *body]
    if tags.history:
        fragments = [(f"{style} class:history".lstrip(), text) for style, text in fragments]
    return fragments


def line_time(line: str, now: datetime) -> datetime:
    """When a line happened, in `now`'s time zone (local if `now` is naive):
    its `time` tag if it has one, else `now`."""
    when = line_tags(line).time
    if when is None:
        return now
    if now.tzinfo is None:
        return when.astimezone().replace(tzinfo=None)
    return when.astimezone(now.tzinfo)


def render_day(day: date) -> Fragments:
    """The separator before the first line of a day (other than the first line shown)."""
    return [("class:day", f"-- {day.strftime('%A')} {day.day} {day.strftime('%B %Y')} --")]


def render_plain(line: str, own_nick: str, now: datetime, current: str | None = None) -> str:
    """`render_line()` without the styles."""
    return plain(render_line(line, own_nick, now, current))


def _prefix_room(verb: str, rest: str, own: str, current: str | None) -> str | None:
    """The room to name before the line: its room, unless that is the current
    one, or the line itself names it (your own JOIN and PART)."""
    room = line_room(verb, rest)
    if room is None or verb in MODERATION_VERBS or (current is not None and room_key(room) == room_key(current)):
        return None  # (the lines of chatctl/roles.py name their room themselves)
    nick = rest.split(" ", 2)[1] if rest.count(" ") >= 1 else ""
    if verb in ("JOIN", "PART") and own and same_nick(nick, own):
        return None
    return room


def plain(fragments: Fragments) -> str:
    return "".join(text for _style, text in fragments)


def render_notice(text: str, now: datetime) -> Fragments:
    """A notice from chatctl itself (not from the server)."""
    return [("class:time", now.strftime("%H:%M")), ("", " "), ("class:local", f"-- {sanitize(text)}")]


def _render_body(verb: str, rest: str, own: str, roles: Roles | None = None) -> Fragments | None:
    """The fragments after the time, or None for a line this client doesn't understand.

    Room lines come in two shapes: v2's, with the room first (`MSG #lobby alice
    hi`), and v1's, without (`MSG alice hi`). A nickname never starts with `#`,
    so the first word tells them apart.
    """
    args = rest.split(" ")
    in_room = is_room(args[0])
    if in_room and verb in ROOM_VERBS:
        return _render_room_line(verb, args[0], rest.partition(" ")[2], own, roles)
    if in_room and verb in MODERATION_VERBS:
        return render_moderation(verb, args[0], rest.partition(" ")[2], own)
    if verb == "MSG" and len(args) >= 2:
        nick, text = rest.split(" ", 1)
        return _message(nick, text, own)
    if verb == "ACTION" and len(args) >= 2:
        nick, text = rest.split(" ", 1)
        return _action(nick, text, own)
    if verb == "DM" and len(args) >= 3:
        sender, target, text = rest.split(" ", 2)
        return [
            ("class:dm", "[DM "),
            *_dm_party(sender, own),
            ("class:dm", " → "),
            *_dm_party(target, own),
            ("class:dm", "] "),
            *_text(text, own, "class:dm"),
        ]
    if verb == "JOIN" and len(args) == 1 and rest:
        return _event(rest, own, " joined")
    if verb == "LEAVE" and len(args) >= 2:
        nick, code_and_text = rest.split(" ", 1)
        code, _, text = code_and_text.partition(" ")
        words = _LEAVE_WORDS.get(code, f"left ({code})")
        return _event(nick, own, f" {words}" + (f": {text}" if text else ""))
    if verb == "RENAME" and len(args) == 2:
        old, new = args
        if own and (same_nick(old, own) or same_nick(new, own)):
            return [("class:event", "-- you are now known as "), ("class:own", new)]
        return [*_event(old, own, " is now known as "), ("class:nick", new)]
    if verb == "USERS":
        return _users(args, "online", own)
    if verb == "CURRENT" and rest == "*":
        return [("class:event", "-- you are in no room; /join one")]
    if verb == "CURRENT" and in_room and len(args) == 1:
        return [("class:event", "-- now talking in "), ("class:room", rest)]
    if verb == "ROOM" and in_room and len(args) >= 2:
        room, count, *topic = rest.split(" ", 2)
        listed: Fragments = [("class:event", "-- "), ("class:room", room), ("class:event", f" ({count})")]
        return listed + ([("class:event", ": "), *_text(topic[0], own, "class:event")] if topic else [])
    if verb == "ROOMS" and len(args) == 1 and rest:
        return [("class:event", f"-- {rest} room" + ("" if rest == "1" else "s"))]
    if verb == "HISTORY" and len(args) == 3 and args[1].isdigit():
        target, count, more = args
        events = "1 event" if count == "1" else f"{count} events"
        whose = f"the history of {target}" if is_room(target) else f"your direct messages with {target}"
        tail = "; there are more" if more == "more" else ""
        return [("class:event", f"-- {events} from {whose}{tail}")]
    if verb == "PONG":
        return [("class:event", "-- pong" + (f" {rest}" if rest else ""))]
    if verb in ("INFO", "WELCOME"):
        text = rest.split(" ", 1)[1] if verb == "WELCOME" and " " in rest else rest
        return [("class:info", "-!- "), *_text(text, own, "class:info")]
    if verb == "HELLO" and len(args) >= 2:
        version, text = rest.split(" ", 1)
        return [("class:info", f"-!- {text} (protocol version {version})")]
    if verb == "ACCOUNTS":  # docs/protocol.md "Accounts": keys unknown here are left out
        keys = dict(item.partition("=")[::2] for item in args)
        modes = f"registration {keys.get('registration', '?')}, guests {keys.get('guests', '?')}"
        return [("class:info", f"-!- this server has accounts ({sanitize(modes)})")]
    if verb == "NICK" and not rest:
        return [("class:info", "-!- the server asks for a nickname")]
    if verb == "ERR" and rest:
        code, _, text = rest.partition(" ")
        return [("class:error", f"error ({code})" + (f": {text}" if text else ""))]
    if verb == "BYE" and rest:
        code, _, text = rest.partition(" ")
        if code == "quit":
            return [("class:bye", "-- goodbye")]
        words = BYE_WORDS.get(code, code)
        return [("class:bye", f"-- disconnected: {words}" + (f" ({text})" if text else ""))]
    return None


def _render_room_line(verb: str, room: str, rest: str, own: str, roles: Roles | None) -> Fragments | None:
    """A v2 room line after its room: `rest` is what follows the room name."""
    nick, _, text = rest.partition(" ")
    if not nick and verb != "USERS":
        return None
    you = bool(own) and same_nick(nick, own)
    marked = mark(roles(room, nick)) if roles is not None else ""
    if verb == "MSG":
        return _message(nick, text, own, marked)
    if verb == "ACTION":
        return _action(nick, text, own, marked)
    if verb == "JOIN":
        if text:
            return None
        if you:
            return [("class:event", "-- you joined "), ("class:room", room)]
        return _event(nick, own, " joined")
    if verb == "PART":
        said = [("class:event", ": "), *_text(text, own, "class:event")] if text else []
        if you:
            return [("class:event", "-- you left "), ("class:room", room), *said]
        return _event(nick, own, " left the room") + said
    if verb == "TOPIC":
        if not text:
            return [("class:event", "-- no topic")]
        shown = [("class:event", "-- topic: "), *_text(text, own, "class:event")]
        if nick == "*":  # nobody has set it (yet)
            return shown
        setter = _nick_style(nick, own, "class:event")
        return [*shown, ("class:event", " (set by "), (setter, nick), ("class:event", ")")]
    return _users(rest.split(" "), "here", own)


def _message(nick: str, text: str, own: str, marked: str = "") -> Fragments:
    return [
        ("class:nick", "<" + marked),
        (_nick_style(nick, own), nick),
        ("class:nick", ">"),
        ("", " "),
        *_text(text, own, "class:text"),
    ]


def _action(nick: str, text: str, own: str, marked: str = "") -> Fragments:
    return [
        ("class:action", "* " + marked),
        (_nick_style(nick, own, "class:action"), nick),
        ("class:action", " "),
        *_text(text, own, "class:action"),
    ]


def _users(args: list[str], where: str, own: str) -> Fragments:
    nicks = [nick for nick in args if nick]
    fragments: Fragments = [("class:event", f"-- {len(nicks)} {where}: ")]
    for index, nick in enumerate(nicks):
        if index:
            fragments.append(("class:event", ", "))
        fragments.append((_nick_style(nick, own, "class:event"), nick))
    return fragments


def _nick_style(nick: str, own: str, style: str = "class:nick") -> str:
    return "class:own" if own and same_nick(nick, own) else style


def _dm_party(nick: str, own: str) -> Fragments:
    if own and same_nick(nick, own):
        return [("class:own", "you")]
    return [("class:dm", nick)]


def _event(nick: str, own: str, words: str) -> Fragments:
    return [("class:event", "-- "), (_nick_style(nick, own, "class:event"), nick), ("class:event", words)]


def _text(text: str, own: str, style: str) -> Fragments:
    """`text` in `style`, with whole-word mentions of `own` highlighted."""
    if not own:
        return [(style, text)]
    pattern = re.compile(rf"(?<![{_NICK_CHARS}]){re.escape(own)}(?![{_NICK_CHARS}])", re.IGNORECASE)
    fragments: Fragments = []
    position = 0
    for match in pattern.finditer(text):
        if match.start() > position:
            fragments.append((style, text[position : match.start()]))
        fragments.append(("class:mention", match.group()))
        position = match.end()
    if position < len(text) or not fragments:
        fragments.append((style, text[position:]))
    return fragments
