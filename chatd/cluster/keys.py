"""Keys: the names of the cluster's Redis keys under one prefix.

The scripts (lua/lib.lua) build the same names from the same prefix; this
module is the Python side's copy, for the reader, operators and tests. The
layout (docs/architecture.md, "Cluster"):

    ids                  string  the last id handed out
    log                  stream  entries 0-<id> (chatd/cluster/entry.py)
    epoch                string  fencing-token counter, INCR at every registration
    node:<node>          string  the node's epoch, with the lease as its expiry
    nodes                hash    node -> epoch of its registered incarnation
    nick:<nick key>      hash    o: owner node:epoch, c: connection, n: spelling
    owned:<node>:<epoch> set     nickname keys an incarnation holds
    rooms                hash    room key -> name as created (the rooms that exist)
    permanent            set     room keys of rooms.permanent
    members:<room key>   hash    nickname key -> node
    in:<nick key>        set     room keys a nickname is in
    topics               hash    room key -> "<nick> <text>"
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str

    @property
    def ids(self) -> str:
        return self.prefix + "ids"

    @property
    def log(self) -> str:
        return self.prefix + "log"

    @property
    def epoch(self) -> str:
        return self.prefix + "epoch"

    def node(self, node: str) -> str:
        return f"{self.prefix}node:{node}"

    @property
    def nodes(self) -> str:
        return self.prefix + "nodes"

    def nick(self, key: str) -> str:
        return f"{self.prefix}nick:{key}"

    def owned(self, node: str, epoch: int) -> str:
        return f"{self.prefix}owned:{node}:{epoch}"

    @property
    def rooms(self) -> str:
        return self.prefix + "rooms"

    @property
    def permanent(self) -> str:
        return self.prefix + "permanent"

    def members(self, room: str) -> str:
        return f"{self.prefix}members:{room}"

    def rooms_of(self, nick: str) -> str:
        return f"{self.prefix}in:{nick}"

    @property
    def topics(self) -> str:
        return self.prefix + "topics"
