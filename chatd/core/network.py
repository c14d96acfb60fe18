"""NetworkBus: the `Bus` (core/bus.py) of a node of a network of chatd
processes (issue 24), and the `Engine` port it sends operations through.

Every operation a session asks for goes to the shared log through the
engine (chatd/cluster/node.py implements it on Redis), which decides it
atomically (a nickname taken, a room full) and appends its entry; nothing
takes effect here until the entry comes back from the log and the replica
applies it (core/replica.py), as on every other node, in the log's order.
So the sender's own echo is an acknowledgement: its line is in the log.

This node's clients are numbered (`Party.serial`, the entry's connection):
an entry from this incarnation (`origin`) names the client it answers, and
completes the operation the client waits for (`applied`). A refusal comes
back from the engine instead (`Refusal`), on another thread; both reach the
client on its own thread (`Outlet.call_soon`). Each client has at most one
such operation on its way: it holds its lines until it is over.

What is not here: applying entries (core/replica.py), Redis (chatd/cluster/).
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from chatd import names
from chatd.core import protocol
from chatd.core.bus import Done, Party, Refused
from chatd.core.chat import Chat
from chatd.core.nicks import Client
from chatd.core.replica import Record, Replica
from chatd.core.rooms import Room
from chatd.errors import ProtocolError

log = structlog.get_logger(__name__)

Refusal = Callable[[str, str], None]  # (code, detail), on the engine's thread
# Engine codes that are no answer to the client: the node is fenced, the
# connection no longer holds its nickname (kicked, reaped), or the call was
# lost (sent, and it did not run: chatd/cluster/errors.py's Interrupted).
FENCED: Final = "fenced"
NOT_OWNER: Final = "not_owner"
ALREADY_IN: Final = "already_in"
LOST: Final = "lost"
INTERRUPTED: Final = "interrupted"  # the detail of `lost` for a call sent that did not run (else: never sent)
BUSY: Final = "busy"  # the engine's queue is full: nothing was queued
_ENDS: Final = frozenset({"leave", "release", "kick"})  # entries after which a connection holds nothing
_NOT_CARRIED: Final = "Tags are not carried between the nodes of this network."


class Engine(Protocol):
    """The shared log and the decisions taken on it atomically. Each call
    only queues (it never blocks, from any thread); a refusal comes to its
    `refused` later, on another thread, or at once with `busy`."""

    def claim(self, conn: int, nick: str, refused: Refusal) -> None: ...
    def rename(self, conn: int, old: str, new: str, refused: Refusal) -> None: ...
    def leave(self, conn: int, nick: str, reason: str, refused: Refusal) -> None:
        """`reason` "": a release, with no announcement."""

    def join(
        self, conn: int, nick: str, room: str, allow_create: bool, max_rooms: int, per_client: int, refused: Refusal
    ) -> None: ...
    def part(self, conn: int, nick: str, room: str, text: str, refused: Refusal) -> None: ...
    def topic(self, conn: int, nick: str, room: str, text: str, refused: Refusal) -> None: ...
    def say(self, conn: int, nick: str, kind: str, room: str, texts: list[bytes], refused: Refusal) -> None: ...
    def direct(self, conn: int, nick: str, recipient: str, text: bytes, refused: Refusal) -> None: ...
    def kick(self, nick: str, text: str) -> bool:
        """Blocks until decided (the control thread); False: no such nickname."""

    def info(self, text: bytes) -> None:
        """An operator's broadcast; blocks until it is in the log."""


@dataclass(eq=False)
class _Op:
    kind: str  # the kind of the entry that completes it: nick, join, part, topic, rename
    done: Callable[[Any], None]
    refused: Refused
    greeting: bytes = b""


@dataclass(eq=False)
class _Local:
    """One of this node's clients, from its first operation until its leave is applied."""

    party: Party
    nick: str  # as last asked for (the party's own is set when the log says so)
    op: _Op | None = None
    leaving: str | None = None  # the reason of a leave asked for ("": a release)
    left_as: str = ""  # the nickname that leave was sent with


