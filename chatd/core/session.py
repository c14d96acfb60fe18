"""Session: one client's side of the chat, from `HELLO` to its last line.

Where it is in its life (`Stage`), the rooms it is in, claiming its
nickname, its deadlines (registration, the next held line's token), holding
its lines while a password is checked or an operation is on its way through
the bus (core/bus.py), and leaving. It has a `Registering` for the lines
before its nickname (core/registering.py), a `Dispatch` for each line after
(flood control and the command table: core/dispatch.py) and a `RoomBatch`
for what one read says in a room (core/batch.py). It sees its transport
only through `Outlet`, and is driven by it: `on_open` after the handshake,
`on_lines` for what one read produced, `charge` for WebSocket frames that
carry no line, `on_timer` at its deadline, `on_close` once, whatever ended
the connection. It reads time only from the chat's clock (`Chat.monotonic`).

# NOTE: every method runs on the transport's own thread, except `deliver`
# (the outlet's, callable from any thread) and `close`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum

import structlog

from chatd.addresses import host_of, source_of
from chatd.core import protocol
from chatd.core.accounts import Account
from chatd.core.batch import RoomBatch
from chatd.core.chat import Chat
from chatd.core.commands import COMMANDS, Row, autojoin, leave_room
from chatd.core.dispatch import HELD_MAX as HELD_MAX  # its home is core/dispatch.py
from chatd.core.dispatch import Dispatch
from chatd.core.flood import FloodControl, Line
from chatd.core.registering import Registering
from chatd.core.rooms import Room
from chatd.errors import ProtocolError
from chatd.outlet import Outlet, Tracer

log = structlog.get_logger(__name__)


class Stage(Enum):
    """Where a session is in its life (not its transport's: chatd/transport/)."""

    REGISTERING = "registering"
    WAITING = "waiting"  # registering, while a password is checked: lines are held
    ACTIVE = "active"
    CLOSED = "closed"


class Session:
    # One per client: no instance dict (docs/architecture.md, "Memory per connection").
    __slots__ = (
        "__weakref__",
        "_autojoin",
        "_batch",
        "_clock",
        "_dispatch",
        "_holds",
        "_register_deadline",
        "_registering",
        "account",
        "cert_nick",
        "chat",
        "connected_at",
        "context",
        "current",
        "deliver",
        "last_active",
        "messages_in",
        "method",
        "nick",
        "outlet",
        "peer",
        "proven",
        "rate_limited",
        "rooms",
        "say",
        "serial",
        "stage",
        "token",
    )

    def __init__(
        self,
        chat: Chat,
        outlet: Outlet,
        context: dict[str, object],
        commands: Mapping[str, Row] = COMMANDS,
        *,
        tracer: Tracer | None = None,
        autojoin: bool = True,
    ) -> None:
        """`tracer` is told when each line (or `Command`) begins and ends being
        handled, and then each line's events leave as a block of their own
        (the IRC codec). `autojoin`: join `rooms.autojoin` on registration
        (IRC clients manage their own joins)."""
        self.chat = chat
        self.outlet = outlet
        self.deliver = outlet.deliver  # the fan-out hot path: no hop through the session
        self.peer = outlet.peer
        self.connected_at = outlet.connected_at
        self._clock = chat.monotonic
        now = self._clock()
        self.last_active = now
        self.nick = ""
        self.stage = Stage.REGISTERING
        self.messages_in = 0
        self.rate_limited = 0  # lines dropped with ERR rate_limited (for the metrics)
        self.rooms: dict[str, Room] = {}  # by key, in the order they were joined
        self.current: Room | None = None
        self.context = context  # for its log events
        self.cert_nick: str | None = None
        self.account: str | None = None  # the account's key, once signed in to one
        self.token: str | None = None  # the hash of the token it resumed with
        self.method = ""  # how it signed in (accounts.METHODS), "" for a guest
        self.proven: Account | None = None  # what IRC's SASL proved, until registration (core/sasl.py)
        self._holds = 0  # operations on their way through the bus (core/bus.py): lines wait for them
        self.serial = 0  # the bus's number for this connection (core/bus.py)
        self._autojoin = autojoin
        self._batch = RoomBatch(self, chat.bus.say)  # the block of room events one read makes
        self.say = self._batch.say  # a command's message: no hop through the session
        self._dispatch = Dispatch(self, self._batch, FloodControl(chat.config.limits, now), commands, tracer)
        self._register_deadline: float | None = None
        self._registering = Registering(self, commands)

    # -- driven by the transport --------------------------------------------------------

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        """The handshake is done: greet, or say why the client is refused."""
        if reject is not None:
            self._registering.reject(reject)
            return
        self.cert_nick = cert_nick
        self._registering.greet()
        self._register_deadline = self._clock() + self.chat.config.limits.register_timeout
        self.rearm()

    def on_lines(self, lines: Sequence[Line]) -> None:
        now = self._clock()
        self.last_active = now
        for line in lines:
            if self.stage is Stage.ACTIVE and not self._holds:
                self._dispatch.gate(line, now)
            elif self.stage is Stage.REGISTERING and not self._holds:
                self._dispatch.run(self._registering.line, line)
            elif self.stage is Stage.CLOSED:
                break
            else:  # a password is checked, or an operation is on its way (core/bus.py)
                self._dispatch.hold(line)
        self._batch.flush()

    def charge(self, frames: int) -> bool:
        """What a WebSocket sends besides lines (pings, pongs, fragments) takes
        from the same bucket as lines, before registration too, one line's
        worth per frame; refused, it counts as a line refused for the rate
        (`ERR rate_limited`, and `BYE flood` after `flood_disconnect` of them)."""
        if self.stage is Stage.CLOSED:
            return False
        return self._dispatch.charge(frames, self._clock())

    def on_timer(self, now: float) -> None:
        if self._register_deadline is not None and now >= self._register_deadline:
            self._register_deadline = None
            if self.stage is Stage.REGISTERING or self.stage is Stage.WAITING:
                self.close("register_timeout")
                return
        due = self._dispatch.flood.due
        if due is not None and now >= due:
            self._release_held(now)
        self.rearm()

    def on_close(self, reason: str, text: str) -> bytes:
        """The connection is ending: leave every room (those who shared one are
        told `LEAVE <nick> <reason> <text>`); returns the `BYE` line to send.
        Called once, by the transport."""
        full_reason = f"{reason} {text}".rstrip()
        if self.stage is not Stage.CLOSED:
            self._batch.flush()
            if self.stage is Stage.ACTIVE:
                self.chat.bus.leave(self, list(self.rooms.values()), full_reason)
            elif self.serial:  # a nickname asked for may be on its way: let it go
                self.chat.bus.leave(self, [], None)
            self.stage = Stage.CLOSED
            if self.account is not None and self.chat.accounts is not None:
                self.chat.accounts.signed_out(self)
            self.rooms.clear()
            self.current = None
            self._dispatch.clear()
        # A /quit's own words go to the others only; any other reason's text
        # (an operator's kick message) is for the client too.
        return protocol.format_line("BYE", reason if reason == "quit" else full_reason)

    def limits_changed(self) -> None:
        """A reload changed the limits: lines held by the old rate go by the new one."""
        self._dispatch.flood.apply(self.chat.config.limits)
        if self._dispatch.flood.held and self.stage is Stage.ACTIVE:
            self._release_held(self._clock())
            self.rearm()

    def close(self, reason: str, text: str = "") -> None:
        self.outlet.close(reason, text)

    def remove_from(self, room: Room, line: bytes) -> None:
        """A kick or a room ban, from any thread: done on this session's own."""
        self.outlet.call_soon(lambda: self._removed(room, line))

    def _removed(self, room: Room, line: bytes) -> None:
        if self.stage is Stage.ACTIVE and self.rooms.get(room.key) is room:
            self._batch.flush()
            leave_room(self, room, line)

    # -- lines held for a token (core/dispatch.py holds them; the timer releases) -------

    def _release_held(self, now: float) -> None:
        for line in self._dispatch.flood.release(now):
            if self.stage is not Stage.ACTIVE:  # a held /quit, or strikes, ended it
                break
            if self._holds:  # an operation is on its way: the line waits for it too
                self._dispatch.hold(line)
            else:
                self._dispatch.run(self._dispatch.handle, line)
        self._batch.flush()

    def rearm(self) -> None:
        """The next deadline (registration, a held line's token) to the outlet."""
        deadlines = [d for d in (self._register_deadline, self._dispatch.flood.due) if d is not None]
        self.outlet.set_deadline(min(deadlines) if deadlines else None)

    # -- registration (core/registering.py reads the lines before it) ------------------

    def refuse(self, error: ProtocolError) -> None:
        """A refused answer to `NICK`: `ERR`, then `NICK` again, or `BYE nick_failed`."""
        self._registering.refuse(error)

    def admit(self, nick: str) -> None:
        """Register as `nick`: `WELCOME`, then the autojoin rooms (on a network,
        once the nickname is ours: `refuse` if it is not).

        Raises:
            ProtocolError: `nick_taken`.
        """
        config = self.chat.config
        welcome = f"Welcome to {config.server.name}, {nick}! Type /help for commands."
        greeting = protocol.format_line("WELCOME", nick, welcome)
        self.chat.bus.register(self, nick, greeting, lambda: self._admitted(nick), self.refuse)

    def _admitted(self, nick: str) -> None:
        self.stage = Stage.ACTIVE
        self._register_deadline = None
        self.rearm()
        log.info("nickname", **self.context, nick=nick)
        autojoin(self, iter(self.chat.config.rooms.autojoin if self._autojoin else ()))

    # -- waiting for a password check (core/signin.py) ------------------------------------

    def wait(self) -> None:
        if self.stage is Stage.REGISTERING:
            self.stage = Stage.WAITING

    def go_on(self) -> None:
        """The check is answered: the lines held meanwhile, in order."""
        if self.stage is Stage.WAITING:
            self.stage = Stage.REGISTERING
        self._replay()

    def hold(self) -> None:
        """An operation is on its way through the bus (core/bus.py): lines wait."""
        self._holds += 1

    def release(self) -> None:
        """An operation of `hold` is over; with none left, the lines held, in order."""
        self._holds -= 1
        if self.stage is not Stage.WAITING:
            self._replay()

    def _replay(self) -> None:
        if self._dispatch.held and not self._holds and self.stage is not Stage.CLOSED:
            self.on_lines(self._dispatch.take_held())

    def fail(self, error: ProtocolError) -> None:
        """`ERR` for a command refused (at once, or later by the bus)."""
        self._dispatch.fail(error)

    @property
    def closed(self) -> bool:
        return self.stage is Stage.CLOSED

    @property
    def authenticated(self) -> bool:
        """An account's, or (with tls.nick_from_cert) a certificate's name."""
        return self.account is not None or (self.chat.config.tls.nick_from_cert and self.stage is Stage.ACTIVE)

    @property
    def peer_ip(self) -> str:
        return host_of(self.peer)

    @property
    def source(self) -> str:
        """What the login throttles count this client's address as (chatd/addresses.py)."""
        return source_of(self.peer_ip, self.chat.config.limits.ipv6_prefix)
