"""IRC commands the listener answers itself, from what the `Directory`
knows of the chat's clients and rooms, where the chat core has nothing to
say: WHO with a mask, WHOIS, WHOWAS, AWAY, USERHOST, ISON, MODE (queries
answered, changes refused: chatd's rooms and users have no modes), MOTD,
LUSERS, VERSION, TIME, and the operators' commands refused.

Each answer takes a line's worth of the session's flood control budget
(`link.charge()`), as the session's own commands do; none is a strike.
What `WHO #room` answers is the chat's (its `who` command: ircin.py).
"""

from __future__ import annotations

import fnmatch
import time
from typing import Final

from chatd.outlet import Command
from chatd.transport import ircreg
from chatd.transport.irclink import Handler, Link, clean_text, need
from chatd.transport.ircmessage import Message
from chatd.transport.ircout import FLAG_MODES, Person
from chatd.transport.ircreplies import who_reply
from chatd.transport.ircstate import Asked, IrcState, Reply


def who(link: Link, message: Message, reply: Reply) -> None:
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


def whois(link: Link, message: Message, reply: Reply) -> None:
    if not need(link, message, reply, 1) or not link.charge():
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


def whowas(link: Link, message: Message, reply: Reply) -> None:
    if need(link, message, reply, 1) and link.charge():
        nick = message.text(0)
        reply.out.append(link.state.numeric("406", nick, "There was no such nickname"))
        reply.out.append(link.state.numeric("369", nick, "End of WHOWAS"))


def away(link: Link, message: Message, reply: Reply) -> None:
    if not link.charge():
        return
    state = link.state
    state.away = clean_text(message.text(0))[:200]
    if state.away:
        reply.out.append(state.numeric("306", "You have been marked as being away"))
    else:
        reply.out.append(state.numeric("305", "You are no longer marked as being away"))


def userhost(link: Link, message: Message, reply: Reply) -> None:
    if not need(link, message, reply, 1) or not link.charge():
        return
    found = []
    for nick in " ".join(message.text(i) for i in range(len(message.params))).split()[:5]:
        person = link.directory.person(nick)
        if person is not None:
            found.append(f"{person.nick}={'-' if person.away else '+'}{person.user}@{person.host}")
    reply.out.append(link.state.numeric("302", " ".join(found)))


def ison(link: Link, message: Message, reply: Reply) -> None:
    if not need(link, message, reply, 1) or not link.charge():
        return
    nicks = " ".join(message.text(i) for i in range(len(message.params))).split()
    present = [person.nick for nick in nicks if (person := link.directory.person(nick)) is not None]
    reply.out.append(link.state.numeric("303", " ".join(present)))


def mode(link: Link, message: Message, reply: Reply) -> None:
    """A room's modes: queries answered here (324 with its flags as modes),
    changes handed to the session as room commands (+o `/op`, +v `/voice`,
    +b `/ban`, +t +m +s +R the room's flags: registered rooms only, by its
    owner and ops). A client's own: +i always, nothing to change."""
    if not need(link, message, reply, 1) or not link.charge():
        return
    state, target = link.state, message.text(0)
    modes = message.text(1)
    if target.startswith("#"):
        if not link.directory.room_exists(target):
            reply.out.append(state.numeric("403", target, "No such channel"))
        elif not modes:
            flags = sorted(FLAG_MODES[flag] for flag in link.directory.flags(target) if flag in FLAG_MODES)
            reply.out.append(state.numeric("324", target, "+n" + "".join(flags)))
        else:
            _room_modes(link, message, reply, target)
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


_ROLE_VERBS: Final = {"+o": "op", "-o": "deop", "+v": "voice", "-v": "devoice"}
_FLAGS_OF: Final = {letter: flag for flag, letter in FLAG_MODES.items()}


def _room_modes(link: Link, message: Message, reply: Reply, room: str) -> None:
    state = link.state
    args = [message.text(i) for i in range(2, len(message.params))]
    sign = "+"
    for char in message.text(1):
        if char in "+-":
            sign = char
        elif char in "ov" or (char == "b" and args):
            if not args:
                reply.out.append(state.numeric("461", "MODE", "Not enough parameters"))
                return
            who = args.pop(0)
            if char == "b":
                command = Command("ban" if sign == "+" else "unban", target=room, option=_ban_mask(who))
            else:
                command = Command(_ROLE_VERBS[sign + char], target=room, option=who)
            link.ask(reply, command, Asked(reply, target=room, mask=who))
        elif char == "b":  # the list: the session's /bans (ops only)
            link.ask(reply, Command("bans", target=room), Asked(reply, target=room, mask="b"))
        elif char in "eI":
            end = ("349", "End of channel exception list") if char == "e" else ("347", "End of channel invite list")
            reply.out.append(state.numeric(end[0], room, end[1]))
        elif char in _FLAGS_OF:
            flag, value = _FLAGS_OF[char], b"on" if sign == "+" else b"off"
            link.ask(reply, Command("room", value, room, flag), Asked(reply, target=room))
        elif char != "n":  # +n: always so (only members speak)
            reply.out.append(state.numeric("472", char, "is unknown mode char to me"))


def _ban_mask(mask: str) -> str:
    """An IRC ban mask as chatd's (a nickname, account:name, an address or
    network): `bob!*@*` is the nickname, `*!*@192.0.2.7` the address."""
    nick, _, host = mask.partition("!")
    host = host.partition("@")[2]
    if host and nick in ("", "*"):
        return host
    return nick


def motd(link: Link, message: Message, reply: Reply) -> None:
    if link.charge():
        reply.out.extend(ircreg.motd(link.state, link.settings))


def lusers(link: Link, message: Message, reply: Reply) -> None:
    if link.charge():
        state, count = link.state, len(link.directory.people())
        reply.out.append(state.numeric("251", f"There are {count} users and 0 invisible on 1 servers"))
        reply.out.append(state.numeric("255", f"I have {count} clients and 0 servers"))


def version(link: Link, message: Message, reply: Reply) -> None:
    if link.charge():
        settings = link.settings
        reply.out.append(link.state.numeric("351", settings.version, settings.server, "chatd"))


def current_time(link: Link, message: Message, reply: Reply) -> None:
    if link.charge():
        now = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime())
        reply.out.append(link.state.numeric("391", link.settings.server, now))


def refused(code: str, text: str) -> Handler:
    """Commands of IRC operators and channel operators, which chatd has not."""

    def refuse(link: Link, message: Message, reply: Reply) -> None:
        if link.charge():
            target = [message.text(0)] if code == "482" else []
            reply.out.append(link.state.numeric(code, *target, text))

    return refuse
