"""AUTHENTICATE: IRCv3 SASL (sasl-3.1, the `sasl` capability) as the IRC
listener reads it, before registration.

The exchange is read here: the mechanism (`Settings.sasl`: PLAIN with
accounts, EXTERNAL with `tls.nick_from_cert`), the base64 data in chunks
of up to 400 bytes (a chunk of exactly 400 says more follows, `+` ends an
exact multiple), `*` to abort. The data, decoded, is handed to the chat
session as its "sasl" command (chatd/core/sasl.py), which checks it as
`/login` checks a password; its answer, `PROVEN <account>` or an `ERR`,
comes back through the codec as RPL_LOGGEDIN and RPL_SASLSUCCESS (900,
903: ircreplies.py) or ERR_SASLFAIL (904: ircerrors.py). A registration that comes
during an exchange aborts it (906), as sasl-3.1 says. No I/O here.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from chatd.outlet import Command
from chatd.transport import ircmessage
from chatd.transport.irclink import Link, need
from chatd.transport.ircmessage import Message
from chatd.transport.ircstate import Asked, IrcState, Reply

CHUNK: Final = 400  # bytes of base64 per AUTHENTICATE (sasl-3.1)
# The longest exchange read: PLAIN's authzid, authcid and a 1,024-byte
# password (docs/protocol.md) in base64, with room to spare; beyond, 904.
DATA_MAX: Final = 2000


def authenticate(link: Link, message: Message, reply: Reply) -> None:
    state = link.state
    if not need(link, message, reply, 1) or not link.charge():
        return
    word = message.text(0)
    if state.registered:
        reply.out.append(state.numeric("462", "You may not reregister"))
    elif not state.has("sasl"):
        reply.out.append(failed(state, "request the sasl capability first"))
    elif state.account or state.sasl_pending:
        reply.out.append(state.numeric("907", "You have already authenticated using SASL"))
    elif word == "*":
        reset(state)
        reply.out.append(state.numeric("906", "SASL authentication aborted"))
    elif not state.sasl_mechanism:
        _begin(link, word.upper(), reply)
    else:
        _data(link, word, reply)


def _begin(link: Link, mechanism: str, reply: Reply) -> None:
    state, offered = link.state, link.settings.sasl
    if mechanism not in offered:
        reply.out.append(state.numeric("908", ",".join(offered), "are available SASL mechanisms"))
        reply.out.append(failed(state, f"{mechanism} is not offered"))
        return
    state.sasl_mechanism = mechanism
    reply.out.append(ircmessage.line(None, "AUTHENTICATE", "+"))


def _data(link: Link, chunk: str, reply: Reply) -> None:
    state = link.state
    if len(chunk) > CHUNK:
        reset(state)
        reply.out.append(state.numeric("905", "SASL message too long"))
        return
    if chunk != "+":
        state.sasl_data += chunk
    if len(state.sasl_data) > DATA_MAX:
        reset(state)
        reply.out.append(failed(state, "too much data"))
    elif len(chunk) < CHUNK:  # the last chunk (or `+` after an exact multiple of 400)
        _finish(link, reply)


def _finish(link: Link, reply: Reply) -> None:
    state = link.state
    mechanism, data = state.sasl_mechanism, state.sasl_data
    reset(state)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        reply.out.append(failed(state, "the data is not base64"))
        return
    command = _external(raw) if mechanism == "EXTERNAL" else _plain(raw)
    if command is None:
        reply.out.append(failed(state, "malformed or empty credentials"))
        return
    state.sasl_pending = True  # the session answers: PROVEN or ERR (ircreplies.py, ircerrors.py)
    link.ask(reply, command, Asked(reply))


def _plain(raw: bytes) -> Command | None:
    """RFC 4616: `[authzid] NUL authcid NUL passwd`. chatd lets an account act
    only as itself: an authzid must name the authcid's account."""
    parts = raw.split(b"\0")
    if len(parts) != 3:
        return None
    try:
        authzid, authcid, password = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError:
        return None
    if not authcid or not password or (authzid and authzid.lower() != authcid.lower()):
        return None
    return Command("sasl", password.encode(), authcid, "PLAIN")


def _external(raw: bytes) -> Command | None:
    """RFC 4422 EXTERNAL: an optional authzid; the certificate says the rest."""
    try:
        authzid = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return Command("sasl", target=authzid, option="EXTERNAL")


def reset(state: IrcState) -> None:
    state.sasl_mechanism = state.sasl_data = ""


def failed(state: IrcState, why: str) -> bytes:
    return state.numeric("904", f"SASL authentication failed: {why}")
