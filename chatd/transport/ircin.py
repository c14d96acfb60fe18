"""What an IRC client's commands do: the IRC listener's command table.

Each row turns one IRC command into the chat session's own commands
(`Command`s for chatd/core/commands.py: PRIVMSG to a room is its "msg",
JOIN its "join", NAMES and WHO #room its "who", LIST its "rooms",
CHATHISTORY its "history" ...), or answers it from the listener's own
knowledge when the chat has nothing to say (CAP here; MODE queries, WHOIS,
AWAY, USERHOST, ISON, MOTD ... in ircqueries.py). CHATHISTORY is
irchistory.py's, AUTHENTICATE ircsasl.py's; what they share, irclink.py.
Chat logic is never written twice: whether a
room exists, who may speak, what a nickname may be, all that is the
session's, and its answers come back through the codec (irc.py,
ircreplies.py, ircerrors.py) as the numerics of the command that asked.

A handler gets the codec as a `Link`, the message and its `Reply`; it
appends direct answers to `reply.out` and queues session commands with
`link.ask`. Answers given here take a line's worth of the session's flood
control budget (`link.charge()`), as the session's own commands do; no IRC
command is ever a strike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from chatd.outlet import Command
from chatd.transport import ircmessage, ircqueries, ircreg, ircsasl
from chatd.transport.irchistory import chathistory
from chatd.transport.irclink import Handler, Link, clean_text, need, utf8
from chatd.transport.ircmessage import Message
from chatd.transport.ircstate import Asked, Reply

_IDENT: Final = re.compile(r"[^A-Za-z0-9_.-]")
USER_LENGTH: Final = 10  # of the user name shown in user@host, "~" included
TARGETS_MAX: Final = 4  # PRIVMSG/NOTICE/TAGMSG targets (TARGMAX in ISUPPORT)


# -- registration ------------------------------------------------------------------------


def _cap(link: Link, message: Message, reply: Reply) -> None:
    if link.state.registered and not link.charge():
        return
    reply.out.extend(ircreg.cap(link.state, message, link.settings))


def _nick(link: Link, message: Message, reply: Reply) -> None:
    state = link.state
    nick = message.text(0)
    if not nick:
        reply.out.append(state.numeric("431", "No nickname given"))
    elif nick.startswith(("/", "#", ":")):  # never a nickname, nor a command to the session
        reply.out.append(state.numeric("432", nick, "Erroneous nickname"))
    elif not state.registered:
        state.wanted = nick  # handed to the session once USER has come (irc.py)
    else:
        link.ask(reply, Command("nick", target=nick), Asked(reply, target=nick))


def _user(link: Link, message: Message, reply: Reply) -> None:
    state = link.state
    if state.registered or state.user:
        reply.out.append(state.numeric("462", "You may not reregister"))
        return
    if len(message.params) < 4 or not message.params[0] or not message.params[3]:
        reply.out.append(state.numeric("461", "USER", "Not enough parameters"))
        return
    realname = utf8(link, reply, message.params[3])
    if realname is None:
        return
    ident = _IDENT.sub("", message.text(0))[: USER_LENGTH - 1] or "user"
    state.user, state.realname = f"~{ident}", clean_text(realname)[:100] or ident


def _pass(link: Link, message: Message, reply: Reply) -> None:
    state = link.state
    if state.registered:
        reply.out.append(state.numeric("462", "You may not reregister"))
    elif need(link, message, reply, 1):
        state.password = message.param(0)  # ignored until accounts need it


def _ping(link: Link, message: Message, reply: Reply) -> None:
    state = link.state
    if not message.params:
        reply.out.append(state.numeric("409", "No origin specified"))
    elif not state.registered:
        reply.out.append(ircmessage.line(state.server, "PONG", state.server, message.text(0)))
    else:  # through the session: the PONG comes after the answers to what came before
        link.ask(reply, Command("ping", message.param(0)), Asked(reply))


def _quit(link: Link, message: Message, reply: Reply) -> None:
    text = clean_text(message.text(0)).encode()
    link.ask(reply, Command("quit", text), Asked(reply))


def _nothing(link: Link, message: Message, reply: Reply) -> None:
    """PONG: chatd sends no PING (TCP keepalive finds dead peers), so nothing to do."""


# -- saying things ---------------------------------------------------------------------------


def _message(link: Link, message: Message, reply: Reply) -> None:
    """PRIVMSG and NOTICE, to rooms and nicknames; CTCP ACTION as chatd's /me."""
    # NOTE: every line said on IRC comes this way: few calls (bench/INSTRUCTIONS.md, "IRC clients").
    state = link.state
    notice = message.command == "NOTICE"
    reply.quiet = notice
    params = message.params
    if not params or not params[0]:
        if not notice:
            reply.out.append(state.numeric("411", f"No recipient given ({message.command})"))
        return
    raw = utf8(link, reply, params[1] if len(params) > 1 else b"")
    if raw is None:
        return
    action = raw.startswith("\x01ACTION") and len(raw) > 7 and raw[7] in " \x01"
    if raw.startswith("\x01") and not action:
        return  # other CTCP (VERSION, PING ...): chatd carries no control characters (docs/irc.md)
    text = clean_text(raw[8:].rstrip("\x01") if action else raw)
    if not text.strip():
        if not notice:
            reply.out.append(state.numeric("412", "No text to send"))
        return
    tags = message.client_tags() if message.tags else b""
    if notice:
        tags = b"notice;" + tags if tags else b"notice"
    verb, body = "me" if action else "msg", text.encode()
    for target in params[0].decode("utf-8", "replace").split(",")[:TARGETS_MAX]:
        if target:
            link.ask(reply, Command(verb, body, target, tags=tags), Asked(reply, target=target))


