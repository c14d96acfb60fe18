"""IRC's SASL (docs/irc.md, "Accounts"): the "sasl" row of the command table,
which only the IRC codec reaches (its `AUTHENTICATE`; the line protocol's
grammar has no form for it).

SASL proves who a client is *before* it registers, and registration comes
later (NICK, USER, CAP END), so what is proven is kept on the session
(`proven`) until then:

- PLAIN is `/login` (core/signin.py `check_login`: the same ban, certificate
  and throttle checks, the same password check on the hashing threads, the
  same refusals); a right password is answered `PROVEN <account>`, and when
  the client registers it signs in as that account (`register_proven`:
  `signin.sign_in_proven`, replacing the account's other connection as any
  sign-in does). The nickname it sent is not used: an account's name is its
  nickname.
- EXTERNAL is the client certificate's name, where `tls.nick_from_cert`
  makes it the client's name anyway: `PROVEN <name>` at once, and the
  registration that follows uses that name, as a nickname line would.

A refusal is what `/login` gets: `ERR <code>` (then `NICK`, which the IRC
codec does not show), counted towards `limits.max_nick_attempts`.
"""

from __future__ import annotations

from typing import Protocol

from chatd import names
from chatd.core import protocol, signin
from chatd.core.accounts import Account
from chatd.core.protocol import Command
from chatd.core.signin import Registrant
from chatd.errors import ProtocolError


class Prover(Registrant, Protocol):
    """What SASL uses of the session (chatd.core.session.Session)."""

    proven: Account | None  # what SASL PLAIN proved, until the client registers


def sasl(caller: Prover, command: Command) -> None:
    """`Command("sasl", password, authcid, "PLAIN")` or
    `Command("sasl", target=authzid, option="EXTERNAL")`.

    Raises:
        ProtocolError: as `/login` (PLAIN); `auth_failed` (EXTERNAL without a
        certificate that proves a name, or for another name).
    """
    if command.option == "EXTERNAL":
        _external(caller, command.target)
        return
    signin.check_login(caller, command.target, command.text.decode(), lambda account: _proven(caller, account))


def _proven(caller: Prover, account: Account) -> None:
    """A right password (on the session's thread): kept until registration."""
    caller.proven = account
    caller.outlet.deliver(protocol.format_line("PROVEN", account.name))
    caller.go_on()


def _external(caller: Prover, authzid: str) -> None:
    if caller.nick:
        raise ProtocolError(protocol.ALREADY_REGISTERED, f"You are already signed in as {caller.nick}.")
    cert = caller.cert_nick
    if not caller.chat.config.tls.nick_from_cert or cert is None:
        raise ProtocolError(protocol.AUTH_FAILED, "No client certificate proves a name on this server.")
    if authzid and names.nick_key(authzid) != names.nick_key(cert):
        raise ProtocolError(protocol.AUTH_FAILED, f"Your certificate proves only the name {cert}.")
    caller.outlet.deliver(protocol.format_line("PROVEN", cert))


def register_proven(caller: Prover) -> None:
    """The client SASL PLAIN proved registers: it signs in as that account."""
    account, caller.proven = caller.proven, None
    assert account is not None
    signin.sign_in_proven(caller, account, "password")
