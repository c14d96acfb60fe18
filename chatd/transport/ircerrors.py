"""The line protocol's `ERR <code> <text>` as IRC says it to one client: the
numeric (or IRCv3 standard reply, or SASL failure) that fits the command in
flight. `nick_taken` answers NICK with 433; `not_in_room` answers PRIVMSG
with 404, TOPIC with 403 or 442 by whether the channel exists; a
CHATHISTORY's errors are FAIL replies; a NOTICE gets nothing back.

What is not here: reading the delivered block and every other reply
(ircreplies.py `Personal`, which calls `error_reply`), and the SASL exchange
itself (ircsasl.py). No I/O.
"""

from __future__ import annotations

from typing import Final

from chatd.transport import ircsasl
from chatd.transport.ircout import Directory
from chatd.transport.ircstate import Asked, IrcState

# A registered room's refusals (protocol v5) as IRC's numerics.
_ROOM_REFUSALS: Final = {
    "not_allowed": "482",  # ERR_CHANOPRIVSNEEDED
    "invite_only": "473",  # ERR_INVITEONLYCHAN
    "banned_from_room": "474",  # ERR_BANNEDFROMCHAN
    "accounts_only": "477",  # ERR_NEEDREGGEDNICK
    "moderated": "404",  # ERR_CANNOTSENDTOCHAN
}
# What the session answers a SASL check it refuses (core/sasl.py, as /login).
SASL_REFUSALS: Final = frozenset(
    {
        "auth_failed",
        "auth_throttled",
        "auth_busy",
        "account_disabled",
        "nick_invalid",
        "already_registered",
        "banned",
    }
)


def error_reply(state: IrcState, directory: Directory, code: str, text: str, asked: Asked | None) -> list[bytes]:
    """`ERR <code> <text>` as the numeric (or standard reply) for the command in flight."""
    if state.sasl_pending and code in SASL_REFUSALS:  # SASL's answer, now or after the hash
        state.sasl_pending = False
        return [ircsasl.failed(state, text)]
    if state.account and not state.registered and code in SASL_REFUSALS:
        # The account SASL proved was refused at registration (disabled or
        # deleted meanwhile): the next NICK registers that nickname instead.
        state.account = ""
        return [ircsasl.failed(state, text)]
    command = asked.reply.command if asked is not None else ""
    target = asked.target if asked is not None else ""
    if asked is not None and asked.reply.quiet:
        return []  # "automatic replies must never be sent in response to a NOTICE"
    if asked is not None and asked.history is not None:
        if code == "no_history":
            return []
        kind = "INVALID_PARAMS" if code in ("bad_argument", "missing_argument") else "INVALID_TARGET"
        return [state.fail("CHATHISTORY", kind, asked.history.sub, target or "*", text)]
    if command == "CHATHISTORY":
        return []
    if asked is not None and (moderation := _moderation_error(state, code, text, asked)) is not None:
        return moderation
    if code in ("nick_invalid", "nick_taken", "nick_registered"):
        # A registered account's name is taken to a guest: sign in with SASL to use it.
        nick = target or state.wanted or "*"
        return [state.numeric("432" if code == "nick_invalid" else "433", nick, text)]
    if code == "login_required":  # no guests: IRCv3's standard reply for it, then the session asks again
        return [state.fail("*", "ACCOUNT_REQUIRED", text)]
    if code == "no_such_nick":
        return [state.numeric("401", target, "No such nick/channel")]
    if code in ("room_invalid", "no_such_room") and command == "NAMES":
        return [state.numeric("366", target, "End of /NAMES list")]
    if code in ("room_invalid", "no_such_room") and command == "WHO":
        return [state.numeric("315", asked.mask if asked else target, "End of /WHO list")]
    if code == "room_invalid":
        return [state.numeric("479" if command == "JOIN" else "403", target, text)]
    if code == "no_such_room":
        return [state.numeric("403", target, "No such channel")]
    if code == "not_in_room":
        return [_not_in_room(state, directory, command, target)]
    if code == "too_many_rooms":
        return [state.numeric("405", target, text)]
    if code in ("missing_argument", "bad_argument"):
        return [state.numeric("461", command or "*", "Not enough parameters")]
    if code == "bad_encoding":
        return [state.fail(command or "*", "INVALID_UTF8", text)]
    if code == "line_too_long":
        return [state.numeric("417", "Input line was too long")]
    if code == "unknown_command":
        return [state.numeric("421", command or "*", "Unknown command")]
    if code in _ROOM_REFUSALS:
        return [state.numeric(_ROOM_REFUSALS[code], target or "*", text)]
    return [state.notice(text)]


def _moderation_error(state: IrcState, code: str, text: str, asked: Asked) -> list[bytes] | None:
    """What KICK, INVITE and MODE's room commands get that others do not."""
    command, target, who = asked.reply.command, asked.target, asked.mask
    if command == "MODE" and who == "b" and code == "not_allowed":
        return [state.numeric("368", target, "End of channel ban list")]  # ops only: an empty list to others
    if code == "no_such_nick" and command in ("KICK", "MODE"):
        return [state.numeric("441", who, target, text)]  # ERR_USERNOTINCHANNEL
    if code == "no_such_nick" and command == "INVITE":
        return [state.numeric("401", who, "No such nick/channel")]
    return None


def _not_in_room(state: IrcState, directory: Directory, command: str, target: str) -> bytes:
    if command in ("PRIVMSG", "NOTICE", "TAGMSG"):
        if not directory.room_exists(target):
            return state.numeric("403", target, "No such channel")
        return state.numeric("404", target, "Cannot send to channel")
    if command == "TOPIC" and not directory.room_exists(target):
        return state.numeric("403", target, "No such channel")
    return state.numeric("442", target, "You're not on that channel")
