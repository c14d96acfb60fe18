"""The lines that show a client a room: its topic, the roles and flags of a
registered room, the list of rooms, and a block of its history.

Pure functions of the room (and its registration) that build what is sent;
the caller delivers it. What is not here: changing a room or its members
(core/chat.py, core/rooms.py), the roles and flags themselves
(core/registry.py), the events' store and lookups (core/history.py).
"""

from __future__ import annotations

from collections.abc import Container, Iterable

from chatd.core import protocol
from chatd.core.history import Clock, Event, event_line
from chatd.core.registry import FLAGS, Registration, Registry
from chatd.core.rooms import Room


def topic_line(room: Room) -> bytes:
    return protocol.format_line("TOPIC", room.name, room.topic_by, room.topic)


def roles_line(room: Room, registration: Registration) -> bytes:
    """`ROLES <room> <nick>:<role> ...`: the members holding a role above member."""
    held = [f"{m.nick}:{registration.role(m.account)}" for m in room.members if registration.rank(m.account)]
    return protocol.format_line("ROLES", room.name, *sorted(held, key=str.lower))


def flags_line(name: str, registration: Registration | None) -> bytes:
    """`FLAGS <room> <flag> ...`: the flags that are on (none for a room not registered)."""
    flags = registration.flags if registration is not None else frozenset()
    return protocol.format_line("FLAGS", name, *(flag for flag in FLAGS if flag in flags))


def room_list(rooms: Iterable[Room], registry: Registry | None, member_of: Container[str] = ()) -> list[bytes]:
    """`/rooms`: a `ROOM` line per room, then `ROOMS <count>`. A private
    room is listed only to its members (the keys of `member_of`)."""
    shown = [room for room in rooms if room.key in member_of or not _private(registry, room)]
    lines = [protocol.format_line("ROOM", r.name, str(len(r)), r.topic) for r in shown]
    return [*lines, protocol.format_line("ROOMS", str(len(shown)))]


def _private(registry: Registry | None, room: Room) -> bool:
    registration = registry.find(room.key) if registry is not None else None
    return registration is not None and registration.has("private")


def history_block(
    target: str, events: list[Event], more: bool, newer: bool, clock: Clock, budget: int
) -> tuple[bytes, int]:
    """Events tagged `history`, then `HISTORY <target> <count> <more>`, in at
    most `budget` bytes of events (at least one), and how many lines. `newer`:
    the events follow an id the client gave, so the first ones are kept, else
    the last."""
    lines = [event_line(event, clock, history=True) for event in events]
    kept, size = 0, 0
    for line in lines if newer else reversed(lines):
        size += len(line)
        if size > budget and kept:
            more = True
            break
        kept += 1
    lines = lines[:kept] if newer else lines[len(lines) - kept :]
    lines.append(protocol.format_line("HISTORY", target, str(kept), "more" if more else "end"))
    return b"".join(lines), len(lines)