def _tagmsg(link: Link, message: Message, reply: Reply) -> None:
    if need(link, message, reply, 1):
        tags = message.client_tags()
        for target in message.text(0).split(",")[:TARGETS_MAX]:
            if target:
                link.ask(reply, Command("tagmsg", target=target, tags=tags), Asked(reply, target=target))


# -- rooms -------------------------------------------------------------------------------------


def _join(link: Link, message: Message, reply: Reply) -> None:
    if not need(link, message, reply, 1):
        return
    rooms = message.text(0)
    if rooms == "0":  # leave every room
        for name in list(link.state.rooms.values()):
            link.ask(reply, Command("part", target=name), Asked(reply, target=name))
        return
    for name in rooms.split(","):
        if name:
            link.ask(reply, Command("join", target=name), Asked(reply, target=name))


def _part(link: Link, message: Message, reply: Reply) -> None:
    if not need(link, message, reply, 1):
        return
    text = utf8(link, reply, message.param(1))
    if text is None:
        return
    for name in message.text(0).split(","):
        if name:
            link.ask(reply, Command("part", clean_text(text).encode(), name), Asked(reply, target=name))


def _topic(link: Link, message: Message, reply: Reply) -> None:
    if not need(link, message, reply, 1):
        return
    room = message.text(0)
    if len(message.params) == 1:
        command = Command("topic", target=room)
    else:
        text = utf8(link, reply, message.param(1))
        if text is None:
            return
        text = clean_text(text)
        command = Command("topic", text.encode(), room) if text else Command("untopic", target=room)
    link.ask(reply, command, Asked(reply, target=room))


def _names(link: Link, message: Message, reply: Reply) -> None:
    if not message.params:
        reply.out.append(link.state.numeric("366", "*", "End of /NAMES list"))
        return
    for name in message.text(0).split(","):
        if name:
            link.ask(reply, Command("who", target=name), Asked(reply, target=name))


def _list(link: Link, message: Message, reply: Reply) -> None:
    names = [name.lower() for name in message.text(0).split(",") if name] if message.params else []
    link.ask(reply, Command("rooms"), Asked(reply, rooms=frozenset(names) if names else None))


def _kick(link: Link, message: Message, reply: Reply) -> None:
    """`KICK #room nick[,nick] [:reason]`: the session's /kick (a registered room's ops)."""
    if not need(link, message, reply, 2):
        return
    room, reason = message.text(0), clean_text(message.text(2))
    for nick in message.text(1).split(","):
        if nick:
            link.ask(reply, Command("kick", reason.encode(), room, nick), Asked(reply, target=room, mask=nick))


def _invite(link: Link, message: Message, reply: Reply) -> None:
    """`INVITE nick #room`: the session's /invite (a registered room's ops)."""
    if need(link, message, reply, 2):
        nick, room = message.text(0), message.text(1)
        link.ask(reply, Command("invite", target=room, option=nick), Asked(reply, target=room, mask=nick))


# Usable before registration; any other command then is ERR_NOTREGISTERED.
BEFORE_REGISTRATION: Final = frozenset({"CAP", "NICK", "USER", "PASS", "PING", "PONG", "QUIT", "AUTHENTICATE"})

COMMANDS: Final[Mapping[str, Handler]] = MappingProxyType(
    {
        "CAP": _cap,
        "NICK": _nick,
        "USER": _user,
        "PASS": _pass,
        "AUTHENTICATE": ircsasl.authenticate,
        "PING": _ping,
        "PONG": _nothing,
        "QUIT": _quit,
        "PRIVMSG": _message,
        "NOTICE": _message,
        "TAGMSG": _tagmsg,
        "JOIN": _join,
        "PART": _part,
        "TOPIC": _topic,
        "NAMES": _names,
        "LIST": _list,
        "WHO": ircqueries.who,
        "WHOIS": ircqueries.whois,
        "WHOWAS": ircqueries.whowas,
        "AWAY": ircqueries.away,
        "USERHOST": ircqueries.userhost,
        "ISON": ircqueries.ison,
        "MODE": ircqueries.mode,
        "MOTD": ircqueries.motd,
        "LUSERS": ircqueries.lusers,
        "VERSION": ircqueries.version,
        "TIME": ircqueries.current_time,
        "CHATHISTORY": chathistory,
        "KICK": _kick,
        "INVITE": _invite,
        "OPER": ircqueries.refused("491", "No O-lines for your host"),
        "KILL": ircqueries.refused("481", "Permission Denied- You're not an IRC operator"),
    }
)
