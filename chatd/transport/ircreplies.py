"""The line protocol's replies to one client, as IRC numerics: `USERS` as
RPL_NAMREPLY or RPL_WHOREPLY (by what asked), `TOPIC` as RPL_TOPIC,
`ROOM`/`ROOMS` as RPL_LIST, `HISTORY` as the end of a join's backlog or of a
CHATHISTORY batch, `WELCOME` as the registration burst; and the events of a
block read for one client (its own echo, its own joins and renames).

`Personal.block` reads one delivered block for one client, with the
command (`Asked`) it answers when there is one, and returns the lines that
answer it and the lines that do not (a DM to oneself: the delivery is not
part of the labeled answer). No I/O; the codec (irc.py) sends.

What is not here: `ERR <code>` as the numeric of the command in flight
(ircerrors.py), and room events as the members share them (ircout.py `Frames`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from chatd.transport import ircmessage
from chatd.transport.ircerrors import error_reply
from chatd.transport.ircout import Frames, Native, Person, read_native
from chatd.transport.ircreg import Settings, welcome
from chatd.transport.ircstate import Asked, History, IrcState

_NAMES_WIDTH = 400  # bytes of nicknames per RPL_NAMREPLY line


@dataclass(slots=True)
class Lines:
    """What one block says to one client: the answer to its command, and the rest."""

    answer: list[bytes] = field(default_factory=list)
    other: list[bytes] = field(default_factory=list)
    # The block answered a CHATHISTORY (its HISTORY line, or an ERR).
    history_answered: bool = False


def add_tag(line: bytes, tag: str) -> bytes:
    """`line` with one more tag in front of the others."""
    if line.startswith(b"@"):
        return b"@%s;%s" % (tag.encode(), line[1:])
    return b"@%s %s" % (tag.encode(), line)


class Personal:
    def __init__(self, state: IrcState, frames: Frames, settings: Settings) -> None:
        self.state = state
        self.frames = frames
        self.directory = frames.directory
        self.settings = settings
        self._roles: dict[str, dict[str, str]] = {}  # of the block being read: room key -> nick key -> role

    def block(self, data: bytes, asked: Asked | None) -> Lines:
        lines = Lines()
        events: list[Native] = []
        raw_lines = data.split(b"\n")
        raw_lines.pop()
        natives = [read_native(raw) for raw in raw_lines]
        # A registered room's USERS comes with its ROLES after it: read first, for the prefixes.
        self._roles = {n.rest.partition(b" ")[0].decode().lower(): _roles(n) for n in natives if n.verb == b"ROLES"}
        for native in natives:
            if native.history:
                events.append(native)
            elif native.verb == b"HISTORY":
                self._history(native, events, asked, lines)
                events = []
            else:
                self._line(native, asked, lines)
        return lines

    # -- one line ------------------------------------------------------------------------

    def _line(self, native: Native, asked: Asked | None, lines: Lines) -> None:
        state, verb = self.state, native.verb
        out = lines.answer
        if verb in (b"MSG", b"ACTION", b"DM", b"TAGMSG") or (verb == b"TOPIC" and native.id):
            self._event(native, lines)
        elif verb in (b"JOIN", b"PART", b"RENAME", b"LEAVE", b"KICK", b"ROLE", b"FLAG", b"REGISTERED"):
            self._membership(native, out)
        elif verb == b"PROVEN":  # SASL's answer (chatd/core/sasl.py)
            out.extend(self._proven(native.rest.decode()))
        elif verb == b"WELCOME":
            state.rename(native.rest.partition(b" ")[0].decode())
            state.registered = True
            out.extend(welcome(state, self.settings))
        elif verb == b"ERR":
            code, _, text = native.rest.partition(b" ")
            out.extend(error_reply(state, self.directory, code.decode(), text.decode(), asked))
            if asked is not None and asked.history is not None:
                lines.history_answered = True
                if code == b"no_history":  # nothing kept for that target: an empty batch
                    out.extend(self._history_batch(asked.history, []))
        elif verb == b"USERS":
            self._users(native, asked, out)
        elif verb == b"TOPIC":
            self._topic(native, out)
        elif verb == b"ROOM":
            room, count, topic = ([*native.args(3), b""])[:3]
            if asked is None or asked.rooms is None or room.lower().decode() in asked.rooms:
                out.append(state.numeric("322", room.decode(), count.decode(), topic.decode()))
        elif verb == b"ROOMS":
            out.append(state.numeric("323", "End of /LIST"))
        elif verb == b"TARGET":  # CHATHISTORY TARGETS: one target, its last event's time
            if asked is not None and asked.history is not None:
                name, when = ([*native.args(2), b""])[:2]
                line = ircmessage.line(state.server, "CHATHISTORY", "TARGETS", name.decode(), when.decode())
                asked.history.events.append(line)
        elif verb == b"TARGETS":
            if asked is not None and asked.history is not None:
                lines.history_answered = True
                out.extend(self._history_batch(asked.history, asked.history.events))
        elif verb == b"INVITE":  # INVITE <room> <nick> <by>: to the invitee, and echoed to the inviter
            room, nick, by = ([*native.args(3), b"", b""])[:3]
            if nick.lower().decode() == state.key:
                out.append(f":{self.frames.source(by)} INVITE {state.nick} {room.decode()}\r\n".encode())
            else:
                out.append(state.numeric("341", nick.decode(), room.decode()))
        elif verb == b"BAN":  # BAN <room> <mask> <by> <set> <reason>: one of /bans (MODE #room b)
            room, mask, by, when = ([*native.args(5), b"", b"", b""])[:4]
            out.append(state.numeric("367", room.decode(), mask.decode(), by.decode(), str(_seconds(when.decode()))))
        elif verb == b"BANS":
            out.append(state.numeric("368", native.rest.partition(b" ")[0].decode(), "End of channel ban list"))
        elif verb == b"PONG":
            out.append(ircmessage.line(state.server, "PONG", state.server, native.rest.decode()))
        elif verb == b"INFO":
            if asked is None or asked.reply.command != "NICK":  # "you are already X": IRC says nothing
                out.append(state.notice(native.rest.decode()))
        # HELLO, NICK (the prompt), CURRENT: IRC has no such thing.

    def _proven(self, name: str) -> list[bytes]:
        state = self.state
        state.account, state.sasl_pending = name, False
        mask = f"{state.wanted or name}!{state.user or '*'}@irc"
        return [
            state.numeric("900", mask, name, f"You are now logged in as {name}"),
            state.numeric("903", "SASL authentication successful"),
        ]

    def _event(self, native: Native, lines: Lines) -> None:
        """A live event: another client's, or this client's own (its echo)."""
        state = self.state
        line, about = self.frames.event(native, state.profile)
        if not line:
            return
        if about != state.key:
            lines.other.append(line)
            return
        if native.verb == b"TOPIC":
            lines.answer.append(line)  # IRC tells the setter of a topic, always
            return
        echo = state.has("echo-message")
        if _to_self(native, state.nick.encode()):
            if echo:
                lines.answer.append(line)  # to oneself: the echo, and the delivery
            lines.other.append(line)
        elif echo:
            lines.answer.append(line)

    def _membership(self, native: Native, out: list[bytes]) -> None:
        state = self.state
        line, about = self.frames.event(native, state.profile)
        if about == state.key:
            if native.verb == b"JOIN":
                room = native.rest.partition(b" ")[0].decode()
                state.rooms[room.lower()] = room
            elif native.verb in (b"PART", b"KICK"):
                state.rooms.pop(native.rest.partition(b" ")[0].decode().lower(), None)
            elif native.verb == b"RENAME":
                state.rename(native.rest.partition(b" ")[2].decode())
        if line:
            out.append(line)

    def _prefix(self, room: str, nick: str, creator: str) -> str:
        """`@` for owners and ops, `+` for voices in a registered room (its ROLES
        came in the same block); in another, `@` for its creator."""
        roles = self._roles.get(room.lower())
        if roles is None:
            return "@" if nick.lower() == creator else ""
        role = roles.get(nick.lower(), "member")
        return "@" if role in ("owner", "op") else "+" if role == "voice" else ""

    def _users(self, native: Native, asked: Asked | None, out: list[bytes]) -> None:
        state = self.state
        room, *nicks = native.rest.decode().split(" ")
        creator = self.directory.creator(room)
        key = creator.lower() if creator else ""
        if asked is not None and asked.reply.command == "WHO":
            for nick in nicks:
                person = self.directory.person(nick)
                if person is not None:
                    flags = ("G" if person.away else "H") + self._prefix(room, nick, key)
                    out.append(who_reply(state, room, person, flags))
            out.append(state.numeric("315", asked.mask or room, "End of /WHO list"))
            return
        masks = state.has("userhost-in-names")
        names = []
        for nick in nicks:
            name = self.frames.mask(nick) if masks else nick
            names.append(self._prefix(room, nick, key) + name)
        chunk: list[str] = []
        for name in names:
            if chunk and sum(len(n) + 1 for n in chunk) + len(name) > _NAMES_WIDTH:
                out.append(state.numeric("353", "=", room, " ".join(chunk)))
                chunk = []
            chunk.append(name)
        out.append(state.numeric("353", "=", room, " ".join(chunk)))
        out.append(state.numeric("366", room, "End of /NAMES list"))

    def _topic(self, native: Native, out: list[bytes]) -> None:
        state = self.state
        room, setter, text = ([*native.rest.decode().split(" ", 2), ""])[:3]
        if not text:
            out.append(state.numeric("331", room, "No topic is set"))
            return
        out.append(state.numeric("332", room, text))
        when = self.directory.topic_time(room)
        if when:
            out.append(state.numeric("333", room, self.frames.mask(setter), str(when)))

    # -- history: a join's backlog, a CHATHISTORY answer ---------------------------------------

    def _history(self, native: Native, events: list[Native], asked: Asked | None, lines: Lines) -> None:
        state, profile = self.state, self.state.profile
        history = asked.history if asked is not None else None
        if history is None:  # a join's backlog, for those that show server-time
            if state.has("draft/chathistory") or not state.has("server-time") or not self.settings.backlog:
                return
            room = native.rest.partition(b" ")[0].decode()
            kept = [e for e in events if e.verb != b"TOPIC"][-self.settings.backlog :]
            translated = [self.frames.event(event, profile)[0] for event in kept]
            lines.answer.extend(self._batch(room, translated) if translated else [])
            return
        lines.history_answered = True
        for event in events:
            if event.verb == b"TOPIC" or not event.id.isdigit():
                continue  # no event-playback: messages only
            ident = int(event.id)
            if (history.after is None or ident > history.after) and (history.before is None or ident < history.before):
                history.events.append(self.frames.event(event, profile)[0])
        history.parts -= 1
        if history.parts <= 0:
            lines.answer.extend(self._batch(history.target, history.events))

    def _history_batch(self, history: History, events: list[bytes]) -> list[bytes]:
        if history.sub == "TARGETS":
            return self._batch("", events, "draft/chathistory-targets")
        return self._batch(history.target, events)

    def _batch(self, target: str, events: list[bytes], kind: str = "chathistory") -> list[bytes]:
        """`events` in a batch of `kind` (when the client has `batch`)."""
        state = self.state
        if not state.has("batch"):
            return events
        ident = state.batch_id()
        return [
            ircmessage.line(state.server, "BATCH", f"+{ident}", kind, *([target] if target else [])),
            *(add_tag(event, f"batch={ident}") for event in events),
            ircmessage.line(state.server, "BATCH", f"-{ident}"),
        ]


def _to_self(native: Native, nick: bytes) -> bool:
    """A DM or a TAGMSG from this client to itself: delivered once by the
    chat, shown twice by IRC (the echo, and the delivery)."""
    if native.verb == b"DM":  # DM <from> <to> <text>
        return native.rest.split(b" ", 2)[1:2] == [nick]
    if native.verb == b"TAGMSG":  # TAGMSG <target> <nick>
        return native.rest.split(b" ", 1)[0].lower() == nick.lower()
    return False


def who_reply(state: IrcState, channel: str, person: Person, flags: str) -> bytes:
    """RPL_WHOREPLY: `<channel> <user> <host> <server> <nick> <flags> :0 <realname>`."""
    return state.numeric(
        "352", channel, person.user, person.host, state.server, person.nick, flags, f"0 {person.realname}"
    )


def _roles(native: Native) -> dict[str, str]:
    """`ROLES <room> <nick>:<role> ...` as nickname key -> role."""
    held = native.rest.decode().split(" ")[1:]
    return {nick.lower(): role for nick, _, role in (item.partition(":") for item in held if item)}


def _seconds(when: str) -> int:
    """An event time (`YYYY-MM-DDTHH:MM:SS.mmmZ`) in seconds since the epoch; 0 if unreadable."""
    try:
        return int(datetime.datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
