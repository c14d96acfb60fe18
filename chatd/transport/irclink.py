"""What the IRC listener's command handlers share: the codec as they see it
(`Link`), the handler's type, and the small checks every handler makes
(text as UTF-8, enough parameters, IRC formatting removed).

The handlers live by concern: ircin.py (registration, messages, rooms, and
the table of them all), ircqueries.py (what the listener answers itself),
irchistory.py (CHATHISTORY), ircsasl.py (AUTHENTICATE). No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, Protocol

from chatd.outlet import Command
from chatd.transport.ircmessage import Message
from chatd.transport.ircout import Directory
from chatd.transport.ircreg import Settings
from chatd.transport.ircstate import Asked, IrcState, Reply

# character but tab: chatd's text has none (docs/protocol.md, "Line format").
_FORMATTING: Final = re.compile(
    "\x03(?:[0-9]{1,2}(?:,[0-9]{1,2})?)?|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?|[\x00-\x08\x0a-\x1f\x7f-\x9f]"
)


class Link(Protocol):
    """What the handlers use of the codec (irc.py)."""

    state: IrcState
    settings: Settings
    directory: Directory

    def ask(self, reply: Reply, command: Command | bytes, asked: Asked) -> None:
        """Hand `command` to the session once this line is read; its answer is `asked`'s."""

    def charge(self) -> bool:
        """Take a line's worth of flood control for an answer given here; False: refused."""


Handler = Callable[[Link, Message, Reply], None]


def clean_text(text: str) -> str:
    """IRC text as chatd's: formatting codes and control characters removed."""
    if text.isprintable():  # no control character, so nothing to remove: most lines
        return text
    return _FORMATTING.sub("", text)


def utf8(link: Link, reply: Reply, value: bytes) -> str | None:
    """`value` as text, or None after a FAIL INVALID_UTF8 (UTF8ONLY)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        if not reply.quiet:
            reply.out.append(link.state.fail(reply.command, "INVALID_UTF8", "Messages must be UTF-8."))
        return None


def need(link: Link, message: Message, reply: Reply, count: int) -> bool:
    """At least `count` parameters, else ERR_NEEDMOREPARAMS."""
    if len(message.params) >= count:
        return True
    reply.out.append(link.state.numeric("461", message.command, "Not enough parameters"))
    return False
