"""Dispatch: a registered session's line, from the read to its command.

Each line asks flood control (core/flood.py) for a token: handled now, held
for one (the session's timer releases it), or refused (`ERR rate_limited`,
and `BYE flood` after `limits.flood_disconnect` refusals). A line handled
is read by the grammar (core/protocol.py), or comes as a `Command` from a
transport with a grammar of its own (IRC), and runs its row of the command
table (core/commands.py). A refused command is `ERR <code>`; the codes in
`protocol.STRIKE_CODES` count as strikes, and `limits.max_strikes` of them
end the connection (`BYE too_many_errors`). With a tracer (the IRC codec),
each line is handled between its `begin` and `end`.

Lines that come while a password is checked or an operation is on its way
through the bus (core/bus.py) are kept here too (`hold`), until the session
replays them.

What is not here: the stage a session is in, and when it holds and replays
lines (core/session.py), lines before registration (core/registering.py),
what each command does (core/commands.py), the block of room events
(core/batch.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Protocol

import structlog

from chatd.core import protocol
from chatd.core.batch import RoomBatch
from chatd.core.commands import Caller, Row
from chatd.core.flood import FloodControl, Line
from chatd.errors import ProtocolError
from chatd.outlet import Command, Tracer

log = structlog.get_logger(__name__)

# Lines held while a password is checked; one more ends the connection (`BYE flood`).
HELD_MAX: Final = 64


class Dispatched(Caller, Protocol):
    """What dispatching uses of the session (chatd.core.session.Session)."""

    rate_limited: int  # lines dropped with ERR rate_limited (for the metrics)

    def rearm(self) -> None:
        """Its deadline may have moved (a first line held for a token)."""


class Dispatch:
    """One session's flood control, command table, tracer and strikes."""

    # One per client, like the session: no instance dict.
    __slots__ = ("_batch", "_commands", "_held", "_session", "_strikes", "_tracer", "flood")

    def __init__(
        self,
        session: Dispatched,
        batch: RoomBatch,
        flood: FloodControl,
        commands: Mapping[str, Row],
        tracer: Tracer | None,
    ) -> None:
        self._session = session
        self._batch = batch
        self.flood = flood
        self._commands = commands
        self._tracer = tracer
        self._strikes = 0
        self._held: list[Line] | None = None  # lines that came while a password was checked, or the bus held them

    def charge(self, frames: int, now: float) -> bool:
        """`frames` WebSocket frames that carry no line, one token each; refused,
        they count as a line refused for the rate."""
        if self.flood.charge(frames, now):
            return True
        self.refuse_for_rate(now, "Slow down; that frame was dropped.")
        return False

    def gate(self, line: Line, now: float) -> None:
        """Handle the line now, hold it for a token, or refuse it."""
        flood = self.flood
        if flood.admit(now):
            if self._tracer is None:  # the hot path: no hop through `run`
                self.handle(line)
            else:
                self.run(self.handle, line)
        elif flood.hold(line, now):
            if flood.held == 1:  # the first held: its token's time is the new deadline
                self._session.rearm()
        else:
            self.run(lambda _: self.refuse_for_rate(now, "Slow down; that line was dropped."), line)

    def refuse_for_rate(self, now: float, text: str) -> None:
        """A line (or frame) found no token: say so, count it, and end a flood."""
        session = self._session
        self.fail(ProtocolError(protocol.RATE_LIMITED, text))
        session.rate_limited += 1
        log.info("rate_limited", **session.context, nick=session.nick)
        if self.flood.refused(now):
            session.close("flood")

    def hold(self, line: Line) -> None:
        """Keep a line that came while a password is checked or an operation is
        on its way (core/bus.py), in order; one past `HELD_MAX` is a flood."""
        if self._held is None:
            self._held = []  # made for the few who send while a password is checked or an operation is on its way
        if len(self._held) >= HELD_MAX:
            self._session.close("flood")
            return
        self._held.append(line)

    @property
    def held(self) -> bool:
        return bool(self._held)

    def take_held(self) -> list[Line]:
        """The lines `hold` kept, in order; none are kept after."""
        held, self._held = self._held or [], None
        return held

    def clear(self) -> None:
        """The session has ended: nothing held, for a token or otherwise."""
        self._held = None
        self.flood.clear()

    def run(self, handle: Callable[[Line], None], line: Line) -> None:
        """`handle(line)`; with a tracer, between its `begin` and `end`, with the
        events it said sent before `end`."""
        tracer = self._tracer
        if tracer is None:
            handle(line)
            return
        tracer.begin(line)
        try:
            handle(line)
            self._batch.flush()
        finally:
            tracer.end()

    def handle(self, line: Line) -> None:
        """Run the line's command (a registered session's)."""
        session = self._session
        try:
            if line is protocol.TOO_LONG:
                raise ProtocolError(
                    protocol.LINE_TOO_LONG,
                    f"Lines are limited to {session.chat.config.limits.max_line_bytes} bytes; that one was dropped.",
                )
            if isinstance(line, Command):  # from a transport with a grammar of its own (IRC)
                protocol.check_text(line.text)
                command = line
            else:
                command = protocol.parse_command(protocol.clean_line(line))
            row = self._commands[command.verb]
            if not row.speaks:
                self._batch.flush()
            row.handler(session, command)
        except ProtocolError as error:
            self.fail(error)

    def fail(self, error: ProtocolError) -> None:
        """`ERR` for a command refused (at once, or later by the bus); a strike
        for the codes that count, and `BYE too_many_errors` after too many."""
        session = self._session
        self._batch.flush()
        session.outlet.deliver(protocol.format_error(error))
        if error.code in protocol.STRIKE_CODES:
            self._strikes += 1
            if self._strikes >= session.chat.config.limits.max_strikes:
                session.close("too_many_errors")
