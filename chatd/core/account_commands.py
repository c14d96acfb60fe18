"""What a signed-in client may do with its account after `WELCOME`:
`/remember [days]` (a token, shown once), `/passwd <new password>`,
`/logout [all]` (docs/protocol.md "Accounts"). Rows of the command table
(core/commands.py); signing in is core/signin.py's.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from chatd.core import protocol
from chatd.core.accounts import Accounts
from chatd.core.chat import Chat
from chatd.core.protocol import Command
from chatd.core.signin import check_password
from chatd.errors import ProtocolError
from chatd.outlet import Outlet

log = structlog.get_logger(__name__)


class Holder(Protocol):
    """What these commands use of the session (chatd.core.session.Session)."""

    chat: Chat
    outlet: Outlet
    context: dict[str, object]
    nick: str
    account: str | None  # the account's key, when signed in
    token: str | None  # the hash of the token it resumed with
    method: str

    def close(self, reason: str, text: str = "") -> None: ...


def remember(caller: Holder, command: Command) -> None:
    """`TOKEN <token> <expires>`: a new token for this account."""
    accounts, key = _signed_in(caller)
    config = accounts.config
    days = config.token_days
    if word := command.text.strip():
        if not word.isdigit() or not 1 <= int(word) <= config.token_days_max:
            raise ProtocolError(protocol.BAD_ARGUMENT, f"A token lasts 1-{config.token_days_max} days.")
        days = int(word)
    plain, token = accounts.issue_token(key, days)
    if caller.method != "token":
        # Signed in with a password: this connection now holds the token it asked
        # for, so its /logout revokes it (a page's "Sign out" right after signing in).
        caller.token = token.hash
    expires = caller.chat.history.clock.format(token.expires_ms).decode()
    log.info("token_issued", **caller.context, account=caller.nick, token_id=token.hash[:12], days=days)
    caller.outlet.deliver(protocol.format_line("TOKEN", plain, expires))


def passwd(caller: Holder, command: Command) -> None:
    """A new password (the rest of the line), on a connection that proved the old one."""
    accounts, key = _signed_in(caller)
    if caller.method not in ("password", "register"):
        raise ProtocolError(
            protocol.REAUTH_REQUIRED,
            "You signed in with a token; sign in with your password (/login) to change it.",
        )
    password = command.text.decode()
    check_password(password, accounts.config)
    outlet, context, nick = caller.outlet, caller.context, caller.nick

    def done(hashed: str) -> None:  # on a hashing thread
        outlet.call_soon(lambda: _changed(accounts, key, hashed, outlet, context, nick))

    if not accounts.passwords.hash(password, done):
        raise ProtocolError(
            protocol.AUTH_BUSY, "The server is checking too many passwords; try /passwd again in a few seconds."
        )


def _changed(accounts: Accounts, key: str, hashed: str, outlet: Outlet, context: dict[str, object], nick: str) -> None:
    """The new hash, on the session's thread: stored (even if the client has
    gone meanwhile: it asked), and every token of the account revoked."""
    if accounts.find(nick) is None:
        return  # deleted meanwhile
    if not hashed:  # the hashing failed (its log says why)
        outlet.deliver(protocol.format_line("INFO", "Your password could not be changed; try /passwd again."))
        return
    accounts.update(key, password=hashed)
    revoked = accounts.revoke_tokens(key)
    log.info("password_changed", **context, account=nick, by="user", tokens_revoked=len(revoked))
    text = "Your password is changed" + (f"; {len(revoked)} sign-in token(s) revoked." if revoked else ".")
    outlet.deliver(protocol.format_line("INFO", text))


def logout(caller: Holder, command: Command) -> None:
    """Revoke this connection's token (or every token, with `all`), then `BYE logout`."""
    accounts, key = _signed_in(caller)
    every = command.text.strip() == b"all"
    if not every and command.text.strip():
        raise ProtocolError(protocol.BAD_ARGUMENT, "Usage: /logout [all]")
    if every:
        revoked = accounts.revoke_tokens(key)
    else:
        revoked = accounts.revoke_tokens(key, [caller.token]) if caller.token else []
    for token in revoked:
        log.info("token_revoked", **caller.context, account=caller.nick, token_id=token.hash[:12], by="user")
    caller.token = None
    caller.close("logout")


def _signed_in(caller: Holder) -> tuple[Accounts, str]:
    accounts = caller.chat.accounts
    if accounts is None or caller.account is None:
        raise ProtocolError(protocol.NOT_LOGGED_IN, "You are a guest; sign in to an account first.")
    return accounts, caller.account
