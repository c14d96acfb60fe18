"""The status line of `chatctl connect`: the current room (with your role's
mark and its flags, in a registered room), your other rooms with their
unread counts, the current room's topic. A pure function of the
`ClientState`, as chatctl/render.py's are of a line.
"""

from __future__ import annotations

from chatctl.render import Fragments, plain, sanitize
from chatctl.roles import mark
from chatctl.state import ClientState


def render_status(state: ClientState, width: int) -> Fragments:
    """The status line: `[#current] #other(3) #quiet | the current room's topic`.

    Rooms are in the order you joined them; a number after a room counts the
    messages there since it was last the current room. In a registered room
    the current one shows your mark and its flags: `[@#rust private moderated]`.
    The topic comes last, cut to fit `width` (left out when too little room is
    left for it).
    """
    if state.version == 1:
        return [("class:status", " a protocol v1 server: one conversation, no rooms")]
    if not state.registered:
        return [("class:status", " not registered yet")]
    current = state.current_room
    fragments: Fragments = []
    if current is None:
        fragments.append(("class:status-current", "[no room]"))
    for room in state.rooms.values():
        if fragments:
            fragments.append(("class:status", " "))
        if room is current:
            own = mark(state.role(room.name, state.nick))
            fragments.append(("class:status-current", f"[{own}{sanitize(room.name)}{_flags(room.flags)}]"))
        elif room.unread:
            fragments.append(("class:status-unread", f"{sanitize(room.name)}({room.unread})"))
        else:
            fragments.append(("class:status", sanitize(room.name)))
    fragments.insert(0, ("class:status", " "))
    topic = sanitize(current.topic) if current is not None else ""
    room_left = width - len(plain(fragments)) - len(" | ")
    if topic and room_left >= 8:
        if len(topic) > room_left:
            topic = topic[: room_left - 1] + "…"
        fragments += [("class:status", " | "), ("class:status-topic", topic)]
    return fragments


def _flags(flags: list[str]) -> str:
    """The flags that say how the room behaves for you (`topic_ops`, the default, left out)."""
    shown = [flag for flag in flags if flag != "topic_ops"]
    return " " + " ".join(shown) if shown else ""