class NetworkBus:
    def __init__(self, chat: Chat, engine: Engine) -> None:
        self._chat = chat
        self._engine = engine
        self._lock = threading.Lock()
        self._locals: dict[int, _Local] = {}
        self._serials = itertools.count(1)
        self.origin = ""  # this incarnation, node:epoch, once registered
        self.replica = Replica(chat, self)

    def __len__(self) -> int:
        """This node's clients, registered or on their way."""
        return len(self._locals)

    # -- the Bus ---------------------------------------------------------------------

    def register(self, client: Party, nick: str, greeting: bytes, done: Done, refused: Refused) -> None:
        if not client.serial:
            client.serial = next(self._serials)
        op = _Op("nick", lambda _: done(), refused, greeting)
        with self._lock:
            local = self._locals.setdefault(client.serial, _Local(client, nick))
            local.nick = nick
        self._begin(client, op)
        self._engine.claim(client.serial, nick, self._refusal(client, op, nick))

    def join(self, client: Party, name: str, joined: int, done: Callable[[Room], None], refused: Refused) -> None:
        protocol.check_room(name)
        config = self._chat.config
        per_client = config.limits.max_rooms_per_client
        if joined >= per_client:
            raise ProtocolError(
                protocol.TOO_MANY_ROOMS, f"You are in {joined} rooms, the most allowed; /part one first."
            )
        op = _Op("join", done, refused)
        self._begin(client, op)
        allow, most = config.rooms.allow_create, config.limits.max_rooms
        self._engine.join(client.serial, client.nick, name, allow, most, per_client, self._refusal(client, op, name))

    def part(self, client: Party, room: Room, text: str, done: Done, refused: Refused) -> None:
        op = _Op("part", lambda _: done(), refused)
        self._begin(client, op)
        self._engine.part(client.serial, client.nick, room.name, text, self._refusal(client, op, room.name))

    def topic(self, client: Party, room: Room, text: str, done: Done, refused: Refused) -> None:
        op = _Op("topic", lambda _: done(), refused)
        self._begin(client, op)
        self._engine.topic(client.serial, client.nick, room.name, text, self._refusal(client, op, room.name))

    def rename(
        self, client: Party, rooms: Sequence[Room], new: str, done: Callable[[str], None], refused: Refused
    ) -> None:
        holder = self._chat.nicks.find(new)
        if holder is not None and holder is not client:
            raise ProtocolError(protocol.NICK_TAKEN, f"The nickname {new} is taken; try another.")
        op = _Op("rename", done, refused)
        self._begin(client, op)
        self._engine.rename(client.serial, client.nick, new, self._refusal(client, op, new))

    # NOTE: `tags` and the kind "tagmsg" come only from the IRC listener, which
    # a node does not run (config.py refuses `irc.listen` beside `cluster:`);
    # the log's entries have no field for them (chatd/cluster/entry.py).

    def say(self, client: Party, room: Room, kind: str, texts: list[bytes], tags: bytes = b"") -> None:
        if kind == "tagmsg" or tags:
            client.outlet.deliver(protocol.format_error(ProtocolError(protocol.NOT_ALLOWED, _NOT_CARRIED)))
            return
        self._engine.say(client.serial, client.nick, kind, room.name, texts, self._answer(client, room.name))

    def direct(self, sender: Party, recipient: Client, text: bytes, tags: bytes = b"", kind: str = "dm") -> None:
        if kind != "dm" or tags:
            raise ProtocolError(protocol.NOT_ALLOWED, _NOT_CARRIED)
        self._engine.direct(sender.serial, sender.nick, recipient.nick, text, self._answer(sender, recipient.nick))

    def leave(self, client: Party, rooms: Sequence[Room], reason: str | None) -> None:
        with self._lock:
            local = self._locals.get(client.serial)
            if local is None:
                return
            local.leaving = reason or ""
            local.left_as = nick = client.nick or local.nick
        self._send_leave(client.serial, nick, reason or "")

    def kick(self, nick: str, text: str) -> bool:
        return self._engine.kick(nick, text)

    def broadcast(self, text: str) -> int:
        self._engine.info(text.encode())
        return len(self._chat.nicks)

    # -- what the node tells ------------------------------------------------------------

    def fence(self) -> None:
        """This incarnation lost its lease: every client of this node is told
        `BYE shutdown` (its nickname may be someone else's by now)."""
        with self._lock:
            parties = [local.party for local in self._locals.values()]
        for party in parties:
            party.close("shutdown")

    # -- Locals: what the replica asks ----------------------------------------------------

    def party(self, origin: str, conn: int) -> Party | None:
        if origin != self.origin:
            return None
        local = self._locals.get(conn)
        return local.party if local is not None else None

    def greeting(self, conn: int) -> bytes:
        local = self._locals.get(conn)
        op = local.op if local is not None else None
        return op.greeting if op is not None else b""

    def applied(self, record: Record, value: object) -> None:
        if record.origin != self.origin:
            return
        op: _Op | None = None
        then: Callable[[], None] | None = None
        resend = ""
        with self._lock:
            local = self._locals.get(record.conn)
            if local is None:
                return
            if record.kind in _ENDS:
                del self._locals[record.conn]
                op, local.op = local.op, None  # what was on its way ends with the client
            elif local.op is not None and local.op.kind == record.kind:
                op, local.op = local.op, None
                then = functools.partial(op.done, value)
            if local.leaving is not None and record.kind in ("nick", "rename"):
                now_as = record.text.decode() if record.kind == "rename" else record.nick
                if names.nick_key(now_as) != names.nick_key(local.left_as):
                    resend = local.left_as = now_as
        if op is not None:
            self._finish(local.party, then)
        if resend:  # it left while this was on its way: leave under the name it has now
            self._send_leave(record.conn, resend, local.leaving or "")

    # -- inside ---------------------------------------------------------------------------

    def _begin(self, client: Party, op: _Op) -> None:
        with self._lock:
            local = self._locals.get(client.serial)
            if local is None:
                local = self._locals[client.serial] = _Local(client, client.nick)
            local.op = op
        client.hold()

    def _finish(self, party: Party, then: Callable[[], None] | None) -> None:
        """On the party's thread: the continuation, then its lines."""

        def finish() -> None:
            try:
                if then is not None and not party.closed:
                    then()
            finally:
                party.release()

        party.outlet.call_soon(finish)

    def _refusal(self, client: Party, op: _Op, subject: str) -> Refusal:
        """What a refusal of `op` does: `ERR` (or, for `already_in`, done)."""

        def refused(code: str, detail: str) -> None:
            with self._lock:
                local = self._locals.get(client.serial)
                if local is None or local.op is not op:
                    return  # completed, or the client is gone
                local.op = None
            if code == ALREADY_IN and op.kind == "join":
                room = self._chat.rooms.find(subject)
                self._finish(client, (lambda: op.done(room)) if room is not None else None)
                return
            error = _error(code, detail, subject)
            if error is None:
                if code == LOST:  # it did not run; nothing tells the client which: start again
                    client.close("shutdown")
                self._finish(client, None)
            else:
                self._finish(client, lambda: op.refused(error))

        return refused

    @staticmethod
    def _answer(client: Party, subject: str) -> Refusal:
        """A refusal of something said: `ERR` (any thread may deliver)."""

        def refused(code: str, detail: str) -> None:
            error = _error(code, detail, subject)
            if error is not None:
                client.outlet.deliver(protocol.format_error(error))

        return refused

    def _send_leave(self, conn: int, nick: str, reason: str) -> None:
        def refused(code: str, detail: str) -> None:
            if code == LOST and detail == INTERRUPTED:  # did not run: again (a second is refused harmlessly)
                self._send_leave(conn, nick, reason)
                return
            with self._lock:  # not_owner: never registered, or kicked; fenced: reaped
                local = self._locals.get(conn)
                if local is not None and local.op is None:
                    del self._locals[conn]

        self._engine.leave(conn, nick, reason, refused)


def _error(code: str, detail: str, subject: str) -> ProtocolError | None:
    """The `ERR` for an engine's refusal; None where the client is not answered."""
    if code == protocol.NICK_TAKEN:
        return ProtocolError(code, f"The nickname {subject} is taken; try another.")
    if code == protocol.NO_SUCH_ROOM:
        return ProtocolError(code, f"There is no room {subject}.")
    if code == protocol.NOT_IN_ROOM:
        return ProtocolError(code, f"You are not in {subject}; /join it first.")
    if code == protocol.NO_SUCH_NICK:
        return ProtocolError(code, f"Nobody is called {subject}.")
    if code == protocol.TOO_MANY_ROOMS:
        if detail == "server":
            return ProtocolError(code, "The server has as many rooms as it allows.")
        return ProtocolError(code, "You are in as many rooms as allowed; /part one first.")
    if code == BUSY:
        return ProtocolError(protocol.RATE_LIMITED, "The server is busy; that was dropped, try again.")
    return None  # fenced, not_owner, lost
