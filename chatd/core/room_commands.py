"""The users' commands on registered rooms (docs/protocol.md "Room roles"):
`/room`, `/op`, `/deop`, `/voice`, `/devoice`, `/kick`, `/ban`, `/unban`,
`/bans`, `/invite`. Rows of the command table (core/commands.py).

Each checks who may do it, then core/moderation.py does it and tells the
members. Who may do what (an operator over the control socket may always
do everything: core/room_admin.py):

| action | who |
|---|---|
| `/op`, `/deop`, `/room <#room> owner <nick>`, flags, `/room drop` | the owner |
| `/voice`, `/devoice`, `/kick`, `/ban`, `/unban`, `/bans`, `/invite` | op and above |
| `/room register` | a member signed in to an account |

Nobody acts on someone of equal or higher role. Every command names a room
the caller is in (`not_in_room` otherwise, which is also what a room that
does not exist, or a private one, answers): these commands never tell a
non-member anything about a room.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from chatd import names
from chatd.core import moderation, protocol, room_lines
from chatd.core.chat import Chat
from chatd.core.nicks import Client
from chatd.core.protocol import Command
from chatd.core.registry import FLAGS, OP, OWNER, ROLES, VOICE, Registration, parse_mask
from chatd.core.rooms import Room
from chatd.errors import ProtocolError
from chatd.outlet import Outlet


class Moderator(Client, Protocol):
    """What these commands use of the session (chatd.core.session.Session)."""

    chat: Chat
    outlet: Outlet
    rooms: dict[str, Room]  # by key


def joined(caller: Moderator, name: str) -> Room:
    """The room `name` the caller is in.

    Raises:
        ProtocolError: `room_invalid`, `not_in_room`.
    """
    room = caller.rooms.get(names.room_key(name))
    if room is not None and name.isascii():
        # One of the caller's rooms, whose name passed the rules when it was
        # joined: an ASCII name with the same key passes them too (NOTE: every
        # IRC PRIVMSG to a room comes here; the rules' regex is the dear part).
        return room
    room = caller.rooms.get(names.room_key(protocol.check_room(name)))
    if room is None:
        raise ProtocolError(protocol.NOT_IN_ROOM, f"You are not in {name}; /join it first.")
    return room


# -- /room ---------------------------------------------------------------------------------


def room(caller: Moderator, command: Command) -> None:
    if command.option == "register":
        _register(caller, joined(caller, command.target))
        return
    target = joined(caller, command.target)
    if command.option == "drop":
        moderation.drop(caller.chat, _registered(caller, target, OWNER), caller.nick)
    elif not command.option:
        caller.outlet.deliver(room_lines.flags_line(target.name, target.registration))
    elif command.option == "owner":
        registration = _registered(caller, target, OWNER)
        account = _account_named(caller, _word(command, "/room <#room> owner <nick>"))
        moderation.hand_over(caller.chat, registration, account, caller.nick)
    elif command.option in FLAGS:
        registration = _registered(caller, target, OWNER)
        value = _word(command, f"/room {target.name} {command.option} on|off")
        if value not in ("on", "off"):
            raise ProtocolError(protocol.BAD_ARGUMENT, f"A flag is on or off (got {value}).")
        if registration.has(command.option) == (value == "on"):
            _info(caller, f"{command.option} is {value} in {target.name} already.")
            return
        moderation.set_flag(caller.chat, registration, command.option, value == "on", caller.nick)
    else:
        raise ProtocolError(
            protocol.BAD_ARGUMENT,
            f"{command.option} is not a flag; flags are {', '.join(FLAGS)} (or: /room <#room> owner <nick>).",
        )


def _register(caller: Moderator, target: Room) -> None:
    chat, account = caller.chat, caller.account
    if account is None or chat.registry is None:
        raise ProtocolError(protocol.NOT_LOGGED_IN, "Only accounts register rooms; sign in first.")
    if target.registration is not None:
        owner = moderation.shown(chat, target.registration.owner)
        raise ProtocolError(protocol.NOT_ALLOWED, f"{target.name} is registered to {owner} already.")
    if target.permanent:
        raise ProtocolError(
            protocol.NOT_ALLOWED, f"{target.name} is one of the server's own rooms; its operator gives it an owner."
        )
    limit = chat.config.limits.rooms_per_account
    if chat.registry.owned(account) >= limit:
        raise ProtocolError(
            protocol.TOO_MANY_ROOMS,
            f"You own {chat.registry.owned(account)} rooms, the most allowed ({limit}); /room drop one first.",
        )
    try:
        moderation.register(chat, target.name, account, caller.nick)
    except ValueError:  # registered meanwhile by someone else
        raise ProtocolError(protocol.NOT_ALLOWED, f"{target.name} is registered already.") from None


# -- roles ---------------------------------------------------------------------------------


def op(caller: Moderator, command: Command) -> None:
    _change_role(caller, command, "op", OWNER, lambda rank: rank < OP)


def deop(caller: Moderator, command: Command) -> None:
    _change_role(caller, command, "member", OWNER, lambda rank: rank == OP)


def voice(caller: Moderator, command: Command) -> None:
    _change_role(caller, command, "voice", OP, lambda rank: rank < VOICE)


def devoice(caller: Moderator, command: Command) -> None:
    _change_role(caller, command, "member", OP, lambda rank: rank == VOICE)


def _change_role(caller: Moderator, command: Command, role: str, needs: int, applies: Callable[[int], bool]) -> None:
    """`/op` and friends: the caller's role must be `needs`, the target's below
    it, and `applies` to the target's rank (else nothing changes: `INFO`)."""
    target = joined(caller, command.target)
    registration = _registered(caller, target, needs)
    account = _account_named(caller, command.option)
    rank = registration.rank(account)
    _outranks(caller, registration, rank, command.option, target.name)
    if not applies(rank):
        _info(caller, f"{command.option} is {ROLES[rank]} in {target.name}; /{command.verb} changes nothing.")
        return
    moderation.set_role(caller.chat, registration, account, role, caller.nick)


