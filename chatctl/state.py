"""What `chatctl connect` knows about its session: no sockets, no terminal.

`ClientState` is fed every server line (`on_line`) and every line the user
sends (`on_command`), and keeps what both modes of the client act on and the
terminal UI shows: the protocol version, your nickname, the rooms you are in
(in the order you joined them) with their members, topics and unread counts,
the current room, and the room names seen anywhere (for completion). It
follows docs/protocol.md and trusts the server: the current room is what the
last `CURRENT` said, never what the client guessed.

The helpers that read a server line (`split_line`, `line_tags`, `line_room`)
live here too, so that chatctl/render.py, chatctl/timeline.py and the state
read lines the same way. Lines tagged `history` (docs/protocol.md, "Events
and tags") are events of the past: they change nothing here and never count
as unread. Nothing here imports another chatctl module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

# Lines that happen in a room, with the room as their first argument (v2).
ROOM_VERBS: Final = frozenset({"MSG", "ACTION", "JOIN", "PART", "TOPIC", "USERS"})
# v5: a registered room's roles, flags and moderation, the room first too.
MODERATION_VERBS: Final = frozenset({"REGISTERED", "ROLES", "ROLE", "FLAGS", "FLAG", "KICK", "INVITE", "BAN", "BANS"})
# Lines that count as unread in a room that is not the current one: people
# talking, not the comings and goings around them.
_UNREAD_VERBS: Final = frozenset({"MSG", "ACTION"})
# ERR codes that answer a /join, so a room switch the client asked for did not happen.
_JOIN_ERRORS: Final = frozenset(
    {
        "room_invalid",
        "no_such_room",
        "too_many_rooms",
        "not_in_room",
        "invite_only",
        "banned_from_room",
        "accounts_only",
    }
)


def split_line(line: str) -> tuple[str, str]:
    """A server line as (verb, the rest), without a trailing `\\r` or a leading
    `@tags` word (docs/protocol.md, "Line format"; see `line_tags`)."""
    line = line.removesuffix("\r")
    if line.startswith("@"):
        line = line.partition(" ")[2]
    verb, _, rest = line.partition(" ")
    return verb, rest


@dataclass(frozen=True)
class Tags:
    """What an event's tags say (docs/protocol.md, "Events and tags")."""

    id: int | None = None  # None: no id, or one that is not a positive integer
    time: datetime | None = None  # UTC; None: absent or malformed
    history: bool = False  # sent again from the server's history, not live


NO_TAGS: Final = Tags()


def line_tags(line: str) -> Tags:
    """The tags of a server line; unknown keys and malformed values are ignored."""
    if not line.startswith("@"):
        return NO_TAGS
    event_id: int | None = None
    when: datetime | None = None
    history = False
    for item in line[1:].partition(" ")[0].split(";"):
        key, _, value = item.partition("=")
        if key == "id" and value.isascii() and value.isdigit() and int(value) > 0:
            event_id = int(value)
        elif key == "time":
            when = parse_time(value)
        elif key == "history":
            history = True
    return Tags(event_id, when, history)


def parse_time(text: str) -> datetime | None:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ` as an aware UTC datetime, or None."""
    if not text.endswith("Z") or not text.isascii():
        return None
    try:
        return datetime.strptime(text[:-1], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return None


def is_room(word: str) -> bool:
    """Room names start with `#`; nicknames never do."""
    return word.startswith("#")


def line_room(verb: str, rest: str) -> str | None:
    """The room a server line happens in, or None (DM, INFO, a v1 line, ...)."""
    if verb not in ROOM_VERBS and verb not in MODERATION_VERBS:
        return None
    room = rest.partition(" ")[0]
    return room if is_room(room) else None


def same_nick(a: str, b: str) -> bool:
    """Nicknames are equal without regard to case (docs/protocol.md)."""
    return a.lower() == b.lower()


def room_key(name: str) -> str:
    """Room names, too, are equal without regard to case."""
    return name.lower()


@dataclass
class Room:
    """A room you are in."""

    name: str  # the server's spelling
    members: list[str] = field(default_factory=list)
    topic: str = ""
    unread: int = 0  # messages and actions since it was last the current room
    # A registered room's (v5): roles above member by nickname key, and the flags that are on.
    roles: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


