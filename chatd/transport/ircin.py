"""What an IRC client's commands do: the IRC listener's command table.

Each row turns one IRC command into the chat session's own commands
(`Command`s for chatd/core/commands.py: PRIVMSG to a room is its "msg",
JOIN its "join", NAMES and WHO #room its "who", LIST its "rooms",
CHATHISTORY its "history" ...), or answers it from the listener's own
knowledge when the chat has nothing to say (CAP, MODE queries, WHOIS, AWAY,
USERHOST, ISON, MOTD ...). Chat logic is never written twice: whether a
room exists, who may speak, what a nickname may be, all that is the
session's, and its answers come back through the codec (irc.py,
ircreplies.py) as the numerics of the command that asked.

A handler gets the codec as a `Link`, the message and its `Reply`; it
appends direct answers to `reply.out` and queues session commands with
`link.ask`. Answers given here take a line's worth of the session's flood
control budget (`link.charge()`), as the session's own commands do; no IRC
command is ever a strike.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final, Protocol

from chatd.outlet import Command
from chatd.transport import ircmessage, ircreg
from chatd.transport.ircmessage import Message
from chatd.transport.ircout import Directory, Person
from chatd.transport.ircreg import Settings
from chatd.transport.ircreplies import who_reply
from chatd.transport.ircstate import Asked, History, IrcState, Reply

# IRC's formatting codes (bold, colours, italics, ...) and every other control
# character but tab: chatd's text has none (docs/protocol.md, "Line format").
_FORMATTING: Final = re.compile(
    "\x03(?:[0-9]{1,2}(?:,[0-9]{1,2})?)?|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?|[\x00-\x08\x0a-\x1f\x7f-\x9f]"
)
_IDENT: Final = re.compile(r"[^A-Za-z0-9_.-]")
USER_LENGTH: Final = 10  # of the user name shown in user@host, "~" included
TARGETS_MAX: Final = 4  # PRIVMSG/NOTICE/TAGMSG targets (TARGMAX in ISUPPORT)


class Link(Protocol):
    """What the handlers use of the codec (irc.py)."""

    state: IrcState
    settings: Settings
    directory: Directory

    def ask(self, reply: Reply, command: Command | bytes, asked: Asked) -> None:
        """Hand `command` to the session once this line is read; its answer is `asked`'s."""

    def charge(self) -> bool:
        """Take a line's worth of flood control for an answer given here; False: refused."""


Handler = Callable[[Link, Message, Reply], None]


def clean_text(text: str) -> str:
    """IRC text as chatd's: formatting codes and control characters removed."""
    return _FORMATTING.sub("", text)


