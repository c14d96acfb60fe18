"""The operator's side of the accounts: create, change, disable, delete, list,
see and revoke sign-ins, invites and bans, as methods on the accounts
(`AccountAdmin(accounts)`), with the audit events each writes. The control
socket's commands call these (chatd/account_operations.py), on the control
thread.

Passwords come as argon2id hash strings only (chatctl hashes them): the
plaintext never reaches the daemon through here. Closing what a change
affects is part of the change: a disabled account's connection gets
`BYE banned <reason>`, a deleted one's, or one whose token is revoked or
whose password the operator replaced, `BYE kicked <text>`.

Refusals raise `AdminError`, whose text is for the operator.
"""

from __future__ import annotations

import structlog

from chatd import names
from chatd.core.accounts import Account, Accounts, Invite, SignedIn, Token
from chatd.core.bans import Ban, parse_network

log = structlog.get_logger(__name__)


class AdminError(Exception):
    """An operator's request that cannot be done; the text says why."""


class AccountAdmin:
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    # -- users -----------------------------------------------------------------------------

    def add_user(self, name: str, password_hash: str, max_nick_length: int) -> Account:
        if not names.is_nick(name, max_nick_length):
            rule = names.NICK_RULE.format(max_length=max_nick_length)
            raise AdminError(f"{name!r} is not a nickname: account names are nicknames, {rule}")
        try:
            account = self.accounts.create(name, password_hash, revive=True)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        log.info("account_registered", account=account.name, by="operator")
        return account

    def set_password(self, name: str, password_hash: str) -> list[Token]:
        """A new password; every token revoked and the connection closed (it
        may be whoever the operator is locking out)."""
        account = self.user(name)
        self.accounts.update(account.key, password=password_hash)
        revoked = self.accounts.revoke_tokens(account.key)
        log.info("password_changed", account=account.name, by="operator", tokens_revoked=len(revoked))
        self._close(account, "kicked", "an operator changed your password; sign in again")
        return revoked

    def disable(self, name: str, reason: str) -> Account:
        account = self.accounts.update(self.user(name).key, disabled=reason)
        log.info("account_disabled", account=account.name, reason=reason)
        self._close(account, "banned", reason or "an operator disabled this account")
        return account

    def enable(self, name: str) -> Account:
        account = self.accounts.update(self.user(name).key, disabled=None)
        log.info("account_enabled", account=account.name)
        return account

    def delete(self, name: str) -> Account:
        """Gone, its tokens with it; the name stays reserved (`add_user` can give it out again)."""
        account = self.user(name)
        self.accounts.revoke_tokens(account.key)
        account = self.accounts.update(account.key, deleted=True, password="", disabled=None)
        log.info("account_deleted", account=account.name)
        self._close(account, "kicked", "an operator deleted this account")
        return account

    def users(self) -> list[Account]:
        return [account for account in self.accounts.all() if not account.deleted]

    def sessions(self, name: str) -> tuple[SignedIn | None, list[Token]]:
        """Its connection (one at most), and its tokens."""
        account = self.user(name)
        return self.accounts.online(account.key), self.accounts.tokens(account.key)

    def revoke(self, name: str, token_id: str) -> list[Token]:
        """Revoke the account's tokens whose hash starts with `token_id` (every
        token when it is ""); the connection that signed in with one is closed."""
        account = self.user(name)
        if token_id and len(token_id) < 8:
            raise AdminError("a token id is at least 8 characters of the id `user sessions` shows")
        hashes = [t.hash for t in self.accounts.tokens(account.key) if t.hash.startswith(token_id)]
        if token_id and not hashes:
            raise AdminError(f"{account.name} has no token {token_id}")
        revoked = self.accounts.revoke_tokens(account.key, hashes)
        for token in revoked:
            log.info("token_revoked", account=account.name, token_id=token.hash[:12], by="operator")
        online = self.accounts.online(account.key)
        if online is not None and online.token in hashes:
            online.close("kicked", "an operator revoked your sign-in token")
        return revoked

    def user(self, name: str) -> Account:
        account = self.accounts.find(name)
        if account is None:
            raise AdminError(f"there is no account {name}")
        return account

    def _close(self, account: Account, reason: str, text: str) -> None:
        online = self.accounts.online(account.key)
        if online is not None:
            online.close(reason, text)

    # -- invites ---------------------------------------------------------------------------

    def create_invite(self, uses: int, expires_ms: int | None, note: str) -> tuple[str, Invite]:
        if uses < 1:
            raise AdminError("an invite is good for at least 1 use")
        code, invite = self.accounts.new_invite(uses, expires_ms, note)
        log.info("invite_created", invite=invite.id, uses=uses, expires_ms=expires_ms, note=note or None)
        return code, invite

    def revoke_invite(self, invite_id: int) -> Invite:
        invite = self.accounts.revoke_invite(invite_id)
        if invite is None:
            raise AdminError(f"there is no invite {invite_id}")
        log.info("invite_revoked", invite=invite_id)
        return invite

    # -- bans ------------------------------------------------------------------------------

    def add_ban(self, network: str, expires_ms: int | None, reason: str) -> Ban:
        """Ban an address or a network; closing what it covers is the caller's
        (the server knows every connection, not only signed-in ones)."""
        try:
            parsed = parse_network(network)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        ban = Ban(str(parsed), reason, self.accounts.now_ms(), expires_ms)
        self.accounts.put_ban(ban)
        log.info("ban_added", network=ban.network, reason=reason or None, expires_ms=expires_ms)
        return ban

    def remove_ban(self, network: str) -> Ban:
        try:
            removed = self.accounts.remove_ban(network)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        if removed is None:
            raise AdminError(f"there is no ban of exactly {network} (see `ban list`)")
        log.info("ban_removed", network=removed.network)
        return removed

    def bans(self) -> list[Ban]:
        return self.accounts.bans.all(self.accounts.now_ms())
