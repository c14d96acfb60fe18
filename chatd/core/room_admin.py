"""The operator's side of registered rooms (`chatctl room ...` over the control
socket, chatd/room_operations.py): give a room an owner (the only way for
rooms of `rooms.permanent`), set any role or flag, ban and unban, drop a
registration, and list what there is. The operator is above every role: none
of the users' checks (core/room_commands.py) apply, so nobody can lock the
operator out of a room. Changes go through core/moderation.py as the users'
do, with `*` as the one who made them: the members see the same lines and
the log gets the same audit events.

Refusals raise `AdminError` (core/account_admin.py), whose text is for the operator.
"""

from __future__ import annotations

from chatd import names
from chatd.core import moderation
from chatd.core.account_admin import AdminError
from chatd.core.chat import Chat
from chatd.core.registry import FLAGS, ROLES, Registration, Registry, RoomBan, parse_mask
from chatd.errors import ProtocolError

OPERATOR = "*"  # how the operator is named in lines and audit events


class RoomAdmin:
    def __init__(self, chat: Chat) -> None:
        self.chat = chat

    def registrations(self) -> list[Registration]:
        return self._registry().all()

    def registration(self, room: str) -> Registration:
        registration = self._registry().find(self._room(room))
        if registration is None:
            raise AdminError(f"{room} is not registered (give it an owner: room owner {room} NAME)")
        return registration

    def set_owner(self, room: str, name: str) -> Registration:
        """`name` owns `room`: registered to it if it was not (any room, a
        permanent one too, whatever `limits.rooms_per_account` says), else
        handed over to it."""
        account = self._account(name)
        registration = self._registry().find(self._room(room))
        if registration is None:
            try:
                return moderation.register(self.chat, room, account, OPERATOR)
            except ValueError as exc:  # registered meanwhile
                raise AdminError(str(exc)) from None
        moderation.hand_over(self.chat, registration, account, OPERATOR)
        return registration

    def set_role(self, room: str, name: str, role: str) -> Registration:
        if role not in ROLES:
            raise AdminError(f"a role is one of {', '.join(reversed(ROLES))} (got {role!r})")
        registration = self.registration(room)
        if role == "owner":
            return self.set_owner(room, name)
        account = self._account(name)
        if registration.owner == account:
            raise AdminError(f"{name} owns {registration.name}: give it another owner first (room owner)")
        moderation.set_role(self.chat, registration, account, role, OPERATOR)
        return registration

    def set_flag(self, room: str, flag: str, value: str) -> Registration:
        if flag not in FLAGS:
            raise AdminError(f"a flag is one of {', '.join(FLAGS)} (got {flag!r})")
        if value not in ("on", "off"):
            raise AdminError(f"a flag is on or off (got {value!r})")
        registration = self.registration(room)
        if registration.has(flag) != (value == "on"):
            moderation.set_flag(self.chat, registration, flag, value == "on", OPERATOR)
        return registration

    def ban(self, room: str, mask: str, reason: str) -> tuple[RoomBan, int]:
        """Ban `mask` (members it covers are removed); the ban and how many were."""
        registration = self.registration(room)
        return moderation.ban(self.chat, registration, self._mask(mask), reason, OPERATOR)

    def unban(self, room: str, mask: str) -> RoomBan:
        registration = self.registration(room)
        removed = moderation.unban(self.chat, registration, self._mask(mask), OPERATOR)
        if removed is None:
            raise AdminError(f"{registration.name} has no ban of {mask} (see room bans {registration.name})")
        return removed

    def drop(self, room: str) -> Registration:
        registration = self.registration(room)
        moderation.drop(self.chat, registration, OPERATOR)
        return registration

    def name_of(self, account: str) -> str:
        return moderation.shown(self.chat, account)

    def members(self, registration: Registration) -> int:
        room = moderation.live_room(self.chat, registration)
        return len(room) if room is not None else 0

    # -- checks ----------------------------------------------------------------------------

    def _registry(self) -> Registry:
        if self.chat.registry is None:
            raise AdminError("this server has no accounts, so no room has an owner; set accounts.enabled: true")
        return self.chat.registry

    @staticmethod
    def _room(room: str) -> str:
        if not names.is_room_name(room):
            raise AdminError(f"{room!r} is not a room name: {names.ROOM_RULE}")
        return room

    def _account(self, name: str) -> str:
        account = self.chat.accounts.find(name) if self.chat.accounts is not None else None
        if account is None:
            raise AdminError(f"there is no account {name} (roles are for accounts; see user list)")
        return account.key

    def _mask(self, mask: str) -> str:
        try:
            return parse_mask(mask, self.chat.config.limits.max_nick_length)
        except ProtocolError as exc:
            raise AdminError(exc.text) from None