def _utf8(link: Link, reply: Reply, value: bytes) -> str | None:
    """`value` as text, or None after a FAIL INVALID_UTF8 (UTF8ONLY)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        if not reply.quiet:
            reply.out.append(link.state.fail(reply.command, "INVALID_UTF8", "Messages must be UTF-8."))
        return None


def _need(link: Link, message: Message, reply: Reply, count: int) -> bool:
    """At least `count` parameters, else ERR_NEEDMOREPARAMS."""
    if len(message.params) >= count:
        return True
    reply.out.append(link.state.numeric("461", message.command, "Not enough parameters"))
    return False


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
    realname = _utf8(link, reply, message.params[3])
    if realname is None:
        return
    ident = _IDENT.sub("", message.text(0))[: USER_LENGTH - 1] or "user"
    state.user, state.realname = f"~{ident}", clean_text(realname)[:100] or ident


def _pass(link: Link, message: Message, reply: Reply) -> None:
    state = link.state
    if state.registered:
        reply.out.append(state.numeric("462", "You may not reregister"))
    elif _need(link, message, reply, 1):
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
    state = link.state
    notice = message.command == "NOTICE"
    reply.quiet = notice
    if not message.params or not message.params[0]:
        if not notice:
            reply.out.append(state.numeric("411", f"No recipient given ({message.command})"))
        return
    raw = _utf8(link, reply, message.param(1))
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
    tags = message.client_tags()
    if notice:
        tags = b"notice;" + tags if tags else b"notice"
    for target in message.text(0).split(",")[:TARGETS_MAX]:
        if target:
            command = Command("me" if action else "msg", text.encode(), target, tags=tags)
            link.ask(reply, command, Asked(reply, target=target))


def _tagmsg(link: Link, message: Message, reply: Reply) -> None:
    if _need(link, message, reply, 1):
        tags = message.client_tags()
        for target in message.text(0).split(",")[:TARGETS_MAX]:
            if target:
                link.ask(reply, Command("tagmsg", target=target, tags=tags), Asked(reply, target=target))


# -- rooms -------------------------------------------------------------------------------------


def _join(link: Link, message: Message, reply: Reply) -> None:
    if not _need(link, message, reply, 1):
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
    if not _need(link, message, reply, 1):
        return
    text = _utf8(link, reply, message.param(1))
    if text is None:
        return
    for name in message.text(0).split(","):
        if name:
            link.ask(reply, Command("part", clean_text(text).encode(), name), Asked(reply, target=name))


def _topic(link: Link, message: Message, reply: Reply) -> None:
    if not _need(link, message, reply, 1):
        return
    room = message.text(0)
    if len(message.params) == 1:
        command = Command("topic", target=room)
    else:
        text = _utf8(link, reply, message.param(1))
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


# -- who is who ------------------------------------------------------------------------------------


def _who(link: Link, message: Message, reply: Reply) -> None:
    state = link.state
    mask = message.text(0) or "*"
    if mask.startswith("#"):
        link.ask(reply, Command("who", target=mask), Asked(reply, target=mask, mask=mask))
        return
    if not link.charge():
        return
    pattern = mask.lower()
    exact = not any(char in pattern for char in "*?")
    for person in sorted(link.directory.people(), key=lambda p: p.nick.lower()):
        key = person.nick.lower()
        if not fnmatch.fnmatchcase(key, pattern):
            continue
        if exact or key == state.key or link.directory.shares_room(state.nick, person.nick):
            reply.out.append(who_reply(state, "*", person, "G" if person.away else "H"))
    reply.out.append(state.numeric("315", mask, "End of /WHO list"))


def _whois(link: Link, message: Message, reply: Reply) -> None:
    if not _need(link, message, reply, 1) or not link.charge():
        return
    state = link.state
    nick = message.text(len(message.params) - 1)
    person = link.directory.person(nick)
    if person is None:
        reply.out.append(state.numeric("401", nick, "No such nick/channel"))
    else:
        reply.out.extend(_whois_lines(state, person, link.directory.rooms_of(person.nick)))
        nick = person.nick
    reply.out.append(state.numeric("318", nick, "End of /WHOIS list"))


def _whois_lines(state: IrcState, person: Person, rooms: tuple[str, ...]) -> list[bytes]:
    lines = [state.numeric("311", person.nick, person.user, person.host, "*", person.realname)]
    if rooms:
        lines.append(state.numeric("319", person.nick, " ".join(rooms)))
    lines.append(state.numeric("312", person.nick, state.server, "chatd"))
    if person.account:
        lines.append(state.numeric("330", person.nick, person.account, "is logged in as"))
    if person.away:
        lines.append(state.numeric("301", person.nick, person.away))
    return lines


def _whowas(link: Link, message: Message, reply: Reply) -> None:
    if _need(link, message, reply, 1) and link.charge():
        nick = message.text(0)
        reply.out.append(link.state.numeric("406", nick, "There was no such nickname"))
        reply.out.append(link.state.numeric("369", nick, "End of WHOWAS"))


def _away(link: Link, message: Message, reply: Reply) -> None:
    if not link.charge():
        return
    state = link.state
    state.away = clean_text(message.text(0))[:200]
    if state.away:
        reply.out.append(state.numeric("306", "You have been marked as being away"))
    else:
        reply.out.append(state.numeric("305", "You are no longer marked as being away"))


def _userhost(link: Link, message: Message, reply: Reply) -> None:
    if not _need(link, message, reply, 1) or not link.charge():
        return
    found = []
    for nick in " ".join(message.text(i) for i in range(len(message.params))).split()[:5]:
        person = link.directory.person(nick)
        if person is not None:
            found.append(f"{person.nick}={'-' if person.away else '+'}{person.user}@{person.host}")
    reply.out.append(link.state.numeric("302", " ".join(found)))


def _ison(link: Link, message: Message, reply: Reply) -> None:
    if not _need(link, message, reply, 1) or not link.charge():
        return
    nicks = " ".join(message.text(i) for i in range(len(message.params))).split()
    present = [person.nick for nick in nicks if (person := link.directory.person(nick)) is not None]
    reply.out.append(link.state.numeric("303", " ".join(present)))


def _mode(link: Link, message: Message, reply: Reply) -> None:
    """Queries are answered; changes refused (chatd's rooms and users have no modes)."""
    if not _need(link, message, reply, 1) or not link.charge():
        return
    state, target = link.state, message.text(0)
    modes = message.text(1)
    if target.startswith("#"):
        if not link.directory.room_exists(target):
            reply.out.append(state.numeric("403", target, "No such channel"))
        elif not modes:
            reply.out.append(state.numeric("324", target, "+n"))
        elif modes.lstrip("+") in ("b", "e", "I"):
            end = {"b": ("368", "End of channel ban list"), "e": ("349", "End of channel exception list")}
            code, text = end.get(modes.lstrip("+"), ("347", "End of channel invite list"))
            reply.out.append(state.numeric(code, target, text))
        else:
            reply.out.append(state.numeric("482", target, "chatd rooms have no channel modes to change"))
    elif target.lower() != state.key:
        known = link.directory.person(target) is not None
        reply.out.append(
            state.numeric("502", "Can't view or change modes for other users")
            if known
            else state.numeric("401", target, "No such nick/channel")
        )
    elif not modes:
        reply.out.append(state.numeric("221", "+i"))
    elif modes not in ("+i", "i"):
        reply.out.append(state.numeric("501", "Unknown MODE flag"))


def _motd(link: Link, message: Message, reply: Reply) -> None:
    if link.charge():
        reply.out.extend(ircreg.motd(link.state, link.settings))


def _lusers(link: Link, message: Message, reply: Reply) -> None:
    if link.charge():
        state, count = link.state, len(link.directory.people())
        reply.out.append(state.numeric("251", f"There are {count} users and 0 invisible on 1 servers"))
        reply.out.append(state.numeric("255", f"I have {count} clients and 0 servers"))


def _version(link: Link, message: Message, reply: Reply) -> None:
    if link.charge():
        settings = link.settings
        reply.out.append(link.state.numeric("351", settings.version, settings.server, "chatd"))


def _time(link: Link, message: Message, reply: Reply) -> None:
    if link.charge():
        now = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime())
        reply.out.append(link.state.numeric("391", link.settings.server, now))


