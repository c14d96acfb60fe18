"""Bus: the port through which sessions change what other clients see — who
has which nickname, who is in which room, what is said, and the operator's
kick and broadcast — and the contract every implementation keeps.

Two implement it:

* `LocalBus` (core/chat.py, the default): this process is the whole network.
  Each operation is decided and applied at once, on the caller's thread,
  with ids from `History`: chatd as it always was, with no `cluster:` section.
* `NetworkBus` (core/network.py): this process is one node of a network.
  Each operation goes to the shared log through the `Engine` port
  (chatd/cluster/ implements it on Redis) and takes effect when its entry
  comes back from the log, on every node, in the log's order.

The contract. An operation the caller goes on from (`register`, `join`,
`part`, `topic`, `rename`) takes two continuations: `done` once it has taken
effect, `refused` with the `ProtocolError` when it is refused after the call
has returned. A refusal known at once is raised, as it always was.
`LocalBus` calls `done` before it returns. `NetworkBus` calls either later,
on the client's own thread (`Outlet.call_soon`), and holds the client's
further lines meanwhile (`Party.hold`, then `Party.release` after the
continuation), so that a line sent after `/join #x` still goes to `#x`.
`say`, `direct` and `leave` take no continuation: what they do is seen in
the lines they send (the sender's own echo included).

What is not here: what each operation does (core/chat.py), the network's
side (core/network.py, core/replica.py), the engine (chatd/cluster/).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from chatd.core.nicks import Client
from chatd.core.rooms import Room
from chatd.errors import ProtocolError
from chatd.outlet import Outlet

Done = Callable[[], None]
Refused = Callable[[ProtocolError], None]


class Party(Client, Protocol):
    """A client as the bus sees it (chatd.core.session.Session)."""

    outlet: Outlet
    serial: int  # the bus's number for this connection (NetworkBus); 0 until it gives one

    @property
    def closed(self) -> bool:
        """Its connection has ended."""

    def hold(self) -> None:
        """Hold further lines until `release` (an operation is on its way)."""

    def release(self) -> None:
        """The operation of the last `hold` is over: the lines held, in order
        (once every hold is released)."""


class Bus(Protocol):
    def register(self, client: Party, nick: str, greeting: bytes, done: Done, refused: Refused) -> None:
        """Give `client` the nickname `nick`; `greeting` (its `WELCOME`) is its
        first line after. Raises ProtocolError `nick_taken` when known at once."""

    def join(self, client: Party, name: str, joined: int, done: Callable[[Room], None], refused: Refused) -> None:
        """Put `client` (in `joined` rooms, not in this one) in room `name`;
        `done` gets the room. Raises `room_invalid`, `no_such_room`, `too_many_rooms`."""

    def part(self, client: Party, room: Room, text: str, done: Done, refused: Refused) -> None:
        """Take `client` out of `room`, saying `text`."""

    def topic(self, client: Party, room: Room, text: str, done: Done, refused: Refused) -> None:
        """Set `room`'s topic (an event)."""

    def rename(
        self, client: Party, rooms: Sequence[Room], new: str, done: Callable[[str], None], refused: Refused
    ) -> None:
        """Rename `client` (in `rooms`) to `new`; `done` gets the old nickname.
        Raises `nick_taken` when known at once."""

    def say(self, client: Party, room: Room, kind: str, texts: list[bytes], tags: bytes = b"") -> None:
        """Events of `kind` (`msg`, `action`; `tagmsg` from IRC) in `room`, one
        per text, in one block, each with `tags` (`Command.tags`)."""

    def direct(self, sender: Party, recipient: Client, text: bytes, tags: bytes = b"", kind: str = "dm") -> None:
        """A DM (`kind` "dm", or IRC's "tagmsg") to `recipient`, echoed to `sender`."""

    def leave(self, client: Party, rooms: Sequence[Room], reason: str | None) -> None:
        """`client` is gone (its connection ends): out of `rooms`, its nickname
        freed; with a `reason`, `LEAVE` to those who shared a room with it.
        Called for a client that never registered too (`reason` None), so that
        a nickname still on its way is let go."""

    def kick(self, nick: str, text: str) -> bool:
        """An operator's kick of `nick`, wherever it is connected (`BYE kicked
        <text>`); False if nobody has that nickname. May block: the control
        thread calls it."""

    def broadcast(self, text: str) -> int:
        """`INFO <text>` to every registered client of the network; how many
        there are. May block: the control thread calls it."""


class Later:
    """A continuation that may run at once (`LocalBus`) or later (on a
    network): `waiting()`, asked right after the call, says which, and a
    continuation that comes later then goes on with `then`."""

    __slots__ = ("_state", "_then")

    def __init__(self, then: Callable[[], None]) -> None:
        self._then = then
        self._state = "calling"

    def done(self) -> None:
        if self._state == "calling":
            self._state = "done"
        else:
            self._then()

    def refused(self, fail: Callable[[ProtocolError], None]) -> Callable[[ProtocolError], None]:
        def refused(error: ProtocolError) -> None:
            fail(error)
            self.done()

        return refused

    def waiting(self) -> bool:
        if self._state == "calling":
            self._state = "waiting"
            return True
        return False
