"""The command table: what each command does, and who may use it when.

One row per verb (a `Command.verb`), in the shape of Ergo's irc/commands.go:
the handler, whether it is usable before registration, and whether it speaks
in a room (see `Row`). `Session` looks a parsed line's verb up here and runs
the handler; nothing else in the core dispatches on verb strings. How the line
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

What is not here: parsing (protocol.py), flood control and strikes (the
session's, core/flood.py), and what touches several clients (chat.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Protocol

import structlog

from chatd import names
from chatd.core import account_commands, protocol, room_commands, sasl, signin
from chatd.core.account_commands import Holder
from chatd.core.chat import Chat
from chatd.core.history import PAGE_DEFAULT, PAGE_MAX, Event, dm_key, owned_dm_key
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

    def say(self, kind: str, room: Room, text: bytes, tags: bytes = b"") -> None:
        """Queue a room event; those of one read to one room leave as one block."""


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
    caller.messages_in += 1
    caller.chat.direct(caller, recipient, text, caller.outlet, tags, kind)


# -- rooms -------------------------------------------------------------------------------


def _join(caller: Caller, command: Command) -> None:
    enter(caller, command.target)
    say_current(caller)


def _part(caller: Caller, command: Command) -> None:
    room = _joined(caller, command.target) if command.target else _current_room(caller)
    leave_room(caller, room, protocol.format_line("PART", room.name, caller.nick, command.text.decode()))


def _topic(caller: Caller, command: Command) -> None:
    room = _joined(caller, command.target) if command.target else _current_room(caller)
    text = command.text.decode()
    if not text:
        caller.outlet.deliver(caller.chat.topic_line(room))
        return
    _may_set_topic(caller, room)
    caller.chat.set_topic(caller, room, text)


def _untopic(caller: Caller, command: Command) -> None:
    """IRC's `TOPIC #room :` (the line protocol's `/topic` without text asks instead)."""
    room = _joined(caller, command.target)
    _may_set_topic(caller, room)
    caller.chat.set_topic(caller, room, "")


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
        caller.outlet.deliver(users + caller.chat.roles_line(room, registration), 2)


def _rooms(caller: Caller, command: Command) -> None:
    lines = caller.chat.room_list(caller.rooms)
    caller.outlet.deliver(b"".join(lines), len(lines))


def _history(caller: Caller, command: Command) -> None:
    """`/history`: the store is asked off this thread; the answer is sent from there."""
    query = protocol.parse_history(command.text, PAGE_DEFAULT, PAGE_MAX)
    chat, target, outlet = caller.chat, command.target, caller.outlet
    also: str | None = None
    if names.is_room(target):
        room = _joined(caller, target)
        if not chat.keeps_history:
            raise ProtocolError(protocol.NO_HISTORY, "This server keeps no history.")
        key, shown = room.key, room.name
    else:
        protocol.check_nick(target, chat.config.limits.max_nick_length)
        if not chat.keeps_history or not caller.authenticated:
            # Kept only between authenticated parties: a guest's nickname proves nothing.
            raise ProtocolError(protocol.NO_HISTORY, "This server keeps no direct messages of yours.")
        key, shown = dm_key(caller.nick, target), target
        also = owned_dm_key(caller.nick, target)  # and those with `target` while it was a guest
    newer = query.after is not None

    def answer(events: list[Event] | None) -> None:
        if events is None:  # on the lookup thread: only the outlet is safe to use
            error = ProtocolError(protocol.NO_HISTORY, f"The history of {shown} cannot be read now; try again.")
            outlet.deliver(protocol.format_error(error))
            return
        more = len(events) > query.limit
        if more:
            events = events[: query.limit] if newer else events[-query.limit :]
        chat.send_history(caller, shown, events, more, newer)

    chat.lookups.history(key, query.before, query.after, query.limit + 1, answer, also)


def _targets(caller: Caller, command: Command) -> None:
    """IRC's CHATHISTORY TARGETS (`<after_ms> <before_ms> <limit>`, only the IRC
    codec hands it in): the rooms the caller is in, and (if authenticated) the
    nicknames it has direct messages with, whose last kept event is strictly
    between the two times, the earliest first: `TARGET <name> <time>` each,
    then `TARGETS <count>`."""
    try:
        after, before, limit = (int(word) for word in command.text.split())
    except ValueError:
        raise ProtocolError(protocol.BAD_ARGUMENT, "TARGETS takes two times (ms) and a limit.") from None
    chat, outlet = caller.chat, caller.outlet
    if not chat.keeps_history:
        raise ProtocolError(protocol.NO_HISTORY, "This server keeps no history.")
    me = names.nick_key(caller.nick) if caller.authenticated else None

    def answer(events: list[Event] | None) -> None:  # on the lookup thread: only the outlet is safe to use
        if events is None:
            error = ProtocolError(protocol.NO_HISTORY, "The history cannot be read now; try again.")
            outlet.deliver(protocol.format_error(error))
            return
        kept = sorted((e for e in events if after < e.time_ms < before), key=lambda e: (e.time_ms, e.id))
        clock = chat.history.clock
        lines = [protocol.format_line("TARGET", _shown(e, me), clock.format(e.time_ms).decode()) for e in kept[:limit]]
        lines.append(protocol.format_line("TARGETS", str(len(lines))))
        outlet.deliver(b"".join(lines), len(lines))

    chat.lookups.targets([room.key for room in caller.rooms.values()], me, answer)


def _shown(event: Event, me: str | None) -> str:
    """A target as its owner names it: the room, or the other party of a DM."""
    if not event.target.startswith("dm:"):
        return event.room
    return event.room if names.nick_key(event.nick) == me else event.nick


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
    old = chat.rename(caller, list(caller.rooms.values()), new)
    log.info("rename", **caller.context, old=old, new=new)


def _ping(caller: Caller, command: Command) -> None:
    caller.outlet.deliver(b"PONG %s\n" % command.text if command.text else b"PONG\n")


def _quit(caller: Caller, command: Command) -> None:
    caller.close("quit", command.text.decode())


def _help(caller: Caller, command: Command) -> None:
    for text in protocol.HELP_LINES:
        caller.outlet.deliver(protocol.format_line("INFO", text))


def _nothing(caller: Caller, command: Command) -> None:
    pass


COMMANDS: Final[Mapping[str, Row]] = MappingProxyType(
    {
        "say": Row(_say, speaks=True),
        "me": Row(_me, speaks=True),
        "msg": Row(_msg),
        "tagmsg": Row(_tagmsg),
        "join": Row(_join),
        "part": Row(_part),
        "topic": Row(_topic),
        "untopic": Row(_untopic),
        "who": Row(_who),
        "rooms": Row(_rooms),
        "history": Row(_history),
        "targets": Row(_targets),
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


def enter(caller: Caller, name: str) -> None:
    """Join room `name`, or switch to it if the caller is in it already.

    Raises:
        ProtocolError: `room_invalid`, `no_such_room`, `too_many_rooms`.
    """
    room = caller.rooms.get(names.room_key(protocol.check_room(name)))
    if room is None:
        room = caller.chat.join(caller, name, len(caller.rooms), caller.outlet)
        caller.rooms[room.key] = room
    caller.current = room


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
