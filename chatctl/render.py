"""How `chatctl connect` shows server lines to people: pure functions, no I/O.

`render_line()` turns one protocol line (docs/protocol.md, "Server → client")
into a list of `(style, text)` fragments, the shape prompt_toolkit calls
`FormattedText`; `render_plain()` is the same without styles, for tests and
for terminals without colour. Nothing here imports prompt_toolkit, so the
module is cheap to import and easy to test; `STYLE` is plain data that
chatctl/interactive.py turns into a prompt_toolkit `Style`.

Everything that came over the network passes through `sanitize()` before it
is shown, so a peer cannot move the cursor, retitle the terminal or reorder
text with escape sequences or bidirectional controls.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Final, TypeAlias

Fragment: TypeAlias = tuple[str, str]
Fragments: TypeAlias = list[Fragment]

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
}

_BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
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


def same_nick(a: str, b: str) -> bool:
    """Nicknames are equal without regard to case (docs/protocol.md)."""
    return a.lower() == b.lower()


def render_line(line: str, own_nick: str, now: datetime) -> Fragments:
    """One server line as styled fragments, prefixed with the time as HH:MM.

    Args:
        line: a server line without its newline (a trailing `\\r` is ignored).
        own_nick: the user's current nickname ("" before registration);
            it is highlighted wherever it appears.
        now: when the line arrived.
    """
    line = sanitize(line.removesuffix("\r"))
    verb, _, rest = line.partition(" ")
    body = _render_body(verb, rest, own_nick)
    if body is None:
        body = [("class:unknown", line)]
    return [("class:time", now.strftime("%H:%M")), ("", " "), *body]


def render_plain(line: str, own_nick: str, now: datetime) -> str:
    """`render_line()` without the styles."""
    return plain(render_line(line, own_nick, now))


def plain(fragments: Fragments) -> str:
    return "".join(text for _style, text in fragments)


def render_notice(text: str, now: datetime) -> Fragments:
    """A notice from chatctl itself (not from the server)."""
    return [("class:time", now.strftime("%H:%M")), ("", " "), ("class:local", f"-- {sanitize(text)}")]


def _render_body(verb: str, rest: str, own: str) -> Fragments | None:
    """The fragments after the time, or None for a line this client doesn't understand."""
    args = rest.split(" ")
    if verb == "MSG" and len(args) >= 2:
        nick, text = rest.split(" ", 1)
        return [
            ("class:nick", "<"),
            (_nick_style(nick, own), nick),
            ("class:nick", ">"),
            ("", " "),
            *_text(text, own, "class:text"),
        ]
    if verb == "ACTION" and len(args) >= 2:
        nick, text = rest.split(" ", 1)
        return [
            ("class:action", "* "),
            (_nick_style(nick, own, "class:action"), nick),
            ("class:action", " "),
            *_text(text, own, "class:action"),
        ]
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
        return _event(old, own, " is now known as ") + [("class:nick", new)]
    if verb == "USERS":
        nicks = [nick for nick in args if nick]
        fragments: Fragments = [("class:event", f"-- {len(nicks)} online: ")]
        for index, nick in enumerate(nicks):
            if index:
                fragments.append(("class:event", ", "))
            fragments.append((_nick_style(nick, own, "class:event"), nick))
        return fragments
    if verb == "PONG":
        return [("class:event", "-- pong" + (f" {rest}" if rest else ""))]
    if verb in ("INFO", "WELCOME"):
        text = rest.split(" ", 1)[1] if verb == "WELCOME" and " " in rest else rest
        return [("class:info", "-!- "), *_text(text, own, "class:info")]
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
    pattern = re.compile(
        rf"(?<![{_NICK_CHARS}]){re.escape(own)}(?![{_NICK_CHARS}])", re.IGNORECASE
    )
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
