"""Signing in: `/login`, `/register` and `/resume`, the answers to `NICK` that
name an account (docs/protocol.md "Accounts"), and what follows a password
check.

Each is a row of the command table (core/commands.py) usable before
registration. Checks that cost nothing come first, in this order: the
address's ban, the certificate's name (with `tls.nick_from_cert`), the
throttles (core/throttle.py); only then is a password handed to the hashing
threads (`Accounts.passwords`), and the session waits (`Registrant.wait`:
its further lines are held, in order) until the verdict comes back on its
own thread (`outlet.call_soon`). A refusal is `ERR <code>` then `NICK`
again, and counts towards `limits.max_nick_attempts` like a refused
nickname.

A sign-in whose account is already connected (or whose name a guest holds)
replaces that connection: it is closed with `BYE replaced`, those sharing a
room with it are told `LEAVE <nick> replaced`, and only once its nickname is
free does the new one get `WELCOME` (`Nicks.when_released`).

After `WELCOME`, all three answer `ERR already_registered`: a password pasted
at the wrong moment is never said in a room.

What is not here: the accounts and their tables (core/accounts.py), what a
signed-in client may do after (core/account_commands.py), hashing (chatd/auth.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog

from chatd import names
from chatd.config_accounts import PASSWORD_MAX_BYTES, AccountsConfig
from chatd.core import protocol
from chatd.core.accounts import Account, Accounts, Invite, Verdict
from chatd.core.chat import Chat
from chatd.core.protocol import Command
from chatd.errors import ProtocolError
from chatd.outlet import Outlet

log = structlog.get_logger(__name__)


class Registrant(Protocol):
    """What signing in uses of the session (chatd.core.session.Session)."""

    chat: Chat
    outlet: Outlet
    context: dict[str, object]
    nick: str  # "" until registered
    peer: str
    connected_at: float  # time.time()
    account: str | None
    token: str | None
    method: str
    cert_nick: str | None  # the certificate's name, with tls.nick_from_cert

    @property
    def closed(self) -> bool: ...

    @property
    def peer_ip(self) -> str:
        """Its address."""

    @property
    def source(self) -> str:
        """What the throttles count its address as."""

    def wait(self) -> None:
        """Hold further lines until `go_on` (a password is being checked)."""

    def go_on(self) -> None:
        """Handle the held lines, unless the session has ended or waits again."""

    def refuse(self, error: ProtocolError) -> None:
        """`ERR`, then `NICK` again (or `BYE nick_failed` after too many)."""

    def admit(self, nick: str) -> None:
        """Claim `nick`: `WELCOME`, then the autojoin rooms.

        Raises:
            ProtocolError: `nick_taken`.
        """

    def close(self, reason: str, text: str = "") -> None: ...


def accounts_of(caller: Registrant) -> Accounts:
    """The accounts, for a line that answers `NICK`.

    Raises:
        ProtocolError: `already_registered` after `WELCOME`; `nick_invalid` on a
        server without accounts (the line is then a nickname, as in v3).
    """
    if caller.nick:
        raise ProtocolError(protocol.ALREADY_REGISTERED, f"You are already signed in as {caller.nick}.")
    accounts = caller.chat.accounts
    if accounts is None:
        raise ProtocolError(protocol.NICK_INVALID, "This server has no accounts; send a nickname.")
    return accounts


def check_password(password: str, config: AccountsConfig) -> None:
    """Raises `password_invalid` for a password too short or too long."""
    if len(password) < config.password_min_length or len(password.encode()) > PASSWORD_MAX_BYTES:
        raise ProtocolError(
            protocol.PASSWORD_INVALID,
            f"Passwords are {config.password_min_length} characters to {PASSWORD_MAX_BYTES} bytes long.",
        )


# -- /login --------------------------------------------------------------------------------


def login(caller: Registrant, command: Command) -> None:
    check_login(
        caller, command.target, command.text.decode(), lambda account: sign_in(caller, account, "password", None)
    )


def check_login(caller: Registrant, name: str, password: str, then: Callable[[Account], None]) -> None:
    """`/login`'s checks, then the password's on the hashing threads; `then`
    with the account, on the session's thread, if it is right (IRC's SASL
    PLAIN keeps it until the client registers: core/sasl.py).

    Raises:
        ProtocolError: what is refused at once (throttled, busy, unknown ...).
    """
    accounts = accounts_of(caller)
    _check_certificate(caller, name)
    if _banned(caller, accounts, "password", name):
        return
    key = names.nick_key(name)
    now = caller.chat.monotonic()
    _check_throttles(caller, accounts, "password", name, accounts.throttles.wait(caller.source, key, now))
    accounts.throttles.attempt(caller.source, key, now)
    account = accounts.find(name)
    if account is None:
        # Account names are not secret (a guest is told `nick_registered`), so an
        # unknown one is answered at once, with the code of a wrong password.
        _failed(caller, accounts, "password", name, "unknown_account")
        raise _auth_failed()

    def done(verdict: Verdict) -> None:  # on a hashing thread
        caller.outlet.call_soon(lambda: _checked(caller, accounts, account, verdict, then))

    if not accounts.passwords.verify(account.password, password, done):
        accounts.throttles.succeeded(caller.source, key, now)  # never ran: it leaves its place
        raise _busy(caller, accounts, "password", name)
    caller.wait()


def _checked(
    caller: Registrant, accounts: Accounts, account: Account, verdict: Verdict, then: Callable[[Account], None]
) -> None:
    """A password check's verdict, on the session's thread."""
    if not verdict.ok:
        _failed(caller, accounts, "password", account.name, "wrong_password")
        _refuse(caller, _auth_failed())
        return
    accounts.throttles.succeeded(caller.source, account.key, caller.chat.monotonic())
    if verdict.rehashed is not None and accounts.find(account.name) is not None:
        accounts.update(account.key, password=verdict.rehashed)
        log.info("password_rehashed", **caller.context, account=account.name)
    current = accounts.find(account.name)  # disabled or deleted meanwhile?
    if current is None:
        _failed(caller, accounts, "password", account.name, "unknown_account")
        _refuse(caller, _auth_failed())
    elif current.disabled is not None:
        _refuse(caller, _disabled(caller, accounts, "password", current))
    elif not caller.closed:
        then(current)


# -- /register -----------------------------------------------------------------------------


def register(caller: Registrant, command: Command) -> None:
    accounts = accounts_of(caller)
    config, chat = accounts.config, caller.chat
    name, code, password = command.target, command.option, command.text.decode()
    protocol.check_nick(name, chat.config.limits.max_nick_length)
    _check_certificate(caller, name)
    if _banned(caller, accounts, "register", name):
        return
    if config.registration == "closed":
        raise ProtocolError(protocol.REGISTRATION_CLOSED, "Only the operator creates accounts on this server.")
    if config.registration == "invite" and code == "*":
        raise ProtocolError(protocol.REGISTRATION_CLOSED, "This server registers by invitation: give your invite code.")
    check_password(password, config)
    now = chat.monotonic()
    throttles = accounts.throttles
    wait = throttles.addresses.wait(caller.source, now)
    if not wait and config.registration == "open":
        wait = throttles.registration_wait(caller.source, now)
    _check_throttles(caller, accounts, "register", name, wait)
    if accounts.is_registered(name) or chat.nicks.find(name) is not None:
        raise ProtocolError(protocol.NICK_TAKEN, f"The name {name} is taken; try another.")
    invite = None
    if config.registration == "invite":
        invite = accounts.take_invite(code)
        if invite is None:
            throttles.addresses.attempt(caller.source, now)
            throttles.addresses.failed(caller.source, now)  # codes are not guessed for free
            _log_failure(caller, accounts, "register", name, "invite_invalid")
            raise ProtocolError(protocol.INVITE_INVALID, "That invite code is unknown, used up or expired.")
    elif config.registration == "open":
        throttles.registered(caller.source, now)
    if not accounts.reserve(name):
        _give_back(accounts, name, invite, reserved=False)
        raise ProtocolError(protocol.NICK_TAKEN, f"The name {name} is taken; try another.")

    def done(hashed: str) -> None:  # on a hashing thread
        caller.outlet.call_soon(lambda: _registered(caller, accounts, name, invite, hashed))

    if not accounts.passwords.hash(password, done):
        _give_back(accounts, name, invite)
        raise _busy(caller, accounts, "register", name)
    caller.wait()


def _registered(caller: Registrant, accounts: Accounts, name: str, invite: Invite | None, hashed: str) -> None:
    if caller.closed or not hashed:  # gone before its account was made, or the hash failed: nothing happened
        _give_back(accounts, name, invite)
        if not caller.closed:
            _refuse(caller, ProtocolError(protocol.AUTH_BUSY, "The password could not be hashed; try again."))
        return
    account = accounts.create(name, hashed)
    log.info("account_registered", **caller.context, account=name, invite=invite.id if invite else None)
    if invite is not None:
        log.info("invite_used", **caller.context, invite=invite.id, uses_left=invite.uses, account=name)
    sign_in(caller, account, "register", None)


def _give_back(accounts: Accounts, name: str, invite: Invite | None, reserved: bool = True) -> None:
    if reserved:
        accounts.unreserve(name)
    if invite is not None:
        accounts.return_invite(invite)


# -- /resume -------------------------------------------------------------------------------


def resume(caller: Registrant, command: Command) -> None:
    """A token from `/remember`: no password, no hash, never throttled."""
    accounts = accounts_of(caller)
    if _banned(caller, accounts, "token", ""):
        return
    found = accounts.resume(command.target)
    if found is None:
        _failed(caller, accounts, "token", "", "token_invalid", throttle=False)
        raise ProtocolError(protocol.TOKEN_INVALID, "That token is unknown, expired or revoked; sign in again.")
    account, token = found
    _check_certificate(caller, account.name)
    if account.disabled is not None:
        raise _disabled(caller, accounts, "token", account)
    sign_in(caller, account, "token", token.hash)


# -- signed in -----------------------------------------------------------------------------


def sign_in(caller: Registrant, account: Account, method: str, token: str | None) -> None:
    """Register `caller` as `account`, replacing the connection that holds its
    name first, if any (then this waits, and comes back when the name is free)."""
    chat, accounts = caller.chat, chat_accounts(caller)
    holder = chat.nicks.find(account.name)
    if holder is not None:  # never the caller: it is not registered yet

        def free() -> None:  # on the thread that released the name
            caller.outlet.call_soon(lambda: _retry(caller, account, method, token))

        if chat.nicks.when_released(account.name, free):
            log.info("session_replaced", **caller.context, account=account.name, replaced=holder.peer)
            holder.close("replaced")
            caller.wait()
            return
    caller.account, caller.token, caller.method = account.key, token, method
    try:
        caller.admit(account.name)
    except ProtocolError:  # taken again meanwhile (another sign-in): replace that one
        caller.account = caller.token = None
        caller.wait()
        _retry(caller, account, method, token)
        return
    accounts.signed_in(caller)
    accounts.count(method, "success")
    log.info("login_succeeded", **caller.context, account=account.name, method=method)
    caller.go_on()


def sign_in_proven(caller: Registrant, account: Account, method: str) -> None:
    """Sign in to `account`, which was proven earlier (IRC's SASL, when its
    client registers), unless it was deleted or disabled meanwhile."""
    _retry(caller, account, method, None)


def _retry(caller: Registrant, account: Account, method: str, token: str | None) -> None:
    if caller.closed:
        return
    current = chat_accounts(caller).find(account.name)
    if current is None:  # deleted while we waited
        _refuse(caller, _auth_failed())
        return
    if current.disabled is not None:
        _refuse(caller, _disabled(caller, chat_accounts(caller), method, current))
        return
    sign_in(caller, current, method, token)


def chat_accounts(caller: Registrant) -> Accounts:
    accounts = caller.chat.accounts
    assert accounts is not None, "signing in on a server without accounts"
    return accounts


# -- refusals ------------------------------------------------------------------------------


def _refuse(caller: Registrant, error: ProtocolError) -> None:
    """A refusal that comes after a wait: then the held lines."""
    if caller.closed:
        return
    caller.refuse(error)
    caller.go_on()


def _check_certificate(caller: Registrant, name: str) -> None:
    cert = caller.cert_nick
    if caller.chat.config.tls.nick_from_cert and names.nick_key(name) != names.nick_key(cert or ""):
        raise ProtocolError(protocol.NICK_INVALID, f"Your certificate allows only the account {cert}.")


def _banned(caller: Registrant, accounts: Accounts, method: str, name: str) -> bool:
    """An address banned since it connected: `ERR banned`, then `BYE banned`."""
    ban = accounts.banned(caller.peer_ip)
    if ban is None:
        return False
    accounts.count(method, "banned")
    log.info("login_failed", **caller.context, account=name or None, method=method, reason="banned")
    caller.outlet.deliver(protocol.format_error(ProtocolError(protocol.BANNED, ban_text(ban.reason))))
    caller.close(protocol.BANNED)
    return True


def ban_text(reason: str) -> str:
    return "Your address is banned from this server" + (f": {reason}" if reason else ".")


def _check_throttles(caller: Registrant, accounts: Accounts, method: str, name: str, wait: float) -> None:
    if wait <= 0:
        return
    accounts.count(method, "throttled")
    seconds = max(1, round(wait))
    log.info("auth_throttled", **caller.context, account=name or None, method=method, retry_after_s=seconds)
    raise ProtocolError(
        protocol.AUTH_THROTTLED,
        f"Too many failed sign-ins from your address or for this account; try again in {seconds} s.",
    )


def _failed(caller: Registrant, accounts: Accounts, method: str, name: str, reason: str, throttle: bool = True) -> None:
    """A failed sign-in: counted by the throttles (a lockout is logged), the metrics and the log."""
    if throttle:
        locked = accounts.throttles.failed(caller.source, names.nick_key(name), caller.chat.monotonic())
        if locked:
            log.info("auth_throttled", **caller.context, account=name or None, method=method, lockout=True)
    _log_failure(caller, accounts, method, name, reason)


def _log_failure(caller: Registrant, accounts: Accounts, method: str, name: str, reason: str) -> None:
    accounts.count(method, "failure")
    log.info("login_failed", **caller.context, account=name or None, method=method, reason=reason)


def _auth_failed() -> ProtocolError:
    return ProtocolError(protocol.AUTH_FAILED, "Wrong account name or password.")


def _busy(caller: Registrant, accounts: Accounts, method: str, name: str) -> ProtocolError:
    accounts.count(method, "busy")
    log.info("auth_busy", **caller.context, account=name or None, method=method)
    return ProtocolError(protocol.AUTH_BUSY, "The server is checking too many passwords; try again in a few seconds.")


def _disabled(caller: Registrant, accounts: Accounts, method: str, account: Account) -> ProtocolError:
    accounts.count(method, "disabled")
    log.info("login_failed", **caller.context, account=account.name, method=method, reason="account_disabled")
    reason = account.disabled or ""
    return ProtocolError(
        protocol.ACCOUNT_DISABLED, "An operator disabled this account" + (f": {reason}" if reason else ".")
    )
