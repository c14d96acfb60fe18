"""Names: the rules for nicknames and room names, and when two spellings are one name.

docs/protocol.md ("Line format") is the contract: nicknames are 1 to
`limits.max_nick_length` characters of `[A-Za-z0-9_-]`, room names `#` and 1 to
32 of them, both compared without regard to case. The chat core answers a name
that breaks them with an `ERR` (core/protocol.py), the configuration with a
`ConfigError` (config.py); both ask here, and this module imports neither.
"""

from __future__ import annotations

import re
from typing import Final

ROOM_NAME_LENGTH: Final = 32
NICK_RULE: Final = "1-{max_length} characters of A-Z, a-z, 0-9, _ and -"
ROOM_RULE: Final = f"# and 1-{ROOM_NAME_LENGTH} characters of A-Z, a-z, 0-9, _ and -"

_NICK: Final = re.compile(r"[A-Za-z0-9_-]+")
_ROOM: Final = re.compile(rf"#[A-Za-z0-9_-]{{1,{ROOM_NAME_LENGTH}}}")


def is_nick(text: str, max_length: int) -> bool:
    return 1 <= len(text) <= max_length and _NICK.fullmatch(text) is not None


def is_room_name(text: str) -> bool:
    return _ROOM.fullmatch(text) is not None


def is_room(target: str) -> bool:
    """Whether a command's target names a room (else a nickname)."""
    return target.startswith("#")


def nick_key(nick: str) -> str:
    """The case-insensitive identity of a nickname: `nick` itself when it has
    no capitals, so that the registry's key for each connected name is not a
    second string of it (55 bytes per client)."""
    key = nick.lower()
    return nick if key == nick else key


def room_key(name: str) -> str:
    """The case-insensitive identity of a room."""
    return name.lower()
