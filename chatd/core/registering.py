"""Registering: how a session gets its nickname, from the greeting to `WELCOME`.

The greeting (`HELLO`, the accounts line, `NICK`) or the refusal of a
connection the server does not serve; each line before registration: a
command usable then (core/commands.py rows with `before_registration`), an
IRC client's SASL proof (core/sasl.py), or a nickname alone, checked against
the certificate's name and identity (core/identities.py), the accounts
(guests allowed? an account's name?) and the nickname rules; a refused
answer (`ERR`, then `NICK` again, or `BYE nick_failed` after
`limits.max_nick_attempts`).

What is not here: claiming the nickname and what follows `WELCOME`
(`Session.admit`, through the bus: core/bus.py), the registration deadline
and holding lines while a password is checked (core/session.py), signing in
to an account (core/signin.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import structlog

from chatd import __version__
from chatd.core import protocol, sasl
from chatd.core.commands import Caller, Row
from chatd.core.flood import Line
from chatd.core.identities import refusal
from chatd.core.signin import ban_text
from chatd.errors import ProtocolError
from chatd.outlet import Command

log = structlog.get_logger(__name__)

_REJECT_TEXT: Final = {
    protocol.SERVER_FULL: "The server is full; try again later.",
    protocol.TOO_MANY_CONNECTIONS: "Too many connections from your address.",
    protocol.THROTTLED: "Too many connections from your address in the last minute; wait a bit.",
    protocol.BANNED: ban_text(""),
}


class Registering:
    """One session's way to a nickname: what it is sent, what its lines before
    registration mean, and how many refused answers it has left."""

    # One per client, like the session: no instance dict.
    __slots__ = ("_attempts", "_commands", "_identity_checked", "_session")

    def __init__(self, session: Caller, commands: Mapping[str, Row]) -> None:
        self._session = session
        self._commands = commands
        self._attempts = 0  # refused answers to `NICK`
        self._identity_checked = False  # the certificate's name is its identity's spelling

    def reject(self, reject: str) -> None:
        """The server does not serve this connection: say why, and close."""
        session = self._session
        text = _REJECT_TEXT[reject]
        accounts = session.chat.accounts
        ban = accounts.banned(session.peer_ip) if accounts is not None else None
        if reject == protocol.BANNED and ban is not None:
            text = ban_text(ban.reason)
        session.outlet.deliver(protocol.format_error(ProtocolError(reject, text)))
        session.close(reject)

    def greet(self) -> None:
        """`HELLO`, the accounts line (with accounts), then `NICK`."""
        session = self._session
        session.outlet.deliver(protocol.format_line("HELLO", str(protocol.VERSION), f"chatd {__version__}"))
        if session.chat.accounts is not None:
            session.outlet.deliver(session.chat.accounts.accounts_line())
        session.outlet.deliver(b"NICK\n")

    def line(self, line: Line) -> None:
        """A line before registration: a command usable then, or a nickname."""
        session = self._session
        config = session.chat.config
        try:
            if line is protocol.TOO_LONG:
                raise ProtocolError(protocol.LINE_TOO_LONG, "Nicknames are short; line dropped.")
            if isinstance(line, Command):  # IRC: only what is usable before registration
                row = self._commands.get(line.verb)
                if row is None or not row.before_registration:
                    raise ProtocolError(protocol.UNKNOWN_COMMAND, f"/{line.verb} needs a nickname first.")
                row.handler(session, line)
                return
            if session.proven is not None:  # IRC: SASL proved an account; the nickname line is not used
                sasl.register_proven(session)
                return
            text = protocol.clean_line(line)
            verb = protocol.command_verb(text)
            row = self._commands.get(verb) if verb else None
            if row is not None and row.before_registration:
                row.handler(session, protocol.parse_command(text))
                return
            if config.tls.nick_from_cert and self._identity_refused():
                return
            nick = protocol.check_nick(text.decode("utf-8"), config.limits.max_nick_length)
            if config.tls.nick_from_cert and nick != session.cert_nick:
                raise ProtocolError(
                    protocol.NICK_INVALID,
                    f"Your certificate allows only the nickname {session.cert_nick}.",
                )
            self._check_guest(nick)
            session.admit(nick)
        except ProtocolError as error:
            self.refuse(error)

    def _check_guest(self, nick: str) -> None:
        """A nickname alone (no account): refused if it is an account's, or if
        the server takes no guests; a certificate's name is no guest's."""
        chat = self._session.chat
        accounts = chat.accounts
        if accounts is None or chat.config.tls.nick_from_cert:
            return
        if not accounts.config.guests:
            raise ProtocolError(
                protocol.LOGIN_REQUIRED, "This server takes no guests: /login <account> <password>, or /register."
            )
        if accounts.is_registered(nick):
            raise ProtocolError(
                protocol.NICK_REGISTERED, f"{nick} is a registered account: /login {nick} <password>, or another name."
            )

    def refuse(self, error: ProtocolError) -> None:
        """A refused answer to `NICK`: `ERR`, then `NICK` again, or `BYE nick_failed`."""
        session = self._session
        self._attempts += 1
        session.fail(error)
        if self._attempts >= session.chat.config.limits.max_nick_attempts:
            session.close("nick_failed")
        elif not session.closed:
            session.outlet.deliver(b"NICK\n")

    def _identity_refused(self) -> bool:
        """A certificate whose name is another spelling of an identity already
        seen is refused, whatever nickname was sent (core/identities.py)."""
        session = self._session
        cert = session.cert_nick
        if cert is None or self._identity_checked:
            return False
        known = session.chat.identities.claim(cert)
        self._identity_checked = known is None
        if known is None:
            return False
        log.warning("certificate_identity_refused", **session.context, certificate_name=cert, known_as=known)
        session.fail(refusal(cert, known))
        session.close("nick_failed")
        return True
