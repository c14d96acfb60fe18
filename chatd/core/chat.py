"""Chat: the state every session shares (nicknames, rooms, the config) and the
operations that touch more than one client: joining, parting, leaving the
server, renaming, topics, and what the operator commands ask for.

Announcements follow docs/protocol.md: a room's events go to its members; a
client that leaves the server, or is renamed, is announced once to each
client that shares at least one room with it, however many rooms that is.
"""

from __future__ import annotations

from typing import Iterable

from chatd.config import Config
from chatd.core import protocol
from chatd.core.nicks import Client, Nicks
from chatd.core.rooms import Member, Room, Rooms, Sender
from chatd.errors import ProtocolError


class Chat:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.nicks = Nicks()
        self.rooms = Rooms(config.rooms.permanent)
        self.stopping = False  # no LEAVE announcements while everybody is leaving

    def configure(self, config: Config) -> None:
        """A reload: new limits and room settings; rooms and members stay."""
        self.config = config
        self.rooms.set_permanent(config.rooms.permanent)

    # -- rooms ---------------------------------------------------------------------

    def join(self, client: Client, name: str, joined: int, sender: Sender | None) -> Room:
        """Put `client` (already in `joined` rooms, not in this one) in room `name`:
        `JOIN` to the room, then the topic and the member list to the client.

        Raises:
            ProtocolError: `room_invalid`, `no_such_room`, `too_many_rooms`.
        """
        protocol.check_room(name)
        config = self.config
        if joined >= config.limits.max_rooms_per_client:
            raise ProtocolError(
                protocol.TOO_MANY_ROOMS,
                f"You are in {joined} rooms, the most allowed; /part one first.",
            )
        with self.rooms.changing:  # one order of JOIN, PART and USERS for everyone
            room = self.rooms.join(client, name, config.rooms.allow_create, config.limits.max_rooms)
            room.broadcast(protocol.format_line("JOIN", room.name, client.nick), sender=sender)
            if room.topic:
                client.deliver(self.topic_line(room))
            client.deliver(protocol.format_users(room.name, room.nicks()))
        return room

    def part(self, client: Client, room: Room, text: str) -> None:
        line = protocol.format_line("PART", room.name, client.nick, text)
        with self.rooms.changing:
            for member in self.rooms.part(client, room):  # the leaver too
                member.deliver(line)

    def set_topic(self, client: Client, room: Room, text: str) -> None:
        with self.rooms.changing:
            room.topic, room.topic_by = text, client.nick
            room.broadcast(self.topic_line(room))

    @staticmethod
    def topic_line(room: Room) -> bytes:
        return protocol.format_line("TOPIC", room.name, room.topic_by, room.topic)

    def room_list(self) -> list[bytes]:
        """`/rooms`: a `ROOM` line per room, then `ROOMS <count>`."""
        rooms = self.rooms.all()
        lines = [protocol.format_line("ROOM", r.name, str(len(r)), r.topic) for r in rooms]
        return [*lines, protocol.format_line("ROOMS", str(len(rooms)))]

    # -- the server as a whole ------------------------------------------------------

    def register(self, client: Client, nick: str, greeting: bytes) -> None:
        self.nicks.claim(client, nick, greeting)

    def leave(self, client: Client, rooms: Iterable[Room], reason: str | None) -> None:
        """Take `client` out of every room and free its nickname; with a
        `reason`, tell each client that shared a room with it, once."""
        sharers: dict[int, Member] = {}
        with self.rooms.changing:
            for room in rooms:
                # Who was there when it left: a client joining at the same moment
                # either sees it in USERS and gets the LEAVE, or sees neither.
                for member in self.rooms.part(client, room):
                    sharers[id(member)] = member
        self.nicks.release(client)
        if reason is None or self.stopping:
            return
        line = protocol.format_line("LEAVE", client.nick, reason)
        for member in sharers.values():
            if member is not client:
                member.deliver(line)

    def rename(self, client: Client, rooms: Iterable[Room], new: str) -> str:
        """Rename `client`; `RENAME` once to it and to each client sharing a room."""
        with self.rooms.changing:  # USERS lists show the old nick or get the RENAME
            old = self.nicks.rename(client, new)
            line = protocol.format_line("RENAME", old, new)
            client.deliver(line)
            seen = {id(client)}
            for room in rooms:
                for member in room.members:
                    if id(member) not in seen:
                        seen.add(id(member))
                        member.deliver(line)
        return old

    def broadcast(self, data: bytes) -> int:
        """An operator's line to every registered client; returns how many."""
        clients = self.nicks.members()
        for client in clients:
            client.deliver(data)
        return len(clients)
