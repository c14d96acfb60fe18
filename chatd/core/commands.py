"""The command table: what each command does, and who may use it when.

One row per verb (a `Command.verb`), in the shape of Ergo's irc/commands.go:
the handler, whether it is usable before registration, and whether it speaks
in a room (see `Row`). `handle` in core/dispatch.py looks a parsed line's
verb up here and runs the handler (`register` in core/registering.py too,
for the rows usable before registration); nothing else in the core dispatches on verb
strings. How the line
protocol spells each command and reads its arguments is `protocol.GRAMMAR`'s;
a transport with a grammar of its own (the IRC listener) turns its lines into
the same `Command`s and runs the same rows.

A handler gets the session as a `Caller` (what a command may use of it) and
the `Command`, answers through `caller.outlet`, and raises `ProtocolError`
for an `ERR` reply. Adding a command is a row in each table and a handler;
for example a `/login` that works before the nickname:

    # protocol.py, in GRAMMAR: how the line reads
    "login": Syntax("/login <account> <password>", "sign in", _target_and_text),

    # here, in COMMANDS: what it does
    "login": Row(_login, before_registration=True),

    def _login(caller: Caller, command: Command) -> None:
        ...

What is not here: parsing (protocol.py), flood control (core/flood.py, asked
by core/dispatch.py), strikes (the session's), and what touches several
clients (chat.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Protocol

import structlog

from chatd import names
from chatd.core import account_commands, history_commands, protocol, room_commands, room_lines, sasl, signin
from chatd.core.account_commands import Holder
from chatd.core.bus import Later
from chatd.core.chat import Chat
from chatd.core.protocol import Command
from chatd.core.registry import OP
from chatd.core.room_commands import Moderator
from chatd.core.rooms import Room
from chatd.core.sasl import Prover
from chatd.errors import ProtocolError
from chatd.outlet import Outlet

log = structlog.get_logger(__name__)


class Caller(Moderator, Prover, Holder, Protocol):
    """What a command may use of the session it runs for (core/session.py);
    signing in, SASL, the account and the room commands use more of it
    (`Prover`, `Holder`, `Moderator`)."""

    chat: Chat
    outlet: Outlet
    context: dict[str, object]  # for its log events
    rooms: dict[str, Room]  # by key, in the order they were joined
    current: Room | None
    messages_in: int
    serial: int

    def say(self, kind: str, room: Room, text: bytes, tags: bytes = b"") -> None:
        """Queue a room event; those of one read to one room leave as one block."""

    def flush_said(self) -> None:
        """Send the room events queued so far (`say`): a DM must not overtake them."""

    def fail(self, error: ProtocolError) -> None:
        """`ERR` for a command refused (at once, or later by the bus)."""

    def hold(self) -> None: ...

    def release(self) -> None: ...


Handler = Callable[[Caller, Command], None]


@dataclass(frozen=True, slots=True)
class Row:
    handler: Handler
    # Usable before the nickname is accepted; any other line then is taken for one.
    before_registration: bool = False
    # Adds to the read's block of room events; any other command sends that block
    # first, so that what it answers comes after what was said before it.
    speaks: bool = False


# -- saying things ---------------------------------------------------------------------


def _say(caller: Caller, command: Command) -> None:
    caller.say("msg", _current_room(caller), command.text)


def _me(caller: Caller, command: Command) -> None:
    """`/me`: an action in the current room. From IRC (a CTCP ACTION) it names
    its room, or a nickname: a DM marked `action` (the line protocol has no DM action)."""
    target = command.target
    if not target:
        caller.say("action", _current_room(caller), command.text, command.tags)
    elif names.is_room(target):
        caller.say("action", _joined(caller, target), command.text, command.tags)
    else:
        _direct(caller, target, command.text, b"action;" + command.tags if command.tags else b"action")


def _msg(caller: Caller, command: Command) -> None:
    target, text = command.target, command.text
    if names.is_room(target):
        caller.say("msg", _joined(caller, target), text, command.tags)
        return
    _direct(caller, target, text, command.tags)


def _tagmsg(caller: Caller, command: Command) -> None:
    """IRC's TAGMSG: tags and no text, to a room's members or a nickname; not kept."""
    target = command.target
    if names.is_room(target):  # as any event said in a room (a moderated room's rule too)
        caller.say("tagmsg", _joined(caller, target), b"", command.tags)
        return
    _direct(caller, target, b"", command.tags, "tagmsg")


def _direct(caller: Caller, target: str, text: bytes, tags: bytes, kind: str = "dm") -> None:
    recipient = caller.chat.nicks.find(target)
    if recipient is None:
        raise ProtocolError(protocol.NO_SUCH_NICK, f"Nobody is called {target}.")
    caller.flush_said()
    caller.messages_in += 1
    caller.chat.bus.direct(caller, recipient, text, tags, kind)


# -- rooms -------------------------------------------------------------------------------


def _join(caller: Caller, command: Command) -> None:
    enter(caller, command.target, lambda: say_current(caller), caller.fail)


def _part(caller: Caller, command: Command) -> None:
    room = _joined(caller, command.target) if command.target else _current_room(caller)

    def parted() -> None:
        caller.rooms.pop(room.key, None)
        if room is caller.current:
            caller.current = next(reversed(caller.rooms.values()), None)
            say_current(caller)

    caller.chat.bus.part(caller, room, command.text.decode(), parted, caller.fail)


def _topic(caller: Caller, command: Command) -> None:
    room = _joined(caller, command.target) if command.target else _current_room(caller)
    text = command.text.decode()
    if not text:
        caller.outlet.deliver(room_lines.topic_line(room))
        return
    _may_set_topic(caller, room)
    caller.chat.bus.topic(caller, room, text, _nothing_more, caller.fail)


def _untopic(caller: Caller, command: Command) -> None:
    """IRC's `TOPIC #room :` (the line protocol's `/topic` without text asks instead)."""
    room = _joined(caller, command.target)
    _may_set_topic(caller, room)
    caller.chat.bus.topic(caller, room, "", _nothing_more, caller.fail)


def _may_set_topic(caller: Caller, room: Room) -> None:
    registration = room.registration
    if registration is not None and registration.has("topic_ops") and registration.rank(caller.account) < OP:
        raise ProtocolError(protocol.NOT_ALLOWED, f"Only ops set the topic of {room.name}.")


def _who(caller: Caller, command: Command) -> None:
    room = _room_named(caller, command.target) if command.target else _current_room(caller)
    users = protocol.format_users(room.name, room.nicks())
    registration = room.registration
    if registration is None:
        caller.outlet.deliver(users)
    else:
        caller.outlet.deliver(users + room_lines.roles_line(room, registration), 2)


def _rooms(caller: Caller, command: Command) -> None:
    lines = room_lines.room_list(caller.chat.rooms.all(), caller.chat.registry, caller.rooms)
    caller.outlet.deliver(b"".join(lines), len(lines))


# -- the connection ----------------------------------------------------------------------


def _nick(caller: Caller, command: Command) -> None:
    new, chat = command.target, caller.chat
    protocol.check_nick(new, chat.config.limits.max_nick_length)
    if new == caller.nick:
        caller.outlet.deliver(protocol.format_line("INFO", f"You are already {new}."))
        return
    if chat.config.tls.nick_from_cert:
        raise ProtocolError(protocol.NICK_INVALID, "Your nickname comes from your certificate.")
    if caller.account is not None and names.nick_key(new) != caller.account:
        raise ProtocolError(
            protocol.NICK_INVALID,
            f"You are logged in as {caller.nick}; your nickname is your account's name.",
        )
    if caller.account is None and chat.accounts is not None and chat.accounts.is_registered(new):
        raise ProtocolError(protocol.NICK_REGISTERED, f"{new} is a registered account; sign in to use it.")

    def renamed(old: str) -> None:
        log.info("rename", **caller.context, old=old, new=new)

    chat.bus.rename(caller, list(caller.rooms.values()), new, renamed, caller.fail)


def _ping(caller: Caller, command: Command) -> None:
    caller.outlet.deliver(b"PONG %s\n" % command.text if command.text else b"PONG\n")


def _quit(caller: Caller, command: Command) -> None:
    caller.close("quit", command.text.decode())


def _help(caller: Caller, command: Command) -> None:
    for text in protocol.HELP_LINES:
        caller.outlet.deliver(protocol.format_line("INFO", text))


def _nothing(caller: Caller, command: Command) -> None:
    pass


def _nothing_more() -> None:
    pass


COMMANDS: Final[Mapping[str, Row]] = MappingProxyType(
    {
        "say": Row(_say, speaks=True),
        "me": Row(_me, speaks=True),
        "msg": Row(_msg, speaks=True),
        "tagmsg": Row(_tagmsg),
        "join": Row(_join),
        "part": Row(_part),
        "topic": Row(_topic),
        "untopic": Row(_untopic),
        "who": Row(_who),
        "rooms": Row(_rooms),
        "history": Row(history_commands.history),
        "targets": Row(history_commands.targets),
        "nick": Row(_nick),
        "room": Row(room_commands.room),
        "op": Row(room_commands.op),
        "deop": Row(room_commands.deop),
        "voice": Row(room_commands.voice),
        "devoice": Row(room_commands.devoice),
        "kick": Row(room_commands.kick),
        "ban": Row(room_commands.ban),
        "unban": Row(room_commands.unban),
        "bans": Row(room_commands.bans),
        "invite": Row(room_commands.invite),
        "ping": Row(_ping),
        "login": Row(signin.login, before_registration=True),
        "register": Row(signin.register, before_registration=True),
        "resume": Row(signin.resume, before_registration=True),
        "sasl": Row(sasl.sasl, before_registration=True),
        "remember": Row(account_commands.remember),
        "passwd": Row(account_commands.passwd),
        "logout": Row(account_commands.logout),
        "quit": Row(_quit, before_registration=True),
        "help": Row(_help),
        "empty": Row(_nothing),
    }
)


# Rows no line of the line protocol reaches (GRAMMAR has no form for them):
# `Command`s the IRC codec hands in. So do the IRC forms of two that it has:
# "me" with a target (a CTCP ACTION to a room or a nickname), "msg" with tags.
IRC_ONLY: Final = frozenset({"tagmsg", "untopic", "sasl", "targets"})


# -- what handlers share (and registration's autojoin) ------------------------------------


def enter(caller: Caller, name: str, then: Callable[[], None], refused: Callable[[ProtocolError], None]) -> None:
    """Join room `name`, or switch to it if the caller is in it already; then
    `then` (at once, or once the bus has the caller in the room: core/bus.py).

    Raises:
        ProtocolError: `room_invalid`, `no_such_room`, `too_many_rooms`.
    """
    room = caller.rooms.get(names.room_key(protocol.check_room(name)))
    if room is not None:
        caller.current = room
        then()
        return

    def joined(room: Room) -> None:
        caller.rooms[room.key] = room
        caller.current = room
        then()

    caller.chat.bus.join(caller, name, len(caller.rooms), joined, refused)


def autojoin(caller: Caller, names: Iterator[str]) -> None:
    """Registration's rooms: join each of `names` in turn, then `CURRENT`. A
    join that takes effect later (on a network) goes on with the rest from
    its continuation; a refused one is answered with `ERR` and skipped."""
    for name in names:
        if caller.closed or not caller.nick:
            return
        later = Later(lambda: autojoin(caller, names))
        try:
            enter(caller, name, later.done, later.refused(caller.fail))
        except ProtocolError as error:  # e.g. the server's room limit
            caller.fail(error)
            continue
        if later.waiting():
            return
    if not caller.closed:
        say_current(caller)


def leave_room(caller: Caller, room: Room, line: bytes) -> None:
    """Out of `room` (a `/part`, or a kick on the caller's own thread): `line`
    to the room's members and the caller; then `CURRENT` if it was the current one."""
    del caller.rooms[room.key]
    caller.chat.remove(caller, room, line)
    if room is caller.current:
        caller.current = next(reversed(caller.rooms.values()), None)
        say_current(caller)


def say_current(caller: Caller) -> None:
    caller.outlet.deliver(protocol.format_line("CURRENT", caller.current.name if caller.current else "*"))


def _current_room(caller: Caller) -> Room:
    if caller.current is None:
        raise ProtocolError(protocol.NOT_IN_ROOM, "You are in no room; /join one first.")
    return caller.current


_joined = room_commands.joined


def _room_named(caller: Caller, name: str) -> Room:
    """An existing room; a private one only to its members: to anyone else it
    does not exist (the same answer, byte for byte)."""
    chat = caller.chat
    room = chat.rooms.find(protocol.check_room(name))
    registration = chat.registry.find(name) if chat.registry is not None else None
    hidden = registration is not None and registration.has("private") and names.room_key(name) not in caller.rooms
    if room is None or hidden:
        raise ProtocolError(protocol.NO_SUCH_ROOM, f"There is no room {name}.")
    return room
