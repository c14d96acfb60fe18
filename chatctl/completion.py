"""Tab completion for `chatctl connect`: what a word may become, without a terminal.

`complete()` looks at the input line up to the cursor and at a `ClientState`
and returns the word being completed and what it may be replaced with:
nicknames (the current room's members first), room names (after `/join`,
`/part`, `/msg`, `/topic`, `/who`, `/history`, the room commands such as
`/op` and `/kick`, or for a word that starts with `#`) and
command names. chatctl/interactive.py wraps it in a prompt_toolkit
`Completer`; nothing here imports prompt_toolkit.
"""

from __future__ import annotations

from typing import Final

from chatctl.state import ClientState, is_room

COMMANDS: Final = (
    "/ban",
    "/bans",
    "/deop",
    "/devoice",
    "/help",
    "/history",
    "/invite",
    "/join",
    "/kick",
    "/me",
    "/msg",
    "/nick",
    "/op",
    "/part",
    "/ping",
    "/quit",
    "/room",
    "/rooms",
    "/topic",
    "/unban",
    "/voice",
    "/who",
)
# Commands whose first argument is a room (docs/protocol.md, "After registration").
ROOM_COMMANDS: Final = frozenset(
    {"/join", "/part", "/msg", "/topic", "/who", "/history"}
    | {"/room", "/op", "/deop", "/voice", "/devoice", "/kick", "/ban", "/unban", "/bans", "/invite"}
)


def complete(state: ClientState, before_cursor: str) -> tuple[str, list[str]]:
    """The word before the cursor and its completions, best first.

    Each completion replaces the whole word and ends with a space, or with
    `: ` for a nickname that starts the line (the way people address each
    other in chat). Matching ignores case; after a room command the `#` may
    be left out (`/join ru` completes to `/join #rust`).
    """
    word = before_cursor.rpartition(" ")[2]
    head = before_cursor[: len(before_cursor) - len(word)]
    words_before = head.split()
    if not words_before and word.startswith("/"):
        return word, [f"{command} " for command in COMMANDS if command.startswith(word.lower())]
    first_argument = len(words_before) == 1 and words_before[0] in ROOM_COMMANDS
    if is_room(word) or first_argument:
        rooms = [f"{name} " for name in state.room_names() if _room_matches(name, word)]
        if words_before[:1] not in (["/msg"], ["/history"]) or is_room(word):
            return word, rooms
        return word, rooms + [f"{nick} " for nick in _nicks(state, word)]  # a DM, or DMs' history
    suffix = ": " if not head.strip() else " "
    return word, [nick + suffix for nick in _nicks(state, word)]


def _room_matches(name: str, word: str) -> bool:
    typed = word.lower()
    return name.lower().startswith(typed) or name[1:].lower().startswith(typed)


def _nicks(state: ClientState, word: str) -> list[str]:
    return [nick for nick in state.nicks() if nick.lower().startswith(word.lower())]