def _refused(code: str, text: str) -> Handler:
    """Commands of IRC operators and channel operators, which chatd has not."""

    def refuse(link: Link, message: Message, reply: Reply) -> None:
        if link.charge():
            target = [message.text(0)] if code == "482" else []
            reply.out.append(link.state.numeric(code, *target, text))

    return refuse


# -- history -----------------------------------------------------------------------------------------


def _chathistory(link: Link, message: Message, reply: Reply) -> None:
    """draft/chathistory on chatd's history, ids as msgids (MSGREFTYPES=msgid)."""
    state = link.state
    sub, target = message.text(0).upper(), message.text(1)
    if sub not in ("LATEST", "BEFORE", "AFTER", "BETWEEN", "AROUND") or len(message.params) < 4:
        reply.out.append(
            state.fail("CHATHISTORY", "INVALID_PARAMS", sub or "*", "Unknown subcommand or too few parameters")
        )
        return
    refs = [_reference(message.text(i)) for i in range(2, len(message.params) - 1)]
    limit_text = message.text(len(message.params) - 1)
    if not limit_text.isdigit() or not 1 <= int(limit_text) or None in refs or (sub == "BETWEEN" and len(refs) < 2):
        reply.out.append(state.fail("CHATHISTORY", "INVALID_PARAMS", sub, "Bad message reference or limit"))
        return
    limit = min(int(limit_text), link.settings.history_page)
    history = History(target, sub)
    asks: list[str] = []
    first = refs[0] or 0
    if sub == "LATEST":
        history.after = refs[0] if refs[0] != -1 else None
        asks.append(f"{limit}")
    elif sub == "BEFORE":
        asks.append(f"before {first} {limit}")
    elif sub == "AFTER":
        asks.append(f"after {first} {limit}")
    elif sub == "BETWEEN":
        second = refs[1] or 0
        if first < second:
            history.before = second
            asks.append(f"after {first} {limit}")
        else:
            history.after = second
            asks.append(f"before {first} {limit}")
    else:  # AROUND: the older half before it, then it and the newer half
        older = limit // 2
        if older:
            asks.append(f"before {first} {older}")
        asks.append(f"after {first - 1} {limit - older}")
    history.parts = len(asks)
    for words in asks:
        link.ask(reply, Command("history", words.encode(), target), Asked(reply, target=target, history=history))


def _reference(text: str) -> int | None:
    """`*` (-1), `msgid=<id>`, else None (timestamps are not offered: MSGREFTYPES=msgid)."""
    if text == "*":
        return -1
    key, _, value = text.partition("=")
    return int(value) if key == "msgid" and value.isdigit() and len(value) < 19 else None


# Usable before registration; any other command then is ERR_NOTREGISTERED.
BEFORE_REGISTRATION: Final = frozenset({"CAP", "NICK", "USER", "PASS", "PING", "PONG", "QUIT"})

COMMANDS: Final[Mapping[str, Handler]] = MappingProxyType(
    {
        "CAP": _cap,
        "NICK": _nick,
        "USER": _user,
        "PASS": _pass,
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
        "WHO": _who,
        "WHOIS": _whois,
        "WHOWAS": _whowas,
        "AWAY": _away,
        "USERHOST": _userhost,
        "ISON": _ison,
        "MODE": _mode,
        "MOTD": _motd,
        "LUSERS": _lusers,
        "VERSION": _version,
        "TIME": _time,
        "CHATHISTORY": _chathistory,
        "KICK": _refused("482", "chatd rooms have no channel operators"),
        "INVITE": _refused("482", "chatd rooms need no invitation: anyone may join"),
        "OPER": _refused("491", "No O-lines for your host"),
        "KILL": _refused("481", "Permission Denied- You're not an IRC operator"),
    }
)
