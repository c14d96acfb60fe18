"""State: the reply of the `snapshot` script as the core's `NetworkState`.

A node that starts loads the network as it is at one id (core/replica.py):
every nickname with its owner, every room with its topic and members. The
script (lua/snapshot.lua) reads them in one atomic step; this module only
reads its reply.
"""

from __future__ import annotations

from chatd.cluster.errors import ClusterError
from chatd.core.replica import Holder, NetworkState, RoomState


def read_state(reply: list[object]) -> NetworkState:
    """[head, nicks, rooms] (lua/snapshot.lua) as a `NetworkState`.

    Raises:
        ClusterError: not a reply of that shape.
    """
    try:
        head, nicks, rooms = reply
        assert isinstance(head, int | bytes) and isinstance(nicks, list) and isinstance(rooms, list)
        holders = [
            Holder(_text(nicks[i]), _text(nicks[i + 1]), int(_text(nicks[i + 2]))) for i in range(0, len(nicks), 3)
        ]
        states = []
        for room in rooms:
            assert isinstance(room, list)
            by, _, topic = _text(room[1]).partition(" ")
            members = [_text(key) for key in room[2:]]
            states.append(RoomState(_text(room[0]), topic, by or "*", members))
    except (AssertionError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ClusterError(f"unexpected reply from the snapshot script: {exc or reply!r}") from None
    return NetworkState(int(head), holders, states)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, int):
        return str(value)
    raise ValueError(f"not a string: {value!r}")
