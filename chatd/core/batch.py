"""RoomBatch: the block of room events one read of a session makes.

What a client says in a room (`MSG`, `ACTION`, IRC's `TAGMSG`) is queued
here; the events of one read to one room, of one kind and with the same
tags, leave through the bus (core/bus.py) as one block, so that a client
pasting many lines costs the room's members one delivery, not one per line.
The one check of roles on the message path (a moderated room) is made here.

What is not here: what a command does (core/commands.py), when the block
leaves (the session flushes it after each read and before any command that
does not speak: core/session.py), the fan-out itself (core/chat.py,
core/rooms.py).
"""

from __future__ import annotations

from typing import Protocol

from chatd.core import protocol
from chatd.core.bus import Party
from chatd.core.registry import VOICE
from chatd.core.rooms import Room
from chatd.errors import ProtocolError


class Speaker(Party, Protocol):
    """What a batch uses of its session (chatd.core.session.Session)."""

    account: str | None  # its roles in a registered room (core/registry.py)
    messages_in: int  # chat messages it sent, for the metrics


class Say(Protocol):
    def __call__(self, client: Party, room: Room, kind: str, texts: list[bytes], tags: bytes = b"") -> None: ...


class RoomBatch:
    """The texts said in one room (one kind, one set of tags) since the last flush."""

    # One per client, like the session: no instance dict.
    __slots__ = ("_kind", "_room", "_say", "_session", "_tags", "_texts")

    def __init__(self, session: Speaker, say: Say) -> None:
        self._session = session
        self._say = say  # the bus's (core/bus.py)
        self._texts: list[bytes] = []  # for `_room`, sent as one block
        self._room: Room | None = None
        self._kind = "msg"
        self._tags = b""

    def say(self, kind: str, room: Room, text: bytes, tags: bytes = b"") -> None:
        """Queue a room event; those of one read to one room leave as one block.

        Raises:
            ProtocolError: `moderated`: the room is, and the caller has no voice.
        """
        session = self._session
        # NOTE: the one check of roles on the message path: per message sent, one
        # attribute for a room that is not registered; never per recipient.
        registration = room.registration
        if registration is not None and registration.moderated and registration.rank(session.account) < VOICE:
            raise ProtocolError(protocol.MODERATED, f"{room.name} is moderated: only voiced members speak there.")
        if room is not self._room or kind != self._kind or tags != self._tags:
            self.flush()
            self._room, self._kind, self._tags = room, kind, tags
        session.messages_in += 1
        self._texts.append(text)

    def flush(self) -> None:
        """What is queued, to the bus as one block."""
        if self._texts and self._room is not None:
            texts, self._texts = self._texts, []
            self._say(self._session, self._room, self._kind, texts, self._tags)