class ClientState:
    """One client session as the server's lines describe it."""

    def __init__(self) -> None:
        self.version: int | None = None  # from HELLO; 1 when NICK comes first
        self.nick = ""  # yours: set by WELCOME, changed by RENAME
        self.registered = False
        self.rooms: dict[str, Room] = {}  # by room_key, in the order you joined them
        self.current: str | None = None  # the name of the current room
        # A v1 server has no rooms: everyone connected is in the one conversation.
        self.everyone: list[str] = []
        self._known: dict[str, str] = {}  # room names seen anywhere, by key
        self._listing: list[str] | None = None  # ROOM lines of a /rooms answer so far
        self._switching_to: str | None = None  # a /join sent, its CURRENT not yet seen

    # -- what the UI asks -------------------------------------------------------------

    @property
    def current_room(self) -> Room | None:
        return self.rooms.get(room_key(self.current)) if self.current is not None else None

    def role(self, room: str, nick: str) -> str:
        """`nick`'s role in `room` (`member` when none is known)."""
        known = self.rooms.get(room_key(room))
        return known.roles.get(nick.lower(), "member") if known is not None else "member"

    def room_names(self) -> list[str]:
        """Rooms for completion: yours in the order joined, then the others seen, sorted."""
        mine = [room.name for room in self.rooms.values()]
        others = sorted((name for key, name in self._known.items() if key not in self.rooms), key=str.lower)
        return mine + others

    def nicks(self) -> list[str]:
        """Nicknames for completion: the current room's first, then those of your
        other rooms, each once; your own is left out."""
        current = self.current_room
        groups = [current.members] if current is not None else []
        groups += [room.members for room in self.rooms.values() if room is not current]
        groups.append(self.everyone)
        seen = {self.nick.lower()} if self.nick else set()
        result = []
        for members in groups:
            for nick in members:
                if nick.lower() not in seen:
                    seen.add(nick.lower())
                    result.append(nick)
        return result

    def next_room(self) -> str | None:
        """Where the switch key goes: the next room (after the current one, in
        the order joined, wrapping) with unread lines; if none has any, the next
        room. None when there is nowhere else to go."""
        order = self._order_from_base()
        if not order:
            return None
        unread = [room for room in order if room.unread]
        return (unread[0] if unread else order[0]).name

    def previous_room(self) -> str | None:
        """The room before the current one in the order joined (wrapping), or None."""
        order = self._order_from_base()
        return order[-1].name if order else None

    def _order_from_base(self) -> list[Room]:
        """Your rooms after the current one (or the one being switched to), wrapping,
        without it."""
        rooms = list(self.rooms.values())
        base = self._switching_to or self.current
        keys = list(self.rooms)
        if base is None or room_key(base) not in self.rooms:
            return rooms
        at = keys.index(room_key(base))
        return rooms[at + 1 :] + rooms[:at]

    # -- a new connection -------------------------------------------------------------

    def connection_lost(self) -> None:
        """Forget what belonged to the connection (rooms, members, the current
        room, registration) before reconnecting. Your nickname and the room
        names seen stay: the next connection registers with the same nickname."""
        self.version = None
        self.registered = False
        self.rooms = {}
        self.current = None
        self.everyone = []
        self._listing = None
        self._switching_to = None

    def reorder(self, names: list[str]) -> None:
        """Put your rooms in the order of `names` (the order before a reconnect);
        rooms not named keep their place after them."""
        keys = [room_key(name) for name in names]
        ordered = {key: self.rooms[key] for key in keys if key in self.rooms}
        ordered.update(self.rooms)
        self.rooms = ordered

    # -- what the user sent -----------------------------------------------------------

    def on_command(self, text: str) -> None:
        """A line the user sent. A `/join` of a room already joined is a switch:
        a second switch key before its `CURRENT` arrives starts from there."""
        word, _, rest = text.partition(" ")
        if word == "/join" and is_room(rest.strip()):
            self._switching_to = rest.strip()

    # -- what the server sent ---------------------------------------------------------

    def on_line(self, line: str) -> None:
        """Take in one server line (without its newline)."""
        verb, rest = split_line(line)
        args = rest.split(" ")
        if line_tags(line).history:
            # An event of the past: it says nothing about now (a backlog TOPIC is
            # not the topic), and is never unread.
            room = line_room(verb, rest)
            if room is not None:
                self._known.setdefault(room_key(room), room)
            return
        if verb == "HELLO":
            if self.version is None and args[0].isdigit():
                self.version = int(args[0])
        elif verb == "NICK":
            if self.version is None:
                self.version = 1  # a v1 server greets with NICK (docs/protocol.md, "Version")
        elif verb == "WELCOME":
            self.nick = args[0]
            self.registered = True
        elif verb == "CURRENT" and (args[0] == "*" or is_room(args[0])):
            self._on_current(args[0])
        elif verb == "ERR":
            if args[0] in _JOIN_ERRORS:
                self._switching_to = None
        elif verb == "LEAVE":
            self._forget(args[0])
        elif verb == "RENAME" and len(args) == 2:
            self._rename(*args)
        elif verb == "ROOM" and is_room(args[0]):
            if self._listing is None:
                self._listing = []
            self._listing.append(args[0])
        elif verb == "ROOMS":
            self._on_listing_done()
        elif verb in ROOM_VERBS:
            room = line_room(verb, rest)
            if room is None:
                self._on_v1_line(verb, args)
            else:
                self._known.setdefault(room_key(room), room)
                self._on_room_line(verb, room, rest.partition(" ")[2])
        elif verb in MODERATION_VERBS and is_room(args[0]) and room_key(args[0]) in self.rooms:
            self._on_moderation(verb, self.rooms[room_key(args[0])], args[1:])

    def _on_moderation(self, verb: str, room: Room, args: list[str]) -> None:
        """Roles and flags of a room you are in; a `KICK` of you takes you out
        (the server's `CURRENT` follows if it was the current room)."""
        if verb == "ROLES":
            room.roles = {nick.lower(): role for nick, _, role in (a.rpartition(":") for a in args if ":" in a)}
        elif verb == "ROLE" and len(args) >= 2:
            if args[1] == "member":
                room.roles.pop(args[0].lower(), None)
            else:
                room.roles[args[0].lower()] = args[1]
        elif verb == "FLAGS":
            room.flags = [flag for flag in args if flag]
        elif verb == "FLAG" and len(args) >= 2:
            room.flags = [f for f in room.flags if f != args[0]] + ([args[0]] if args[1] == "on" else [])
        elif verb == "REGISTERED" and args[:1] == ["*"]:
            room.roles, room.flags = {}, []
        elif verb == "KICK" and args:
            if self.nick and same_nick(args[0], self.nick):
                del self.rooms[room_key(room.name)]
            else:
                _remove(room.members, args[0])
                room.roles.pop(args[0].lower(), None)

    def _on_room_line(self, verb: str, name: str, rest: str) -> None:
        key = room_key(name)
        nick, _, text = rest.partition(" ")
        own = bool(self.nick) and same_nick(nick, self.nick)
        if verb == "JOIN" and own:
            self.rooms.setdefault(key, Room(name))
        room = self.rooms.get(key)
        if room is None:
            return  # a room you are not in: a /who answer, or a late line after /part
        if verb == "JOIN":
            _add(room.members, nick)
        elif verb == "PART":
            if own:
                del self.rooms[key]
            else:
                _remove(room.members, nick)
                room.roles.pop(nick.lower(), None)
        elif verb == "USERS":
            room.members = [n for n in rest.split(" ") if n]
        elif verb == "TOPIC":
            room.topic = text
        elif verb in _UNREAD_VERBS and not own and room is not self.current_room:
            room.unread += 1

    def _on_v1_line(self, verb: str, args: list[str]) -> None:
        if verb == "JOIN" and len(args) == 1:
            _add(self.everyone, args[0])
        elif verb == "USERS":
            self.everyone = [nick for nick in args if nick]

    def _on_current(self, name: str) -> None:
        self._switching_to = None
        if name == "*":  # in no room
            self.current = None
            return
        room = self.rooms.get(room_key(name))
        self.current = room.name if room is not None else name
        if room is not None:
            room.unread = 0

    def _on_listing_done(self) -> None:
        """A /rooms answer lists every room there is: forget those that ended."""
        listed = self._listing or []
        self._listing = None
        self._known = {room_key(name): name for name in listed}
        for key, room in self.rooms.items():
            self._known.setdefault(key, room.name)

    def _forget(self, nick: str) -> None:
        for room in self.rooms.values():
            _remove(room.members, nick)
            room.roles.pop(nick.lower(), None)
        _remove(self.everyone, nick)

    def _rename(self, old: str, new: str) -> None:
        if self.nick and same_nick(old, self.nick):
            self.nick = new
        for room in self.rooms.values():
            if old.lower() in room.roles:
                room.roles[new.lower()] = room.roles.pop(old.lower())
        for members in [*(room.members for room in self.rooms.values()), self.everyone]:
            for index, nick in enumerate(members):
                if same_nick(nick, old):
                    members[index] = new


def _add(members: list[str], nick: str) -> None:
    if not any(same_nick(nick, member) for member in members):
        members.append(nick)


def _remove(members: list[str], nick: str) -> None:
    members[:] = [member for member in members if not same_nick(member, nick)]
