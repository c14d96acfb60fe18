"""The control socket's account commands (chatd/control.py parses them): users,
invites and bans, each a method of `AccountAdmin` (chatd/core/account_admin.py)
turned into a JSON result, answered once the change is on disk.

`perform(command, fields)` is what control.py calls; chatd/control.py's
docstring and docs/operations.md describe each request and reply. What is
refused is an `OperatorError` whose text the operator reads.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Final, Protocol

from chatd.core.account_admin import AccountAdmin, AdminError
from chatd.core.accounts import Account, Accounts, Invite, Token
from chatd.core.bans import Ban
from chatd.passwords import is_argon2id

SYNC_TIMEOUT: Final = 10.0  # seconds a change may take to reach the disk before the reply says so


class OperatorError(Exception):
    """A refused request; the text is for the operator (chatd/control.py answers it)."""

    refusal = True


class Network(Protocol):
    """What a ban needs of the server (chatd.server.Server)."""

    def close_from(self, network: str, reason: str, text: str) -> int: ...


class AccountOperations:
    """chatd/control.py's `AccountOperator`."""

    def __init__(self, accounts: Accounts, server: Network, max_nick_length: Callable[[], int]) -> None:
        self.admin = AccountAdmin(accounts)
        self.accounts = accounts
        self.server = server
        self._max_nick_length = max_nick_length
        self._commands: dict[str, Callable[[dict[str, object]], object]] = {
            "user_add": self._user_add,
            "user_passwd": self._user_passwd,
            "user_disable": lambda f: _account(self.admin.disable(_s(f, "name"), _s(f, "reason"))),
            "user_enable": lambda f: _account(self.admin.enable(_s(f, "name"))),
            "user_delete": lambda f: _account(self.admin.delete(_s(f, "name"))),
            "user_list": lambda f: [_account(a) for a in self.admin.users()],
            "user_sessions": self._user_sessions,
            "user_revoke": lambda f: {"revoked": len(self.admin.revoke(_s(f, "name"), _s(f, "token")))},
            "invite_create": self._invite_create,
            "invite_list": lambda f: [_invite(i) for i in self.accounts.invites()],
            "invite_revoke": lambda f: _invite(self.admin.revoke_invite(_i(f, "id"))),
            "ban_add": self._ban_add,
            "ban_list": lambda f: [_ban(b) for b in self.admin.bans()],
            "ban_remove": lambda f: _ban(self.admin.remove_ban(_s(f, "network"))),
        }

    def perform(self, command: str, fields: dict[str, object]) -> object:
        """Raises:
        OperatorError: refused, or not written in time.
        """
        try:
            result = self._commands[command](fields)
        except AdminError as exc:
            raise OperatorError(str(exc)) from None
        if not self.accounts.store.sync(SYNC_TIMEOUT):
            raise OperatorError("done in memory, but not yet written to the database (its log says why)")
        return result

    def _user_add(self, fields: dict[str, object]) -> object:
        account = self.admin.add_user(_s(fields, "name"), _hash(fields), self._max_nick_length())
        return _account(account)

    def _user_passwd(self, fields: dict[str, object]) -> object:
        revoked = self.admin.set_password(_s(fields, "name"), _hash(fields))
        return {"name": self.admin.user(_s(fields, "name")).name, "tokens_revoked": len(revoked)}

    def _user_sessions(self, fields: dict[str, object]) -> object:
        online, tokens = self.admin.sessions(_s(fields, "name"))
        connection = None
        if online is not None:
            connection = {"nick": online.nick, "peer": online.peer, "since": _iso_s(online.connected_at)}
            connection |= {"method": online.method, "token": online.token[:12] if online.token else None}
        return {"connection": connection, "tokens": [_token(t) for t in tokens]}

    def _invite_create(self, fields: dict[str, object]) -> object:
        uses = _i(fields, "uses") or 1
        expires_s = _i(fields, "expires_s")
        expires_ms = self.accounts.now_ms() + expires_s * 1000 if expires_s else None
        code, invite = self.admin.create_invite(uses, expires_ms, _s(fields, "note"))
        return {"code": code, **_invite(invite)}

    def _ban_add(self, fields: dict[str, object]) -> object:
        for_s = _i(fields, "for_s")
        expires_ms = self.accounts.now_ms() + for_s * 1000 if for_s else None
        ban = self.admin.add_ban(_s(fields, "network"), expires_ms, _s(fields, "reason"))
        closed = self.server.close_from(ban.network, "banned", ban.reason)
        return {**_ban(ban), "closed": closed}


def _s(fields: dict[str, object], name: str) -> str:
    value = fields.get(name)
    return value if isinstance(value, str) else ""


def _i(fields: dict[str, object], name: str) -> int:
    value = fields.get(name)
    return value if isinstance(value, int) else 0


def _hash(fields: dict[str, object]) -> str:
    text = _s(fields, "password_hash")
    if not is_argon2id(text):
        raise OperatorError(
            "password_hash must be an argon2id hash string ($argon2id$v=19$m=...,t=...,p=...$salt$hash); "
            "chatctl makes one from the password, which never crosses the socket"
        )
    return text


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(timespec="seconds")


def _iso_s(seconds: float) -> str | None:
    return _iso(int(seconds * 1000))


def _account(account: Account) -> dict[str, object]:
    return {
        "name": account.name,
        "created": _iso(account.created_ms),
        "disabled": account.disabled is not None,
        "reason": account.disabled,
        "deleted": account.deleted,
    }


def _token(token: Token) -> dict[str, object]:
    return {
        "id": token.hash[:12],
        "created": _iso(token.created_ms),
        "expires": _iso(token.expires_ms),
        "last_used": _iso(token.last_used_ms),
    }


def _invite(invite: Invite) -> dict[str, object]:
    return {
        "id": invite.id,
        "uses_left": invite.uses,
        "used": invite.used,
        "created": _iso(invite.created_ms),
        "expires": _iso(invite.expires_ms),
        "note": invite.note,
    }


def _ban(ban: Ban) -> dict[str, object]:
    return {
        "network": ban.network,
        "reason": ban.reason,
        "created": _iso(ban.created_ms),
        "expires": _iso(ban.expires_ms),
    }
