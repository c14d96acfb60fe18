"""Entry: one event of the shared log, and how the stream stores it.

An entry's stream id is `0-<id>`, where `<id>` is chatd's protocol id, so log
order is id order. Every entry has the same eight fields, in this order,
which lets Redis store their names once per stream node (its "same fields"
flag): about 70-80 bytes per entry beyond its text (docs/architecture.md,
"Cluster"):

    k   kind (below)
    r   target key: a room key; for `dm` the recipient's nickname key
    R   target as shown: the room as created; for `dm` the recipient's spelling
    n   nickname (as spelled) the entry is about
    t   text (UTF-8 bytes; for `leave` the reason code and text of LEAVE,
        for `rename` the new nickname, for `raise` the id before the raise)
    ms  time, milliseconds since the Unix epoch, from Redis's clock
    o   origin incarnation `node:epoch` (for `leave` from a reap and for
        `kick`: the incarnation of the connection that left)
    c   that incarnation's connection serial (0 when none)

Kinds: msg action topic dm info (events), nick rename join part leave
release kick (membership and nicknames), raise (ids raised; nothing to
apply). Fields a kind does not use are empty.
"""

from __future__ import annotations

from typing import Final, NamedTuple

FIELDS: Final = (b"k", b"r", b"R", b"n", b"t", b"ms", b"o", b"c")
KINDS: Final = frozenset(
    {"msg", "action", "topic", "dm", "info", "nick", "rename", "join", "part", "leave", "release", "kick", "raise"}
)
_NAMES: Final = list(FIELDS)


class EntryError(Exception):
    """A stream entry this chatd cannot read (written by a newer chatd, or by hand)."""


class Entry(NamedTuple):
    """One entry, as the reader hands it on. A NamedTuple: the reader builds
    one per event, and a frozen dataclass costs twice as much to build."""

    id: int
    kind: str
    target: str  # `r`
    shown: str  # `R`
    nick: str
    text: bytes
    time_ms: int
    origin: str  # node:epoch
    conn: int

    @property
    def node(self) -> str:
        return self.origin.rpartition(":")[0]


def decode(stream_id: bytes, fields: list[bytes]) -> Entry:
    """The entry `XREAD`/`XRANGE` returned as (id, [name, value, ...]).

    Raises:
        EntryError: not an entry of this layout.
    """
    if fields[::2] != _NAMES or stream_id[:2] != b"0-":
        raise EntryError(f"log entry {stream_id!r} has fields {fields[::2]!r}, not {_NAMES!r}")
    try:
        return Entry(
            int(stream_id[2:]),
            fields[1].decode(),
            fields[3].decode(),
            fields[5].decode(),
            fields[7].decode(),
            fields[9],
            int(fields[11]),
            fields[13].decode(),
            int(fields[15]),
        )
    except ValueError as exc:  # UnicodeDecodeError is one
        raise EntryError(f"log entry {stream_id!r}: {exc}") from None
