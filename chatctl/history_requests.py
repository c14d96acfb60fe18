"""The `/history` requests in flight on one connection, and which one a reply
answers. No sockets, no terminal; chatctl/timeline.py asks.

Replies to `/history` come in the order they were asked (per connection),
each ending with `HISTORY <room> <count> <more|end>`, so the requests in
flight are a queue: a `history`-tagged line of a room that is not the
backlog of a join in progress belongs to the oldest request for that room.
`/history` lines the user types are queued too (when they are well-formed
and for a room we are in) so that their replies are shown as they are.

A failed request is answered `ERR no_history` instead, which does not say
which request it answers: at once when the server refuses it (too many
questions waiting), or in its turn when the store could not be read. The
client's own requests are sent one at a time, each acknowledged by a `PONG`
(chatctl/reconnect.py `Outbox`); an `ERR no_history` that arrives while one
waits for its acknowledgement (`in_flight`) refused that one, any other
failed the oldest acknowledged request.

What is not here: what a reply's events become (shown, held for a catch-up,
pages for the scroll-back view: timeline.py), and when the client's own
commands are sent (reconnect.py).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Final, Literal

from chatctl.state import is_room, room_key

_LIMIT_MAX: Final = 500


@dataclass
class Request:
    """One `/history` asked, and what its reply brought so far."""

    key: str  # the room's key
    kind: Literal["catch_up", "older", "user"]
    command: str
    acked: bool = False  # the server has taken the command (its PONG came back)
    max_id: int = 0
    lines: list[str] = field(default_factory=list)


class Requests:
    """The requests in flight, oldest first."""

    def __init__(self) -> None:
        self._queue: collections.deque[Request] = collections.deque()

    def add(self, request: Request) -> None:
        self._queue.append(request)

    def acked(self, commands: list[str]) -> None:
        """The server has taken `commands` (ours): a failure now comes in its turn."""
        for command in commands:
            request = next((r for r in self._queue if not r.acked and r.command == command), None)
            if request is not None:
                request.acked = True

    def oldest(self, key: str) -> Request | None:
        """The request the next reply about room `key` answers, if any."""
        return next((r for r in self._queue if r.key == key), None)

    def failed(self, in_flight: str | None) -> Request | None:
        """The request an `ERR no_history` answers (see the module doc)."""
        if in_flight is not None:
            refused = next((r for r in self._queue if not r.acked and r.command == in_flight), None)
            if refused is not None:
                return refused
        return next((r for r in self._queue if r.acked), None)

    def remove(self, request: Request) -> None:
        self._queue.remove(request)

    def clear(self) -> None:
        self._queue.clear()


def asked_room(text: str) -> str | None:
    """The room key of a well-formed `/history` the user typed for a room
    (None for any other line)."""
    words = text.split()
    if len(words) < 2 or words[0] != "/history" or not is_room(words[1]):
        return None
    return room_key(words[1]) if _well_formed(words[2:]) else None


def _well_formed(words: list[str]) -> bool:
    """`[before <id> | after <id>] [<limit>]`, as the server checks it."""
    if words[:1] in (["before"], ["after"]):
        if len(words) < 2 or not (words[1].isascii() and words[1].isdigit()) or int(words[1]) >= 1 << 62:
            return False  # `after 0` is fine: the earliest events
        words = words[2:]
    if words:
        if not (words[0].isascii() and words[0].isdigit()) or not 1 <= int(words[0]) <= _LIMIT_MAX:
            return False
        words = words[1:]
    return not words
