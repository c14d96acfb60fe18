"""Session: one client's side of the chat, from `HELLO` to its last line.

Its state (`__slots__`: one object per client, nothing more), the rooms it
is in, the block of room events one read makes, and strikes. What it does
with each line is in functions that take it, in modules of their own:
core/dispatch.py (flood control's verdict, held lines, the command table's
row that handles the line) and, before its nickname, core/registering.py.
It sees its transport only through `Outlet`, and is driven by it: `on_open`
after the handshake, `on_lines` for what one read produced, `charge` for
WebSocket frames that carry no line, `on_timer` at its deadline, `on_close`
once, whatever ended the connection. It reads time only from the chat's
clock (`Chat.monotonic`).

# NOTE: every method runs on the transport's own thread, except `deliver`
# (the outlet's, callable from any thread) and `close`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from chatd.addresses import host_of, source_of
from chatd.core import dispatch, protocol, registering
from chatd.core.accounts import Account
from chatd.core.chat import Chat
from chatd.core.commands import COMMANDS, Row, leave_room
from chatd.core.dispatch import HELD_MAX as HELD_MAX  # where tests/unit/test_signin.py finds it
from chatd.core.dispatch import Stage, gate, run
from chatd.core.flood import FloodControl, Line
from chatd.core.registering import register
from chatd.core.registry import VOICE
from chatd.core.rooms import Room
from chatd.errors import ProtocolError
from chatd.outlet import Outlet, SharedDelivery, Tracer

log = structlog.get_logger(__name__)


class Session:
    # One per client: no instance dict (docs/architecture.md, "Memory per connection").
    __slots__ = (
        "__weakref__",
        "_autojoin",
        "_batch",
        "_batch_kind",
        "_batch_room",
        "_batch_tags",
        "_clock",
        "_commands",
        "_flood",
        "_held",
        "_holds",
        "_identity_checked",
        "_nick_attempts",
        "_register_deadline",
        "_strikes",
        "_tracer",
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
        "serial",
        "shared",
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
        shared: SharedDelivery | None = None,
    ) -> None:
        """`tracer` is told when each line (or `Command`) begins and ends being
        handled, and then each line's events leave as a block of their own
        (the IRC codec). `autojoin`: join `rooms.autojoin` on registration
        (IRC clients manage their own joins). `shared`: the group the outlet
        takes a room's lines with (one call for all its members of a room)."""
        self.chat = chat
        self.outlet = outlet
        self.deliver = outlet.deliver  # the fan-out hot path: no hop through the session
        self.shared = shared
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
        self._held: list[Line] | None = None  # lines that came while a password was checked, or the bus held them
        self._holds = 0  # operations on their way through the bus (core/bus.py): lines wait for them
        self.serial = 0  # the bus's number for this connection (core/bus.py)
        self._identity_checked = False  # the certificate's name is its identity's spelling
        self._nick_attempts = 0
        self._strikes = 0
        self._commands = commands
        self._tracer = tracer
        self._autojoin = autojoin
        self._flood = FloodControl(chat.config.limits, now)
        self._batch: list[bytes] | None = None  # texts for `_batch_room`, sent as one block; made when first needed
        self._batch_room: Room | None = None
        self._batch_kind = "msg"
        self._batch_tags = b""
        self._register_deadline: float | None = None

    # -- driven by the transport --------------------------------------------------------

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        """The handshake is done: greet, or say why the client is refused."""
        registering.greet(self, reject, cert_nick)

    def on_lines(self, lines: Sequence[Line]) -> None:
        now = self._clock()
        self.last_active = now
        for line in lines:
            if self.stage is Stage.ACTIVE and not self._holds:
                gate(self, line, now)
            elif self.stage is Stage.REGISTERING and not self._holds:
                run(self, register, line)
            elif self.stage is Stage.CLOSED:
                break
            else:  # a password is checked, or an operation is on its way (core/bus.py)
                dispatch.hold_line(self, line)
        self._flush_batch()

    def charge(self, frames: int) -> bool:
        """A WebSocket's frames that carry no line take from the line bucket (core/dispatch.py)."""
        return dispatch.charge(self, frames)

    def on_timer(self, now: float) -> None:
        dispatch.on_timer(self, now)

    def on_close(self, reason: str, text: str) -> bytes:
        """The connection is ending: leave every room (those who shared one are
        told `LEAVE <nick> <reason> <text>`); returns the `BYE` line to send.
        Called once, by the transport."""
        full_reason = f"{reason} {text}".rstrip()
        if self.stage is not Stage.CLOSED:
            self._flush_batch()
            if self.stage is Stage.ACTIVE:
                self.chat.bus.leave(self, list(self.rooms.values()), full_reason)
            elif self.serial:  # a nickname asked for may be on its way: let it go
                self.chat.bus.leave(self, [], None)
            self.stage = Stage.CLOSED
            self._held = None
            if self.account is not None and self.chat.accounts is not None:
                self.chat.accounts.signed_out(self)
            self.rooms.clear()
            self.current = None
            self._flood.clear()
        # A /quit's own words go to the others only; any other reason's text
        # (an operator's kick message) is for the client too.
        return protocol.format_line("BYE", reason if reason == "quit" else full_reason)

    def limits_changed(self) -> None:
        """A reload changed the limits: lines held by the old rate go by the new one."""
        dispatch.limits_changed(self)

    def close(self, reason: str, text: str = "") -> None:
        self.outlet.close(reason, text)

    def remove_from(self, room: Room, line: bytes) -> None:
        """A kick or a room ban, from any thread: done on this session's own."""
        self.outlet.call_soon(lambda: self._removed(room, line))

    def _removed(self, room: Room, line: bytes) -> None:
        if self.stage is Stage.ACTIVE and self.rooms.get(room.key) is room:
            self._flush_batch()
            leave_room(self, room, line)

    # -- registration (core/registering.py) -------------------------------------------

    def refuse(self, error: ProtocolError) -> None:
        """A refused answer to `NICK`: `ERR`, then `NICK` again, or `BYE nick_failed`."""
        registering.refuse(self, error)

    def admit(self, nick: str) -> None:
        """Register as `nick`: `WELCOME`, then the autojoin rooms; raises `nick_taken`."""
        registering.admit(self, nick)

    # -- waiting: for a password check (core/signin.py), or the bus (core/bus.py) ---------

    def wait(self) -> None:
        if self.stage is Stage.REGISTERING:
            self.stage = Stage.WAITING

    def go_on(self) -> None:
        """The check is answered: the lines held meanwhile, in order."""
        dispatch.go_on(self)

    def hold(self) -> None:
        """An operation is on its way through the bus (core/bus.py): lines wait."""
        self._holds += 1

    def release(self) -> None:
        """An operation of `hold` is over; with none left, the lines held, in order."""
        dispatch.release(self)

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

    # -- what a read says in rooms (core/dispatch.py runs the commands) ------------------

    def say(self, kind: str, room: Room, text: bytes, tags: bytes = b"") -> None:
        """Queue a room event; those of one read to one room leave as one block.

        Raises:
            ProtocolError: `moderated`: the room is, and the caller has no voice.
        """
        # NOTE: the one check of roles on the message path: per message sent, one
        # attribute for a room that is not registered; never per recipient.
        registration = room.registration
        if registration is not None and registration.moderated and registration.rank(self.account) < VOICE:
            raise ProtocolError(protocol.MODERATED, f"{room.name} is moderated: only voiced members speak there.")
        if room is not self._batch_room or kind != self._batch_kind or tags != self._batch_tags:
            self._flush_batch()
            self._batch_room, self._batch_kind, self._batch_tags = room, kind, tags
        self.messages_in += 1
        batch = self._batch
        if batch is None:
            self._batch = batch = []
        batch.append(text)

    def flush_said(self) -> None:
        """Send the room events queued so far: a DM must not overtake them."""
        self._flush_batch()

    def _flush_batch(self) -> None:
        if self._batch and self._batch_room is not None:
            batch, self._batch = self._batch, None
            self.chat.bus.say(self, self._batch_room, self._batch_kind, batch, self._batch_tags)

    def fail(self, error: ProtocolError) -> None:
        """`ERR` for a command refused (at once, or later by the bus)."""
        self._send_error(error)

    def _send_error(self, error: ProtocolError) -> None:
        self._flush_batch()
        self.outlet.deliver(protocol.format_error(error))
        if error.code in protocol.STRIKE_CODES:
            self._strikes += 1
            if self._strikes >= self.chat.config.limits.max_strikes:
                self.close("too_many_errors")
