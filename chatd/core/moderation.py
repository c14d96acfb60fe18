"""What changes a registered room, and the lines that tell its members
(docs/protocol.md "Room roles"): registering and dropping, roles and the
hand-over, flags, kicks, bans, invites; each with its audit event in the
log (`room_registered`, `room_dropped`, `room_role`, `room_flag`,
`room_kick`, `room_ban`, `room_unban`, `room_invite`).

Who may do what is not decided here: the users' commands check roles first
(core/room_commands.py), the operator may do everything
(core/room_admin.py); both then call these with `by`, the nickname shown
as the one who did it (`*` for the operator).

A change and its announcement happen under `Rooms.changing`, as joins do:
a member joining at that moment sees the change in its `ROLES`/`FLAGS` or
gets the line, never neither. Removing someone from a room (a kick, a ban)
is done by that client's own thread (`Client.remove_from`): a session is
only ever changed by its own thread.
"""

from __future__ import annotations

import structlog

from chatd import names
from chatd.core import protocol
from chatd.core.chat import Chat, attach
from chatd.core.nicks import Client
from chatd.core.registry import Registration, RoomBan, matches
from chatd.core.rooms import Room

log = structlog.get_logger(__name__)


def shown(chat: Chat, account: str) -> str:
    """How an account is named in lines: its connection's nickname, else its name."""
    online = chat.accounts.online(account) if chat.accounts is not None else None
    if online is not None:
        return online.nick
    found = chat.accounts.find(account) if chat.accounts is not None else None
    return found.name if found is not None else account


def live_room(chat: Chat, registration: Registration) -> Room | None:
    """The registered room while it has members (or is permanent)."""
    return chat.rooms.find(registration.key)


def _announce(chat: Chat, registration: Registration, *lines: bytes) -> None:
    room = live_room(chat, registration)
    if room is not None:
        room.broadcast(b"".join(lines), len(lines))


# -- registering ---------------------------------------------------------------------------


def register(chat: Chat, name: str, owner: str, by: str) -> Registration:
    """Register room `name` to account `owner`: `REGISTERED`, the owner's
    `ROLE` and the default flags' `FLAG`s to its members.

    Raises:
        ValueError: registered already.
    """
    assert chat.registry is not None
    with chat.rooms.changing:
        room = chat.rooms.find(name)
        registration = chat.registry.register(room.name if room is not None else name, owner)  # as created
        if room is not None:
            attach(room, registration)
        owner_nick = shown(chat, owner)
        lines = [
            protocol.format_line("REGISTERED", registration.name, owner_nick),
            protocol.format_line("ROLE", registration.name, owner_nick, "owner", by),
            *(protocol.format_line("FLAG", registration.name, flag, "on", by) for flag in sorted(registration.flags)),
        ]
        _announce(chat, registration, *lines)
    log.info("room_registered", room=registration.name, owner=owner_nick, by=by)
    return registration


def drop(chat: Chat, registration: Registration, by: str) -> bool:
    """The room is no longer registered: no owner, roles, flags, bans or
    invites; `REGISTERED <room> *` to its members. False if it was not."""
    assert chat.registry is not None
    with chat.rooms.changing:
        if not chat.registry.drop(registration):
            return False
        room = live_room(chat, registration)
        if room is not None:
            room.registration = None
        _announce(chat, registration, protocol.format_line("REGISTERED", registration.name, "*"))
    log.info("room_dropped", room=registration.name, by=by)
    return True


# -- roles and flags -----------------------------------------------------------------------


def set_role(chat: Chat, registration: Registration, account: str, role: str, by: str) -> None:
    """`account`'s role becomes `role` (voice, op or member): `ROLE` to the members."""
    assert chat.registry is not None
    with chat.rooms.changing:
        chat.registry.set_role(registration, account, role)
        nick = shown(chat, account)
        _announce(chat, registration, protocol.format_line("ROLE", registration.name, nick, role, by))
    log.info("room_role", room=registration.name, account=nick, role=role, by=by)


