"""A line's way from the read to its command: where the session's stage
sends it, what flood control says of it, the lines held meanwhile, and the
row of the command table that handles it.

`Session.on_lines` (core/session.py) hands each line of an active session
to `gate`: flood control (core/flood.py decides, with the clock passed in)
lets it go now, holds it for a token, or refuses it (`ERR rate_limited`, and
`BYE flood` after `flood_disconnect` of them). A line that goes is `handle`d:
parsed (core/protocol.py) and run by its verb's row of `COMMANDS`
(core/commands.py). Lines that come while a password is checked
(core/signin.py) or while an operation is on its way through the bus
(core/bus.py) wait in the session's held list, and are replayed in order.
The session's one deadline (`rearm`) is the register timeout or the token
of the next line held; `on_timer` acts on both.

These are functions that take the session, not an object it has: its state
stays in its own slots (docs/architecture.md, "Memory per connection"), and
nothing here keeps a reference to it, so a finished session is freed with
its last reference, never left to the cyclic GC.

What is not here: what the commands do (core/commands.py and the modules its
rows name), the way to a nickname (core/registering.py), and the block of
room events a read makes (`Session.say`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Final, Protocol, TypeVar

import structlog

from chatd.core import protocol
from chatd.core.commands import Caller, Row
from chatd.core.flood import FloodControl, Line
from chatd.errors import ProtocolError
from chatd.outlet import Command, Tracer

log = structlog.get_logger(__name__)

# Lines held while a password is checked; one more ends the connection (`BYE flood`).
HELD_MAX: Final = 64


class Stage(Enum):
    """Where a session is in its life (not its transport's: chatd/transport/),
    which says where its lines go (`Session.on_lines`)."""

    REGISTERING = "registering"
    WAITING = "waiting"  # registering, while a password is checked: lines are held
    ACTIVE = "active"
    CLOSED = "closed"


class Dispatched(Caller, Protocol):
    """What a line's way uses of the session (chatd.core.session.Session):
    besides what its commands may use, its own state, kept in its slots."""

    stage: Stage
    rate_limited: int  # lines dropped with ERR rate_limited (for the metrics)
    _clock: Callable[[], float]
    _commands: Mapping[str, Row]
    _flood: FloodControl
    _held: list[Line] | None
    _holds: int
    _register_deadline: float | None
    _tracer: Tracer | None

    def on_lines(self, lines: Sequence[Line]) -> None: ...

    def _flush_batch(self) -> None: ...

    def _send_error(self, error: ProtocolError) -> None: ...


S = TypeVar("S", bound=Dispatched)


def gate(session: Dispatched, line: Line, now: float) -> None:
    """Handle the line now, hold it for a token, or refuse it."""
    flood = session._flood
    if flood.admit(now):
        if session._tracer is None:  # the hot path: no hop through `run`
            handle(session, line)
        else:
            run(session, handle, line)
    elif flood.hold(line, now):
        if flood.held == 1:  # the first held: its token's time is the new deadline
            rearm(session)
    else:
        run(session, lambda s, _: refuse_for_rate(s, now, "Slow down; that line was dropped."), line)


def charge(session: Dispatched, frames: int) -> bool:
    """`Session.charge`: what a WebSocket sends besides lines (pings, pongs,
    fragments) takes from the same bucket as lines, before registration too,
    one line's worth per frame; refused, it counts as a line refused for the
    rate (`ERR rate_limited`, and `BYE flood` after `flood_disconnect` of them)."""
    if session.stage is Stage.CLOSED:
        return False
    now = session._clock()
    if session._flood.charge(frames, now):
        return True
    refuse_for_rate(session, now, "Slow down; that frame was dropped.")
    return False


def refuse_for_rate(session: Dispatched, now: float, text: str) -> None:
    """A line (or frame) found no token: say so, count it, and end a flood."""
    session._send_error(ProtocolError(protocol.RATE_LIMITED, text))
    session.rate_limited += 1
    log.info("rate_limited", **session.context, nick=session.nick)
    if session._flood.refused(now):
        session.close("flood")


def release_held(session: Dispatched, now: float) -> None:
    """The lines flood control held whose tokens are due, in order."""
    for line in session._flood.release(now):
        if session.stage is not Stage.ACTIVE:  # a held /quit, or strikes, ended it
            break
        if session._holds:  # an operation is on its way: the line waits for it too
            hold_line(session, line)
        else:
            run(session, handle, line)
    session._flush_batch()


def on_timer(session: Dispatched, now: float) -> None:
    """`Session.on_timer`: past the register deadline, the end of a session
    not yet registered; then the held lines whose tokens came."""
    if session._register_deadline is not None and now >= session._register_deadline:
        session._register_deadline = None
        if session.stage is Stage.REGISTERING or session.stage is Stage.WAITING:
            session.close("register_timeout")
            return
    due = session._flood.due
    if due is not None and now >= due:
        release_held(session, now)
    rearm(session)


def rearm(session: Dispatched) -> None:
    """The session's one deadline: the register timeout, or the token of the
    next line held."""
    deadlines = [d for d in (session._register_deadline, session._flood.due) if d is not None]
    session.outlet.set_deadline(min(deadlines) if deadlines else None)


def limits_changed(session: Dispatched) -> None:
    """`Session.limits_changed`: lines held by the old rate go by the new one."""
    session._flood.apply(session.chat.config.limits)
    if session._flood.held and session.stage is Stage.ACTIVE:
        release_held(session, session._clock())
        rearm(session)


# -- waiting: for a password check (core/signin.py), or the bus (core/bus.py) ----------


def hold_line(session: Dispatched, line: Line) -> None:
    if session._held is None:
        session._held = []  # made for the few who send while a password is checked or an operation is on its way
    if len(session._held) >= HELD_MAX:
        session.close("flood")
        return
    session._held.append(line)


def go_on(session: Dispatched) -> None:
    """`Session.go_on`: the check is answered: the lines held meanwhile, in order."""
    if session.stage is Stage.WAITING:
        session.stage = Stage.REGISTERING
    replay(session)


def release(session: Dispatched) -> None:
    """`Session.release`: an operation is over; with none left, the lines held, in order."""
    session._holds -= 1
    if session.stage is not Stage.WAITING:
        replay(session)


def replay(session: Dispatched) -> None:
    if session._held and not session._holds and session.stage is not Stage.CLOSED:
        held, session._held = session._held, None
        session.on_lines(held)


# -- commands (core/commands.py says what each does) --------------------------------


def run(session: S, handle: Callable[[S, Line], None], line: Line) -> None:
    """`handle(session, line)`; with a tracer, between its `begin` and `end`.
    The room events it says join the read's block, unless the tracer wants
    them by `end` (a labeled IRC command): then they leave alone, inside its
    window."""
    tracer = session._tracer
    if tracer is None:
        handle(session, line)
        return
    whole = tracer.wants_events(line)
    if whole:
        session._flush_batch()  # what was said before it is no part of its answer
    tracer.begin(line)
    try:
        handle(session, line)
        if whole:
            session._flush_batch()
    finally:
        tracer.end()


def handle(session: Dispatched, line: Line) -> None:
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
        row = session._commands[command.verb]
        if not row.speaks:
            session._flush_batch()
        row.handler(session, command)
    except ProtocolError as error:
        session._send_error(error)
