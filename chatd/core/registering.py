"""A session's way to its nickname: the greeting (or why a client is
refused), each line before registration, the checks a nickname passes, and
`WELCOME`.

Before its nickname a client's line is one of the commands usable then (a
`COMMANDS` row with `before_registration`: /login, /register, /resume, IRC's
SASL...), or a nickname: checked against the certificate's name (with
`tls.nick_from_cert`, and its identity: core/identities.py), the accounts
(a registered nickname needs its password; a server may take no guests),
then claimed through the bus (core/bus.py). A refused answer gets `ERR` and
`NICK` again, until `limits.max_nick_attempts`.

These are functions that take the session, as core/dispatch.py's are: its
state stays in its own slots, and nothing here keeps a reference to it (the
bus keeps the continuations of `admit` only until the nickname is decided).

What is not here: signing in to an account (core/signin.py, core/sasl.py),
the nickname registry (core/nicks.py), and the register deadline's end
(core/dispatch.py, `on_timer`).
"""

from __future__ import annotations

from typing import Final, Protocol

import structlog

from chatd import __version__
from chatd.core import protocol, sasl
from chatd.core.commands import autojoin
from chatd.core.dispatch import Dispatched, Stage, rearm
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


class Newcomer(Dispatched, Protocol):
    """What the way to a nickname uses of the session
    (chatd.core.session.Session): besides what a line's way uses, more of its
    own state, kept in its slots."""

    _autojoin: bool  # join `rooms.autojoin` once registered (IRC clients join themselves)
    _identity_checked: bool
    _nick_attempts: int


def greet(session: Newcomer, reject: str | None, cert_nick: str | None) -> None:
    """`Session.on_open`: `HELLO` and `NICK` (and the register deadline), or
    the `ERR` of a refused connection and its end."""
    outlet, chat = session.outlet, session.chat
    if reject is not None:
        text = _REJECT_TEXT[reject]
        ban = chat.accounts.banned(session.peer_ip) if chat.accounts is not None else None
        if reject == protocol.BANNED and ban is not None:
            text = ban_text(ban.reason)
        outlet.deliver(protocol.format_error(ProtocolError(reject, text)))
        session.close(reject)
        return
    session.cert_nick = cert_nick
    outlet.deliver(protocol.format_line("HELLO", str(protocol.VERSION), f"chatd {__version__}"))
    if chat.accounts is not None:
        outlet.deliver(chat.accounts.accounts_line())
    outlet.deliver(b"NICK\n")
    session._register_deadline = chat.monotonic() + chat.config.limits.register_timeout
    rearm(session)


def register(session: Newcomer, line: Line) -> None:
    """A line before registration: a command usable then, or a nickname."""
    config = session.chat.config
    try:
        if line is protocol.TOO_LONG:
            raise ProtocolError(protocol.LINE_TOO_LONG, "Nicknames are short; line dropped.")
        if isinstance(line, Command):  # IRC: only what is usable before registration
            row = session._commands.get(line.verb)
            if row is None or not row.before_registration:
                raise ProtocolError(protocol.UNKNOWN_COMMAND, f"/{line.verb} needs a nickname first.")
            row.handler(session, line)
            return
        if session.proven is not None:  # IRC: SASL proved an account; the nickname line is not used
            sasl.register_proven(session)
            return
        text = protocol.clean_line(line)
        verb = protocol.command_verb(text)
        row = session._commands.get(verb) if verb else None
        if row is not None and row.before_registration:
            row.handler(session, protocol.parse_command(text))
            return
        if config.tls.nick_from_cert and _identity_refused(session):
            return
        nick = protocol.check_nick(text.decode("utf-8"), config.limits.max_nick_length)
        if config.tls.nick_from_cert and nick != session.cert_nick:
            raise ProtocolError(
                protocol.NICK_INVALID,
                f"Your certificate allows only the nickname {session.cert_nick}.",
            )
        _check_guest(session, nick)
        session.admit(nick)
    except ProtocolError as error:
        session.refuse(error)


def _check_guest(session: Newcomer, nick: str) -> None:
    """A nickname alone (no account): refused if it is an account's, or if
    the server takes no guests; a certificate's name is no guest's."""
    accounts = session.chat.accounts
    if accounts is None or session.chat.config.tls.nick_from_cert:
        return
    if not accounts.config.guests:
        raise ProtocolError(
            protocol.LOGIN_REQUIRED, "This server takes no guests: /login <account> <password>, or /register."
        )
    if accounts.is_registered(nick):
        raise ProtocolError(
            protocol.NICK_REGISTERED, f"{nick} is a registered account: /login {nick} <password>, or another name."
        )


def refuse(session: Newcomer, error: ProtocolError) -> None:
    """`Session.refuse`: `ERR`, then `NICK` again, or `BYE nick_failed`."""
    session._nick_attempts += 1
    session._send_error(error)
    if session._nick_attempts >= session.chat.config.limits.max_nick_attempts:
        session.close("nick_failed")
    elif session.stage is not Stage.CLOSED:
        session.outlet.deliver(b"NICK\n")


def admit(session: Newcomer, nick: str) -> None:
    """`Session.admit`: claim `nick` through the bus; once it is ours,
    `WELCOME` and the autojoin rooms (`refuse` if it is not).

    Raises:
        ProtocolError: `nick_taken`.
    """
    config = session.chat.config
    welcome = f"Welcome to {config.server.name}, {nick}! Type /help for commands."
    greeting = protocol.format_line("WELCOME", nick, welcome)
    session.chat.bus.register(session, nick, greeting, lambda: _admitted(session, nick), session.refuse)


def _admitted(session: Newcomer, nick: str) -> None:
    session.stage = Stage.ACTIVE
    session._register_deadline = None
    rearm(session)
    log.info("nickname", **session.context, nick=nick)
    autojoin(session, iter(session.chat.config.rooms.autojoin if session._autojoin else ()))


def _identity_refused(session: Newcomer) -> bool:
    """A certificate whose name is another spelling of an identity already
    seen is refused, whatever nickname was sent (core/identities.py)."""
    cert = session.cert_nick
    if cert is None or session._identity_checked:
        return False
    known = session.chat.identities.claim(cert)
    session._identity_checked = known is None
    if known is None:
        return False
    log.warning("certificate_identity_refused", **session.context, certificate_name=cert, known_as=known)
    session._send_error(refusal(cert, known))
    session.close("nick_failed")
    return True
