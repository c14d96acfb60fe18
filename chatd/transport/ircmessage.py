"""IRC messages without I/O: reading a client's line, writing a server's.

The grammar is modern.ircdocs.horse's ("Message format") with IRCv3
message-tags: `[@tags ][:source ]COMMAND[ params][ :trailing]`. Parameters
stay bytes (a client may send text that is not UTF-8; the codec decides what
to do with it); the command and tag keys are ASCII. Tag values are unescaped
when read and escaped when written, as message-tags says (`\\:` `;`, `\\s`
space, `\\\\`, `\\r`, `\\n`).

Lengths are IRC's, not the line protocol's: a client's tags may take up to
`TAGS_MAX` bytes and the rest of its line `BODY_MAX` (CRLF included); a line
over either is refused with ERR_INPUTTOOLONG (417) by the codec. What is
not here: what the commands mean (ircin.py), the server's replies (ircout.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

TAGS_MAX: Final = 4094  # client tag data, without the `@` and the space after it
BODY_MAX: Final = 512  # the rest of a line, CRLF included (RFC 1459's limit)
LINE_MAX: Final = 1 + TAGS_MAX + 1 + BODY_MAX  # the longest line a client may send

_ESCAPES: Final = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPING: Final = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


class TooLong(ValueError):
    """The tags or the rest of the line are longer than IRC allows."""


@dataclass(slots=True)  # not frozen: a frozen dataclass is made by object.__setattr__, 3x slower per PRIVMSG
class Message:
    """One client line, read. `tags` are unescaped; `params` include the trailing one."""

    command: str
    params: list[bytes] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def param(self, index: int) -> bytes:
        return self.params[index] if index < len(self.params) else b""

    def text(self, index: int) -> str:
        """Parameter `index` as text (not UTF-8: with replacement characters)."""
        return self.param(index).decode("utf-8", "replace")

    def client_tags(self) -> bytes:
        """The client-only tags (`+key`), escaped again, to go on the relayed line."""
        if not self.tags:
            return b""
        return b";".join(
            (key if value == "" else f"{key}={escape_value(value)}").encode()
            for key, value in self.tags.items()
            if key.startswith("+")
        )


def parse(line: bytes) -> Message | None:
    """A client's line (without its newline; a trailing CR is removed), or None
    for one with no command (an empty line: ignored, as IRC servers do).

    Raises:
        TooLong: over `TAGS_MAX` or `BODY_MAX`.
        UnicodeDecodeError: tags that are not UTF-8.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    tags: dict[str, str] = {}
    if line.startswith(b"@"):
        raw, _, line = line[1:].partition(b" ")
        if len(raw) > TAGS_MAX:
            raise TooLong("tags")
        tags = _read_tags(raw.decode("utf-8"))
    line = line.lstrip(b" ")
    if len(line) + 2 > BODY_MAX:
        raise TooLong("line")
    if line.startswith(b":"):
        line = line.partition(b" ")[2].lstrip(b" ")
    head, colon, trailing = line.partition(b" :")
    if head.startswith(b":"):  # no middle parameters: "CMD :trailing" is cut at the colon above
        head, colon, trailing = b"", b":", head[1:]
    words = head.split()
    if not words:
        return None
    params = words[1:]
    if colon:
        params.append(trailing)
    return Message(words[0].decode("ascii", "replace").upper(), params, tags)


def _read_tags(raw: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        if item:
            key, _, value = item.partition("=")
            tags[key] = unescape_value(value)
    return tags


def unescape_value(value: str) -> str:
    if "\\" not in value:
        return value
    out = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")  # a lone backslash at the end is dropped
            out.append(_ESCAPES.get(following, following))
        else:
            out.append(char)
    return "".join(out)


def escape_value(value: str) -> str:
    return value.translate(_ESCAPING)


def line(source: str | None, command: str, *params: str, tags: str = "") -> bytes:
    """A server line with CRLF: `params` are joined by spaces, the last one
    as a trailing parameter (after `:`) when it must be (empty, with a space,
    or starting with `:`) or when there are several."""
    parts = [f"@{tags}"] if tags else []
    if source:
        parts.append(f":{source}")
    parts.append(command)
    if params:
        *middle, last = params
        parts.extend(middle)
        parts.append(f":{last}" if not last or " " in last or last.startswith(":") or middle else last)
    return (" ".join(parts) + "\r\n").encode("utf-8", "replace")