# -- kicks, bans, invites ------------------------------------------------------------------


def kick(caller: Moderator, command: Command) -> None:
    target = joined(caller, command.target)
    registration = _registered(caller, target, OP)
    client = _member(caller, target, command.option)
    _outranks(caller, registration, registration.rank(client.account), client.nick, target.name)
    moderation.kick(caller.chat, target, client, caller.nick, "kicked", command.text.decode())


def ban(caller: Moderator, command: Command) -> None:
    target = joined(caller, command.target)
    registration = _registered(caller, target, OP)
    chat = caller.chat
    mask = parse_mask(command.option, chat.config.limits.max_nick_length)
    for client in moderation.covered(chat, target, mask):
        _outranks(caller, registration, registration.rank(client.account), client.nick, target.name)
    named = _account_of_mask(chat, mask)
    if named is not None:
        _outranks(caller, registration, registration.rank(named), command.option, target.name)
    _, removed = moderation.ban(chat, registration, mask, command.text.decode(), caller.nick)
    _info(caller, f"Banned {mask} from {target.name}" + (f"; {removed} removed." if removed else "."))


def unban(caller: Moderator, command: Command) -> None:
    target = joined(caller, command.target)
    registration = _registered(caller, target, OP)
    mask = parse_mask(command.option, caller.chat.config.limits.max_nick_length)
    if moderation.unban(caller.chat, registration, mask, caller.nick) is None:
        raise ProtocolError(protocol.BAD_ARGUMENT, f"There is no ban of {mask} in {target.name} (/bans {target.name}).")
    _info(caller, f"Lifted the ban of {mask} in {target.name}.")


def bans(caller: Moderator, command: Command) -> None:
    registration = _registered(caller, joined(caller, command.target), OP)
    lines = moderation.bans_lines(caller.chat, registration)
    caller.outlet.deliver(b"".join(lines), len(lines))


def invite(caller: Moderator, command: Command) -> None:
    target = joined(caller, command.target)
    registration = _registered(caller, target, OP)
    client = caller.chat.nicks.find(command.option)
    if client is None:
        raise ProtocolError(protocol.NO_SUCH_NICK, f"Nobody is called {command.option}.")
    if client in target.members:
        _info(caller, f"{client.nick} is in {target.name} already.")
        return
    moderation.invite(caller.chat, registration, client, caller)


# -- what they share -----------------------------------------------------------------------


def _registered(caller: Moderator, target: Room, needs: int) -> Registration:
    """The room's registration, if the caller's role there is at least `needs`.

    Raises:
        ProtocolError: `not_allowed`.
    """
    registration = target.registration
    if registration is None:
        raise ProtocolError(
            protocol.NOT_ALLOWED,
            f"{target.name} has no owner, so nobody has roles there; /room register {target.name}.",
        )
    if registration.rank(caller.account) < needs:
        role = "the owner" if needs == OWNER else "ops"
        raise ProtocolError(protocol.NOT_ALLOWED, f"Only {role} of {target.name} may do that.")
    return registration


def _outranks(caller: Moderator, registration: Registration, rank: int, nick: str, room: str) -> None:
    """Nobody acts on someone of equal or higher role."""
    if rank >= registration.rank(caller.account):
        raise ProtocolError(protocol.NOT_ALLOWED, f"{nick} is {ROLES[rank]} in {room}, as high as you or higher.")


def _account_named(caller: Moderator, nick: str) -> str:
    """The account of `nick` (connected, or not): roles are for accounts.

    Raises:
        ProtocolError: `not_allowed` for a guest, `no_such_nick`.
    """
    chat = caller.chat
    client = chat.nicks.find(nick)
    if client is not None:
        if client.account is None:
            raise ProtocolError(
                protocol.NOT_ALLOWED, f"{client.nick} is a guest; roles are for accounts: they must sign in first."
            )
        return client.account
    account = chat.accounts.find(nick) if chat.accounts is not None else None
    if account is None:
        raise ProtocolError(protocol.NO_SUCH_NICK, f"Nobody is called {nick}.")
    return account.key


def _account_of_mask(chat: Chat, mask: str) -> str | None:
    """The account a nickname or account mask names, if it is one."""
    key = mask.removeprefix("account:")
    if "/" in key or chat.accounts is None:
        return None
    account = chat.accounts.find(key)
    return account.key if account is not None else None


def _member(caller: Moderator, room: Room, nick: str) -> Client:
    client = caller.chat.nicks.find(nick)
    if client is None or client not in room.members:
        raise ProtocolError(protocol.NO_SUCH_NICK, f"Nobody called {nick} is in {room.name}.")
    return client


def _word(command: Command, usage: str) -> str:
    word = command.text.decode().strip()
    if not word:
        raise ProtocolError(protocol.MISSING_ARGUMENT, f"Usage: {usage}")
    return word


def _info(caller: Moderator, text: str) -> None:
    caller.outlet.deliver(protocol.format_line("INFO", text))
