"""The IRC listener's wiring: what the IRC codec (chatd/transport/irc.py)
is given, and the `Directory` through which it reads the chat.

The server (chatd/server.py) opens the listener's socket beside the chat
port; its connections get the same TLS context, admission, limits and
workers, and after the handshake an `IrcCodec` with a chat `Session` of
their own, made here. `ChatDirectory` answers the codec's questions about
other clients and rooms (user@host, away, who created a room) from the chat
core's nickname registry and room table: it is the one module that knows
both the core's `Session` and the transport's `IrcCodec`.
"""

from __future__ import annotations

import socket
import time

from chatd import __version__
from chatd.addresses import split_host_port
from chatd.config import Config
from chatd.core.chat import Chat
from chatd.core.nicks import Client
from chatd.core.registry import OP, VOICE
from chatd.core.rooms import Room
from chatd.core.session import Session
from chatd.outlet import SharedDelivery
from chatd.transport.endpoint import Endpoint
from chatd.transport.irc import IrcCodec, IrcGroup
from chatd.transport.ircout import Frames, Person
from chatd.transport.ircreg import Settings
from chatd.transport.listening import listen_on


class ChatDirectory:
    """The chat's clients and rooms, as the IRC codec asks about them (any thread)."""

    def __init__(self, chat: Chat) -> None:
        self.chat = chat

    def person(self, nick: str) -> Person | None:
        client = self.chat.nicks.find(nick)
        return None if client is None else _person(client)

    def people(self) -> list[Person]:
        return [_person(client) for client in self.chat.nicks.members()]

    def rooms_of(self, nick: str) -> tuple[str, ...]:
        """`nick`'s rooms, each with its prefix (RPL_WHOISCHANNELS)."""
        client = self.chat.nicks.find(nick)
        if not isinstance(client, Session):
            return ()
        rooms = list(client.rooms.values())  # one step under the GIL: the owner may be changing it
        return tuple(_prefix(room, client) + room.name for room in rooms)

    def creator(self, room: str) -> str | None:
        found = self.chat.rooms.find(room)
        creator = found.creator if found is not None else None
        return creator.nick if creator is not None else None

    def room_exists(self, room: str) -> bool:
        return self.chat.rooms.find(room) is not None

    def flags(self, room: str) -> frozenset[str]:
        found = self.chat.rooms.find(room)
        registration = found.registration if found is not None else None
        return frozenset(registration.flags) if registration is not None else frozenset()

    def topic_time(self, room: str) -> int:
        found = self.chat.rooms.find(room)
        return found.topic_ms // 1000 if found is not None else 0

    def shares_room(self, a: str, b: str) -> bool:
        first, second = self.chat.nicks.find(a), self.chat.nicks.find(b)
        if not isinstance(first, Session) or not isinstance(second, Session):
            return False
        return not set(first.rooms).isdisjoint(list(second.rooms))


def _person(client: Client) -> Person:
    """Its account on IRC (account-tag, extended-join, WHOIS) is its nickname
    when it is proven: signed in to an account, or named by its certificate."""
    outlet = client.outlet if isinstance(client, Session) else None
    account = client.nick if isinstance(client, Session) and client.authenticated else ""
    if isinstance(outlet, IrcCodec):
        state = outlet.state
        return Person(client.nick, state.user, "irc", state.realname, state.away, account)
    return Person(client.nick, "chatd", "chatd", client.nick, account=account)


def _prefix(room: Room, client: Session) -> str:
    """A member's prefix: by its role in a registered room (owner and op `@`,
    voice `+`), else `@` for the room's creator (docs/irc.md, "Operators")."""
    registration = room.registration
    if registration is None:
        return "@" if room.creator is client else ""
    rank = registration.rank(client.account)
    return "@" if rank >= OP else "+" if rank >= VOICE else ""


def _mechanisms(config: Config) -> tuple[str, ...]:
    """SASL: PLAIN against the accounts, EXTERNAL where certificates name clients."""
    plain = ("PLAIN",) if config.accounts.enabled else ()
    return plain + (("EXTERNAL",) if config.tls.nick_from_cert else ())


class IrcListener:
    """The IRC listener's socket, settings and shared translations."""

    def __init__(self, config: Config, chat: Chat) -> None:
        self.chat = chat
        self.frames = Frames(ChatDirectory(chat), config.irc.name)  # shared by every IRC connection
        self.group = IrcGroup(self.frames)  # a room's block reaches its IRC members in one call
        self.started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self.settings = self._settings(config)

    def _settings(self, config: Config) -> Settings:
        return Settings(
            server=config.irc.name,
            network=config.server.name,
            version=f"chatd-{__version__}",
            created=self.started,
            nick_length=config.limits.max_nick_length,
            rooms_per_client=config.limits.max_rooms_per_client,
            backlog=config.irc.backlog,
            sasl=_mechanisms(config),
            accounts=config.accounts.enabled or config.tls.nick_from_cert,
        )

    def configure(self, config: Config) -> None:
        """A reload: new connections get the new server name, backlog and limits."""
        self.settings = self._settings(config)
        self.frames.server = config.irc.name

    @staticmethod
    def listen(config: Config) -> socket.socket:
        """The listening socket of `irc.listen`.

        Raises:
            OSError: the address cannot be bound.
        """
        assert config.irc.listen is not None
        host, port = split_host_port(config.irc.listen)
        return listen_on(host, port, backlog=1024)

    def open_codec(self, endpoint: Endpoint) -> IrcCodec:
        """An IRC client's codec, with its chat session: not autojoined (IRC
        clients manage their own joins), told what each command answers."""

        def open_session(codec: IrcCodec) -> Session:
            shared = SharedDelivery(self.group, codec)
            return Session(self.chat, codec, endpoint.context, tracer=codec, autojoin=False, shared=shared)

        return IrcCodec(endpoint, self.settings, self.frames, open_session)
