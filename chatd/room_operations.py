"""The control socket's room commands (chatd/control.py parses them): registered
rooms, their owners, roles, flags and bans, each a method of `RoomAdmin`
(chatd/core/room_admin.py) turned into a JSON result, answered once the
change is on disk.

`perform(command, fields)` is what control.py calls, as for the account
commands (chatd/account_operations.py); control.py's docstring and
docs/operations.md ("Room roles") describe each request and reply.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Final

from chatd.account_operations import OperatorError
from chatd.core.account_admin import AdminError
from chatd.core.chat import Chat
from chatd.core.registry import FLAGS, RANK, Registration, RoomBan
from chatd.core.room_admin import RoomAdmin

SYNC_TIMEOUT: Final = 10.0  # seconds a change may take to reach the disk before the reply says so


class RoomOperations:
    """chatd/control.py's room `AccountOperator` (the same `perform`)."""

    def __init__(self, chat: Chat) -> None:
        self.admin = RoomAdmin(chat)
        self.chat = chat
        admin = self.admin
        self._commands: dict[str, Callable[[dict[str, object]], object]] = {
            "room_list": lambda f: [self._summary(r) for r in admin.registrations()],
            "room_show": lambda f: self._room(admin.registration(_s(f, "room"))),
            "room_owner": lambda f: self._room(admin.set_owner(_s(f, "room"), _s(f, "name"))),
            "room_roles": lambda f: self._roles(admin.registration(_s(f, "room"))),
            "room_role": lambda f: self._room(admin.set_role(_s(f, "room"), _s(f, "name"), _s(f, "role"))),
            "room_flag": lambda f: self._room(admin.set_flag(_s(f, "room"), _s(f, "flag"), _s(f, "value"))),
            "room_ban": self._ban,
            "room_unban": lambda f: _ban(admin.unban(_s(f, "room"), _s(f, "mask"))),
            "room_bans": lambda f: [_ban(b) for b in admin.registration(_s(f, "room")).bans],
            "room_drop": lambda f: {"room": admin.drop(_s(f, "room")).name, "dropped": True},
        }

    def perform(self, command: str, fields: dict[str, object]) -> object:
        """Raises:
        OperatorError: refused, or not written in time.
        """
        try:
            result = self._commands[command](fields)
        except AdminError as exc:
            raise OperatorError(str(exc)) from None
        registry = self.chat.registry
        if registry is not None and not registry.store.sync(SYNC_TIMEOUT):
            raise OperatorError("done in memory, but not yet written to the database (its log says why)")
        return result

    def _ban(self, fields: dict[str, object]) -> object:
        ban, removed = self.admin.ban(_s(fields, "room"), _s(fields, "mask"), _s(fields, "reason"))
        return {**_ban(ban), "removed": removed}

    def _summary(self, registration: Registration) -> dict[str, object]:
        return {
            "room": registration.name,
            "owner": self.admin.name_of(registration.owner),
            "flags": [flag for flag in FLAGS if registration.has(flag)],
            "members": self.admin.members(registration),
        }

    def _roles(self, registration: Registration) -> list[dict[str, object]]:
        held = sorted(dict(registration.roles).items(), key=lambda item: (-RANK[item[1]], item[0]))
        return [{"name": self.admin.name_of(account), "role": role} for account, role in held]

    def _room(self, registration: Registration) -> dict[str, object]:
        """`room show`: the summary, then the roles and the bans."""
        return {
            **self._summary(registration),
            "created": _iso(registration.created_ms),
            "topic": registration.topic,
            "roles": self._roles(registration),
            "bans": [_ban(ban) for ban in registration.bans],
        }


def _s(fields: dict[str, object], name: str) -> str:
    value = fields.get(name)
    return value if isinstance(value, str) else ""


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(timespec="seconds")


def _ban(ban: RoomBan) -> dict[str, object]:
    return {"mask": ban.mask, "reason": ban.reason, "by": ban.by, "set": _iso(ban.set_ms)}
