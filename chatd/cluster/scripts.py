"""Scripts: the Lua of lua/ loaded, and each call to it pre-encoded with the
decoder of its reply.

A `Call` is one `EVALSHA`, already in RESP bytes, so the writer thread sends a
batch of them in one write and the caller's thread pays the encoding. `Calls`
builds them for one cluster (prefix and log length), with the protocol's
case-insensitive keys of nicknames and rooms taken from chatd.names. Replies
come back as typed values, or raise `Refused` / `Fenced` (chatd/cluster/errors.py).

No I/O here: chatd/cluster/link.py sends calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final, Generic, NamedTuple, TypeVar

from chatd.cluster.errors import ClusterError, Fenced, Refused
from chatd.names import nick_key, room_key

T = TypeVar("T")

NAMES: Final = (
    "register",
    "heartbeat",
    "reap",
    "raise_ids",
    "claim",
    "rename",
    "leave",
    "kick",
    "join",
    "part",
    "topic",
    "append",
    "snapshot",
    "retire",
)


@dataclass(frozen=True)
class Script:
    name: str
    source: bytes  # lua/lib.lua, then the script itself
    sha: bytes  # hex SHA-1 of the source, as EVALSHA takes it


def load_scripts() -> dict[str, Script]:
    """Every script of lua/, each with lib.lua in front."""
    folder = resources.files("chatd.cluster").joinpath("lua")
    lib = folder.joinpath("lib.lua").read_bytes()
    scripts = {}
    for name in NAMES:
        source = lib + b"\n" + folder.joinpath(f"{name}.lua").read_bytes()
        scripts[name] = Script(name, source, hashlib.sha1(source).hexdigest().encode())
    return scripts


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack(*args: bytes) -> bytes:
    """One command in RESP, as redis-server reads it."""
    return b"*%d\r\n%s" % (len(args), b"".join(map(bulk, args)))


@dataclass(frozen=True, slots=True)
class ReplyError:
    """An error reply (`-ERR ...`), kept as a value so that one bad reply does
    not hide the others of a batch."""

    message: str


# NOTE: Call, Incarnation and Span are NamedTuples, not frozen dataclasses, because
# one of each is made per append: a frozen dataclass costs ~1 us more to build.


class Call(NamedTuple, Generic[T]):
    name: str
    command: bytes  # RESP
    decode: Callable[[object], T]  # raises Refused, Fenced, ClusterError


class Incarnation(NamedTuple):
    """A node as it runs now: its name and the epoch `register` gave it."""

    node: str
    epoch: int

    def __str__(self) -> str:
        return f"{self.node}:{self.epoch}"


class Span(NamedTuple):
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Joined:
    id: int
    room: str  # as created, which may differ in case from the name asked for
    created: bool


@dataclass(frozen=True, slots=True)
class Reaped:
    nodes: int
    nicks: int


@dataclass(frozen=True, slots=True)
class Raised:
    last: int  # the last id handed out (the raise entry's own, if raised)
    raised: bool


def _ok(reply: object) -> list[object]:
    """The values after 'ok'; raises for every other status."""
    if type(reply) is list and reply[0] == b"ok":  # the usual case first
        return reply[1:]
    if isinstance(reply, ReplyError):
        raise ClusterError(f"Redis answered a cluster script with an error: {reply.message}")
    if not isinstance(reply, list) or not reply or not isinstance(reply[0], bytes):
        raise ClusterError(f"unexpected reply from a cluster script: {reply!r}")
    status = reply[0].decode()
    if status == "ok":
        return reply[1:]
    if status == "fenced":
        raise Fenced()
    detail = reply[1].decode() if len(reply) > 1 and isinstance(reply[1], bytes) else ""
    raise Refused(status, detail)


def _int(value: object) -> int:
    if isinstance(value, bytes | int):
        return int(value)
    raise ClusterError(f"unexpected value in a cluster script's reply: {value!r}")


def _id(reply: object) -> int:
    return _int(_ok(reply)[0])


def _span(reply: object) -> Span:
    first, last = _ok(reply)
    if type(first) is int and type(last) is int:
        return Span(first, last)
    return Span(_int(first), _int(last))


def _joined(reply: object) -> Joined:
    id_, room, created = _ok(reply)
    assert isinstance(room, bytes)
    return Joined(_int(id_), room.decode(), created == 1)


def _reaped(reply: object) -> Reaped:
    nodes, nicks = _ok(reply)
    return Reaped(_int(nodes), _int(nicks))


def _raised(reply: object) -> Raised:
    last, raised = _ok(reply)
    return Raised(_int(last), raised == 1)


def _register(reply: object) -> int:
    try:
        return _id(reply)
    except Refused as exc:
        if exc.code == "node_taken":
            raise Refused("node_taken", f"another process holds this node name's lease, epoch {exc.detail}") from None
        raise


_SAY_KINDS: Final = {"msg": b"msg", "action": b"action"}


class Calls:
    """The calls of one cluster: every command carries the key prefix and the
    log's MAXLEN."""

    def __init__(self, prefix: str, log_max: int, scripts: dict[str, Script] | None = None) -> None:
        self.scripts = scripts if scripts is not None else load_scripts()
        head = bulk(prefix.encode()) + bulk(b"%d" % log_max)
        # EVALSHA <sha> 0 <prefix> <log_max>: all but the array's length, per script.
        self._heads = {
            name: bulk(b"EVALSHA") + bulk(script.sha) + bulk(b"0") + head for name, script in self.scripts.items()
        }
        self._callers: dict[Incarnation, bytes] = {}

    def _command(self, name: str, caller: bytes, args: Sequence[bytes]) -> bytes:
        """`caller`: the node and epoch arguments, as bulk strings."""
        body = b"".join([b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args])
        return b"*%d\r\n%s%s%s" % (len(args) + 7, self._heads[name], caller, body)

    def _caller(self, me: Incarnation) -> bytes:
        caller = self._callers.get(me)
        if caller is None:  # a process has one incarnation at a time, a few over its life
            caller = self._callers[me] = bulk(me.node.encode()) + bulk(b"%d" % me.epoch)
        return caller

    def _call(self, name: str, me: Incarnation, decode: Callable[[object], T], *args: bytes) -> Call[T]:
        return Call(name, self._command(name, self._caller(me), args), decode)

    # -- the node ---------------------------------------------------------------------

    def register(self, node: str, lease_ms: int, previous: int | None, permanent: Iterable[str]) -> Call[int]:
        """Start an incarnation of `node`; its reply is the new epoch. `previous`:
        the epoch this node held before a restart (its nicknames are reaped at
        once instead of after the lease). `permanent`: rooms.permanent.

        Refused: node_taken (another live process has this node name)."""
        rooms = [part for name in permanent for part in (room_key(name).encode(), name.encode())]
        caller = bulk(node.encode()) + bulk(b"" if previous is None else b"%d" % previous)
        return Call("register", self._command("register", caller, [b"%d" % lease_ms, *rooms]), _register)

    def heartbeat(self, me: Incarnation, lease_ms: int) -> Call[int]:
        """Renew the lease; the reply is the last id handed out (the log's head)."""
        return self._call("heartbeat", me, _id, b"%d" % lease_ms)

    def reap(self, me: Incarnation) -> Call[Reaped]:
        """Free the nicknames of every node whose lease is gone."""
        return self._call("reap", me, _reaped)

    def snapshot(self, me: Incarnation) -> Call[list[object]]:
        """The network's state at the last id handed out: [head, nicks, rooms]
        (lua/snapshot.lua; chatd/cluster/state.py reads it)."""
        return self._call("snapshot", me, _ok)

    def retire(self, me: Incarnation) -> Call[int]:
        """Give the lease back (a stop on purpose); the reply is how many
        nicknames it still held, now freed."""
        return self._call("retire", me, _id)

    def raise_ids(self, me: Incarnation, minimum: int) -> Call[Raised]:
        """Make every id from now on at least `minimum` (never lowers)."""
        return self._call("raise_ids", me, _raised, b"%d" % minimum)

    # -- nicknames and rooms ------------------------------------------------------------

    def claim(self, me: Incarnation, conn: int, nick: str) -> Call[int]:
        """Connection `conn` registers as `nick`. Refused: nick_taken."""
        return self._call("claim", me, _id, b"%d" % conn, nick_key(nick).encode(), nick.encode())

    def rename(self, me: Incarnation, conn: int, old: str, new: str) -> Call[int]:
        """Refused: nick_taken, not_owner."""
        args = (b"%d" % conn, nick_key(old).encode(), nick_key(new).encode(), new.encode())
        return self._call("rename", me, _id, *args)

    def leave(self, me: Incarnation, conn: int, nick: str, reason: str) -> Call[int]:
        """Leave every room and free the nickname; `reason` is LEAVE's reason
        code and text. Refused: not_owner."""
        if not reason:
            raise ValueError("a leave has a reason; a silent one is a release")
        return self._call("leave", me, _id, b"%d" % conn, nick_key(nick).encode(), reason.encode())

    def release(self, me: Incarnation, conn: int, nick: str) -> Call[int]:
        """A leave with no announcement (a `release` entry). Refused: not_owner."""
        return self._call("leave", me, _id, b"%d" % conn, nick_key(nick).encode(), b"")

    def kick(self, me: Incarnation, nick: str, text: str) -> Call[int]:
        """An operator's kick, wherever `nick` is connected. Refused: no_such_nick."""
        return self._call("kick", me, _id, nick_key(nick).encode(), text.encode())

    def join(
        self, me: Incarnation, conn: int, nick: str, room: str, allow_create: bool, max_rooms: int, per_client: int
    ) -> Call[Joined]:
        """Refused: not_owner, already_in, no_such_room, too_many_rooms
        (detail `client` or `server`)."""
        args = (
            b"%d" % conn,
            nick_key(nick).encode(),
            room_key(room).encode(),
            room.encode(),
            b"1" if allow_create else b"0",
            b"%d" % max_rooms,
            b"%d" % per_client,
        )
        return self._call("join", me, _joined, *args)

    def part(self, me: Incarnation, conn: int, nick: str, room: str, text: str) -> Call[int]:
        """Refused: not_owner, not_in_room."""
        args = (b"%d" % conn, nick_key(nick).encode(), room_key(room).encode(), text.encode())
        return self._call("part", me, _id, *args)

    def topic(self, me: Incarnation, conn: int, nick: str, room: str, text: str) -> Call[int]:
        """Refused: not_owner, not_in_room."""
        args = (b"%d" % conn, nick_key(nick).encode(), room_key(room).encode(), text.encode())
        return self._call("topic", me, _id, *args)

    # -- events (the `append` script) -----------------------------------------------------

    def say(self, me: Incarnation, conn: int, nick: str, kind: str, room: str, texts: Sequence[bytes]) -> Call[Span]:
        """`msg` or `action` entries, one per text (the lines of one read, in
        one call). Refused: not_owner, not_in_room."""
        verb = _SAY_KINDS.get(kind)
        if verb is None or not texts:
            raise ValueError(f"say: kind msg or action and at least one text (got {kind!r}, {len(texts)})")
        # NOTE: the hot path (one call per read of a client's lines): built in one go.
        args = [b"%d" % conn, nick_key(nick).encode(), verb, room_key(room).encode(), *texts]
        return Call("append", self._command("append", self._caller(me), args), _span)

    def direct(self, me: Incarnation, conn: int, nick: str, recipient: str, text: bytes) -> Call[Span]:
        """A `dm` entry. Refused: not_owner, no_such_nick."""
        args = (b"%d" % conn, nick_key(nick).encode(), b"dm", nick_key(recipient).encode(), text)
        return self._call("append", me, _span, *args)

    def info(self, me: Incarnation, text: bytes) -> Call[Span]:
        """An operator's broadcast to every client of the network."""
        return self._call("append", me, _span, b"0", b"", b"info", b"", text)