def hand_over(chat: Chat, registration: Registration, account: str, by: str) -> None:
    """`account` owns the room; the owner before it becomes an op."""
    assert chat.registry is not None
    with chat.rooms.changing:
        previous = chat.registry.set_owner(registration, account)
        lines = [protocol.format_line("ROLE", registration.name, shown(chat, account), "owner", by)]
        if previous != account:
            lines.append(protocol.format_line("ROLE", registration.name, shown(chat, previous), "op", by))
        _announce(chat, registration, *lines)
    log.info("room_role", room=registration.name, account=shown(chat, account), role="owner", by=by)
    if previous != account:
        log.info("room_role", room=registration.name, account=shown(chat, previous), role="op", by=by)


def set_flag(chat: Chat, registration: Registration, flag: str, on: bool, by: str) -> None:
    assert chat.registry is not None
    value = "on" if on else "off"
    with chat.rooms.changing:
        chat.registry.set_flag(registration, flag, on)
        _announce(chat, registration, protocol.format_line("FLAG", registration.name, flag, value, by))
    log.info("room_flag", room=registration.name, flag=flag, value=value, by=by)


# -- kicks, bans, invites ------------------------------------------------------------------


def kick(chat: Chat, room: Room, target: Client, by: str, reason: str, text: str) -> None:
    """Remove `target` from `room`: `KICK <room> <nick> <by> <reason> <text>`
    to the members, the kicked one included, once its own thread has taken
    it out. `reason`: `kicked` or `banned`."""
    line = protocol.format_line("KICK", room.name, target.nick, by, f"{reason} {text}".rstrip())
    target.remove_from(room, line)
    log.info("room_kick", room=room.name, nick=target.nick, reason=reason, text=text or None, by=by)


def present(chat: Chat, room: Room) -> list[Client]:
    """The room's members, as clients (with their accounts and addresses)."""
    found = []
    for member in room.members:
        client = chat.nicks.find(member.nick)
        if client is member:
            found.append(client)
    return found


def covered(chat: Chat, room: Room | None, mask: str) -> list[Client]:
    """The members of `room` a ban of `mask` covers."""
    if room is None:
        return []
    return [c for c in present(chat, room) if matches(mask, c.nick, c.account, c.peer_ip)]


def ban(chat: Chat, registration: Registration, mask: str, reason: str, by: str) -> tuple[RoomBan, int]:
    """Ban `mask` (as registry.parse_mask keeps it); every member it covers is
    removed (`KICK ... banned`). Returns the ban and how many were removed."""
    assert chat.registry is not None
    with chat.rooms.changing:
        added = chat.registry.add_ban(registration, mask, reason, by)
        room = live_room(chat, registration)
        removed = covered(chat, room, mask)
    log.info("room_ban", room=registration.name, mask=mask, reason=reason or None, by=by, removed=len(removed))
    if room is not None:
        for client in removed:
            kick(chat, room, client, by, "banned", reason)
    return added, len(removed)


def unban(chat: Chat, registration: Registration, mask: str, by: str) -> RoomBan | None:
    assert chat.registry is not None
    removed = chat.registry.remove_ban(registration, mask)
    if removed is not None:
        log.info("room_unban", room=registration.name, mask=mask, by=by)
    return removed


def bans_lines(chat: Chat, registration: Registration) -> list[bytes]:
    """`BAN <room> <mask> <by> <set> <reason>` per ban, then `BANS <room> <count>`."""
    clock = chat.history.clock
    lines = [
        protocol.format_line("BAN", registration.name, b.mask, b.by, clock.format(b.set_ms).decode(), b.reason)
        for b in registration.bans
    ]
    return [*lines, protocol.format_line("BANS", registration.name, str(len(lines)))]


def invite(chat: Chat, registration: Registration, target: Client, by: Client | None) -> None:
    """Let `target` join once within 24 h: `INVITE <room> <nick> <by>` to it,
    and echoed to the inviter (`by`; None: the operator)."""
    assert chat.registry is not None
    expires = chat.registry.invite(registration, target, by.nick if by is not None else "*")
    line = protocol.format_line("INVITE", registration.name, target.nick, by.nick if by is not None else "*")
    target.deliver(line)
    if by is not None and by is not target:
        by.deliver(line)
    log.info(
        "room_invite",
        room=registration.name,
        nick=target.nick,
        account=names.nick_key(target.nick) if target.account is not None else None,
        by=by.nick if by is not None else "*",
        expires_ms=expires,
    )
