"""Session: one client's side of the chat, from `HELLO` to its last line.

Registration, the rooms it is in, the block of room events one read makes,
and strikes. It asks its `FloodControl` (core/flood.py) whether each line
may go, and runs each line's row of the command table (core/commands.py),
which is what the commands do. It sees its transport only through `Outlet`,
and is driven by it: `on_open` after the handshake, `on_lines` for what one
read produced, `charge` for WebSocket frames that carry no line, `on_timer`
at its deadline, `on_close` once, whatever ended the connection. It reads
time only from the chat's clock (`Chat.monotonic`).

# NOTE: every method runs on the transport's own thread, except `deliver`
# (the outlet's, callable from any thread) and `close`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Final

import structlog

from chatd import __version__
from chatd.addresses import host_of, source_of
from chatd.core import protocol, sasl
from chatd.core.accounts import Account
from chatd.core.chat import Chat
from chatd.core.commands import COMMANDS, Row, autojoin, leave_room
from chatd.core.flood import FloodControl, Line
from chatd.core.identities import refusal
from chatd.core.registry import VOICE
from chatd.core.rooms import Room
from chatd.core.signin import ban_text
from chatd.errors import ProtocolError
from chatd.outlet import Command, Outlet, Tracer

log = structlog.get_logger(__name__)

_REJECT_TEXT: Final = {
    protocol.SERVER_FULL: "The server is full; try again later.",
    protocol.TOO_MANY_CONNECTIONS: "Too many connections from your address.",
    protocol.THROTTLED: "Too many connections from your address in the last minute; wait a bit.",
    protocol.BANNED: ban_text(""),
}
# Lines held while a password is checked; one more ends the connection (`BYE flood`).
HELD_MAX: Final = 64


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
        "_say",
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
        self._batch: list[bytes] = []  # texts for `_batch_room`, sent as one block
        self._batch_room: Room | None = None
        self._batch_kind = "msg"
        self._batch_tags = b""
        self._say = chat.bus.say
        self._register_deadline: float | None = None

    # -- driven by the transport --------------------------------------------------------

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        """The handshake is done: greet, or say why the client is refused."""
        if reject is not None:
            text = _REJECT_TEXT[reject]
            ban = self.chat.accounts.banned(self.peer_ip) if self.chat.accounts is not None else None
            if reject == protocol.BANNED and ban is not None:
                text = ban_text(ban.reason)
            self.outlet.deliver(protocol.format_error(ProtocolError(reject, text)))
            self.close(reject)
            return
        self.cert_nick = cert_nick
        self.outlet.deliver(protocol.format_line("HELLO", str(protocol.VERSION), f"chatd {__version__}"))
        if self.chat.accounts is not None:
            self.outlet.deliver(self.chat.accounts.accounts_line())
        self.outlet.deliver(b"NICK\n")
        self._register_deadline = self._clock() + self.chat.config.limits.register_timeout
        self._rearm()

    def on_lines(self, lines: Sequence[Line]) -> None:
        now = self._clock()
        self.last_active = now
        for line in lines:
            if self.stage is Stage.ACTIVE and not self._holds:
                self._gate(line, now)
            elif self.stage is Stage.REGISTERING and not self._holds:
                self._run(self._register, line)
            elif self.stage is Stage.CLOSED:
                break
            else:  # a password is checked, or an operation is on its way (core/bus.py)
                self._hold(line)
        self._flush_batch()

    def charge(self, frames: int) -> bool:
        """What a WebSocket sends besides lines (pings, pongs, fragments) takes
        from the same bucket as lines, before registration too, one line's
        worth per frame; refused, it counts as a line refused for the rate
        (`ERR rate_limited`, and `BYE flood` after `flood_disconnect` of them)."""
        if self.stage is Stage.CLOSED:
            return False
        now = self._clock()
        if self._flood.charge(frames, now):
            return True
        self._refuse_for_rate(now, "Slow down; that frame was dropped.")
        return False

    def on_timer(self, now: float) -> None:
        if self._register_deadline is not None and now >= self._register_deadline:
            self._register_deadline = None
            if self.stage is Stage.REGISTERING or self.stage is Stage.WAITING:
                self.close("register_timeout")
                return
        due = self._flood.due
        if due is not None and now >= due:
            self._release_held(now)
        self._rearm()

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
        self._flood.apply(self.chat.config.limits)
        if self._flood.held and self.stage is Stage.ACTIVE:
            self._release_held(self._clock())
            self._rearm()

    def close(self, reason: str, text: str = "") -> None:
        self.outlet.close(reason, text)

    def remove_from(self, room: Room, line: bytes) -> None:
        """A kick or a room ban, from any thread: done on this session's own."""
        self.outlet.call_soon(lambda: self._removed(room, line))

    def _removed(self, room: Room, line: bytes) -> None:
        if self.stage is Stage.ACTIVE and self.rooms.get(room.key) is room:
            self._flush_batch()
            leave_room(self, room, line)

    # -- flood control (core/flood.py decides; this acts) ----------------------------

    def _gate(self, line: Line, now: float) -> None:
        """Handle the line now, hold it for a token, or refuse it."""
        flood = self._flood
        if flood.admit(now):
            if self._tracer is None:  # the hot path: no hop through `_run`
                self._handle(line)
            else:
                self._run(self._handle, line)
        elif flood.hold(line, now):
            if flood.held == 1:  # the first held: its token's time is the new deadline
                self._rearm()
        else:
            self._run(lambda _: self._refuse_for_rate(now, "Slow down; that line was dropped."), line)

    def _refuse_for_rate(self, now: float, text: str) -> None:
        """A line (or frame) found no token: say so, count it, and end a flood."""
        self._send_error(ProtocolError(protocol.RATE_LIMITED, text))
        self.rate_limited += 1
        log.info("rate_limited", **self.context, nick=self.nick)
        if self._flood.refused(now):
            self.close("flood")

    def _release_held(self, now: float) -> None:
        for line in self._flood.release(now):
            if self.stage is not Stage.ACTIVE:  # a held /quit, or strikes, ended it
                break
            if self._holds:  # an operation is on its way: the line waits for it too
                self._hold(line)
            else:
                self._run(self._handle, line)
        self._flush_batch()

    def _rearm(self) -> None:
        deadlines = [d for d in (self._register_deadline, self._flood.due) if d is not None]
        self.outlet.set_deadline(min(deadlines) if deadlines else None)

    # -- registration ----------------------------------------------------------------

    def _register(self, line: Line) -> None:
        config = self.chat.config
        try:
            if line is protocol.TOO_LONG:
                raise ProtocolError(protocol.LINE_TOO_LONG, "Nicknames are short; line dropped.")
            if isinstance(line, Command):  # IRC: only what is usable before registration
                row = self._commands.get(line.verb)
                if row is None or not row.before_registration:
                    raise ProtocolError(protocol.UNKNOWN_COMMAND, f"/{line.verb} needs a nickname first.")
                row.handler(self, line)
                return
            if self.proven is not None:  # IRC: SASL proved an account; the nickname line is not used
                sasl.register_proven(self)
                return
            text = protocol.clean_line(line)
            verb = protocol.command_verb(text)
            row = self._commands.get(verb) if verb else None
            if row is not None and row.before_registration:
                row.handler(self, protocol.parse_command(text))
                return
            if config.tls.nick_from_cert and self._identity_refused():
                return
            nick = protocol.check_nick(text.decode("utf-8"), config.limits.max_nick_length)
            if config.tls.nick_from_cert and nick != self.cert_nick:
                raise ProtocolError(
                    protocol.NICK_INVALID,
                    f"Your certificate allows only the nickname {self.cert_nick}.",
                )
            self._check_guest(nick)
            self.admit(nick)
        except ProtocolError as error:
            self.refuse(error)

    def _check_guest(self, nick: str) -> None:
        """A nickname alone (no account): refused if it is an account's, or if
        the server takes no guests; a certificate's name is no guest's."""
        accounts = self.chat.accounts
        if accounts is None or self.chat.config.tls.nick_from_cert:
            return
        if not accounts.config.guests:
            raise ProtocolError(
                protocol.LOGIN_REQUIRED, "This server takes no guests: /login <account> <password>, or /register."
            )
        if accounts.is_registered(nick):
            raise ProtocolError(
                protocol.NICK_REGISTERED, f"{nick} is a registered account: /login {nick} <password>, or another name."
            )

    def refuse(self, error: ProtocolError) -> None:
        """A refused answer to `NICK`: `ERR`, then `NICK` again, or `BYE nick_failed`."""
        self._nick_attempts += 1
        self._send_error(error)
        if self._nick_attempts >= self.chat.config.limits.max_nick_attempts:
            self.close("nick_failed")
        elif self.stage is not Stage.CLOSED:
            self.outlet.deliver(b"NICK\n")

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
        self._rearm()
        log.info("nickname", **self.context, nick=nick)
        autojoin(self, iter(self.chat.config.rooms.autojoin if self._autojoin else ()))

    # -- waiting for a password check (core/signin.py) ------------------------------------

    def wait(self) -> None:
        if self.stage is Stage.REGISTERING:
            self.stage = Stage.WAITING

    def _hold(self, line: Line) -> None:
        if self._held is None:
            self._held = []  # made for the few who send while a password is checked or an operation is on its way
        if len(self._held) >= HELD_MAX:
            self.close("flood")
            return
        self._held.append(line)

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
        if self._held and not self._holds and self.stage is not Stage.CLOSED:
            held, self._held = self._held, None
            self.on_lines(held)

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

    def _identity_refused(self) -> bool:
        """A certificate whose name is another spelling of an identity already
        seen is refused, whatever nickname was sent (core/identities.py)."""
        cert = self.cert_nick
        if cert is None or self._identity_checked:
            return False
        known = self.chat.identities.claim(cert)
        self._identity_checked = known is None
        if known is None:
            return False
        log.warning("certificate_identity_refused", **self.context, certificate_name=cert, known_as=known)
        self._send_error(refusal(cert, known))
        self.close("nick_failed")
        return True

    # -- commands (core/commands.py says what each does) --------------------------------

    def _run(self, handle: Callable[[Line], None], line: Line) -> None:
        """`handle(line)`; with a tracer, between its `begin` and `end`. The room
        events it says join the read's block, unless the tracer wants them by
        `end` (a labeled IRC command): then they leave alone, inside its window."""
        tracer = self._tracer
        if tracer is None:
            handle(line)
            return
        whole = tracer.wants_events(line)
        if whole:
            self._flush_batch()  # what was said before it is no part of its answer
        tracer.begin(line)
        try:
            handle(line)
            if whole:
                self._flush_batch()
        finally:
            tracer.end()

    def _handle(self, line: Line) -> None:
        try:
            if line is protocol.TOO_LONG:
                raise ProtocolError(
                    protocol.LINE_TOO_LONG,
                    f"Lines are limited to {self.chat.config.limits.max_line_bytes} bytes; that one was dropped.",
                )
            if isinstance(line, Command):  # from a transport with a grammar of its own (IRC)
                protocol.check_text(line.text)
                command = line
            else:
                command = protocol.parse_command(protocol.clean_line(line))
            row = self._commands[command.verb]
            if not row.speaks:
                self._flush_batch()
            row.handler(self, command)
        except ProtocolError as error:
            self._send_error(error)

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
        self._batch.append(text)

    def flush_said(self) -> None:
        """Send the room events queued so far: a DM must not overtake them."""
        self._flush_batch()

    def _flush_batch(self) -> None:
        if self._batch and self._batch_room is not None:
            batch, self._batch = self._batch, []
            self._say(self, self._batch_room, self._batch_kind, batch, self._batch_tags)

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
