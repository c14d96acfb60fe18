"""Reconnecting `chatctl connect`: when, after how long, and how to get back to
where the session was.

- `reconnects_after_bye()`: which `BYE` reasons are worth coming back from.
  A close without `BYE` (a crash, a reset, a keepalive timeout) always is.
- `backoff()`: exponential backoff with jitter, so that clients dropped
  together by a restart do not all come back in the same instant; `Attempts`
  numbers the attempts, afresh after a connection that stayed up a while.
- `Restore`: after the new connection registers (and the server has done its
  autojoin), the commands that put the rooms back as they were: `/join` the
  missing ones, `/part` autojoined ones you had left, `/join` the current room
  last. Each room then catches up on its own (chatctl/timeline.py).
- `Outbox`: the client's own commands, a few at a time, acknowledged by the
  `PONG` of a `/ping` sent after them, so that the server's flood control
  never drops one.
- `dial_in_background()`: the interactive client's connection attempt, in a
  thread so that the terminal stays responsive.

Only `dial_in_background` touches a socket; the rest is pure and tested as
such. The protocol session (chatctl/session.py) drives `Restore`, `Outbox`
and `Attempts`; the front ends wait and dial.
"""

from __future__ import annotations

import asyncio
import collections
import random
import ssl
import threading
from collections.abc import Callable
from typing import Final

from chatctl.connection import ClientError, Dialer, Exit
from chatctl.state import ClientState, room_key

BACKOFF_FIRST: Final = 0.5  # seconds before the first attempt
BACKOFF_MAX: Final = 30.0
JITTER: Final = 0.25  # each wait is its base time ±25%
STABLE_AFTER: Final = 10.0  # a connection registered this long starts the backoff afresh

# BYE reasons after which coming back makes sense: the server is restarting,
# or the connection was too slow for a moment. After quit, kicked, flood and
# the like the session ends (docs/client.md, "Reconnecting and catching up").
_RECONNECT_BYE: Final = frozenset({"shutdown", "slow_consumer", "write_timeout"})


# Failures another attempt will not mend: the server's certificate no longer
# verifies, or ours is refused. Reconnecting stops with that error.
_GIVE_UP: Final = frozenset({Exit.TLS_VERIFY, Exit.USAGE})


def gives_up(error: ClientError) -> bool:
    """Whether a failed reconnect attempt ends the session instead of another attempt."""
    return error.status in _GIVE_UP


def reconnects_after_bye(reason: str) -> bool:
    """Whether `BYE <reason>` is one to reconnect after."""
    return reason.partition(" ")[0] in _RECONNECT_BYE


def backoff(attempt: int, uniform: Callable[[], float] = random.random) -> float:
    """Seconds to wait before attempt number `attempt` (1, 2, ...): 0.5 s
    doubling up to 30 s, each ±25% at random (`uniform()` gives 0 to 1)."""
    base = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** min(attempt - 1, 16))
    return base * (1 + JITTER * (2 * uniform() - 1))


class Attempts:
    """Reconnect attempts since the last stable connection, numbered for
    `backoff()`: a connection that stayed registered for `STABLE_AFTER`
    seconds starts the count afresh. `now` is passed in (seconds on a
    monotonic clock)."""

    def __init__(self) -> None:
        self.count = 0
        self._registered_at: float | None = None

    def registered(self, now: float) -> None:
        """The connection has registered (`WELCOME`)."""
        self._registered_at = now

    def next(self, now: float) -> int:
        """The number of the attempt about to be scheduled (1, 2, ...)."""
        if self._registered_at is not None and now - self._registered_at >= STABLE_AFTER:
            self.count = 0  # it had been up for a while: start the backoff afresh
        self._registered_at = None
        self.count += 1
        return self.count


class Outbox:
    """The client's own commands (the restore's, the catch-up's, the scroll-back
    view's), sent a few at a time.

    Up to `WINDOW` commands go out followed by `/ping <token>`, and the next
    ones only when that `PONG` is back. The server's flood control holds a
    burst of lines (5 by default) and drops what comes beyond
    (docs/protocol.md, "Flow control"): a window and its ping are never
    dropped, however many rooms come back. A `/history` goes alone in its
    window, so that an `ERR` arriving before the `PONG` answers that request:
    that is how a refused `/history` is told from the others (see
    `Timeline.feed`'s `in_flight`).
    """

    WINDOW: Final = 4

    def __init__(self, prefix: str = "chatctl") -> None:
        self.prefix = prefix
        self.in_flight: list[str] = []  # sent, their PONG not yet back
        self._token = ""
        self._count = 0
        self._queue: collections.deque[str] = collections.deque()

    @property
    def idle(self) -> bool:
        return not self.in_flight and not self._queue

    @property
    def history_in_flight(self) -> str | None:
        """The `/history` waiting for its `PONG`, if that is what is in flight."""
        return self.in_flight[0] if self.in_flight and _is_history(self.in_flight[0]) else None

    def push(self, command: str) -> list[str]:
        """Queue `command`; returns the lines to send now."""
        self._queue.append(command)
        return [] if self.in_flight else self._next()

    def on_pong(self, rest: str) -> tuple[list[str], list[str]] | None:
        """A `PONG <rest>`: if it is ours, (the commands it acknowledges, the
        lines to send next); None for anyone else's."""
        if not self.in_flight or rest != self._token:
            return None
        done, self.in_flight = self.in_flight, []
        return done, self._next()

    def reset(self) -> None:
        """The connection is gone: nothing is in flight, nothing waits."""
        self.in_flight = []
        self._queue.clear()

    def _next(self) -> list[str]:
        while self._queue and len(self.in_flight) < self.WINDOW:
            if self.in_flight and (_is_history(self._queue[0]) or _is_history(self.in_flight[0])):
                break
            self.in_flight.append(self._queue.popleft())
        if not self.in_flight:
            return []
        self._count += 1
        self._token = f"{self.prefix}-{self._count}"
        return [*self.in_flight, f"/ping {self._token}"]


def _is_history(command: str) -> bool:
    return command.startswith("/history ")


class Restore:
    """Rooms and the current room as they were before the connection was lost.

    Feed it every line of the new connection (after `ClientState.on_line`):
    `on_line` returns the commands to send (through the `Outbox`), once, when
    the server's autojoin is over; `acked` is told of the commands the
    `Outbox` has had acknowledged. `done` is true when all of them were.
    """

    @classmethod
    def after_loss(cls, previous: Restore | None, state: ClientState) -> Restore:
        """What to rebuild on the next connection: the rooms still being
        restored if it was lost again before they were back, else the rooms
        the client is in now."""
        if previous is not None and not previous.done:
            return cls(previous.rooms, previous.current)
        return cls([room.name for room in state.rooms.values()], state.current)

    def __init__(self, rooms: list[str], current: str | None) -> None:
        self.rooms = rooms  # in the order they were joined
        self.current = current
        self.sent = False
        self.done = False
        self._waiting: list[str] = []

    def on_line(self, verb: str, rest: str, state: ClientState) -> list[str]:
        if self.sent:
            return []
        if verb == "WELCOME" and state.version == 1:
            self.sent = self.done = True  # a v1 server has no rooms to go back to
        elif verb == "CURRENT" and state.registered:
            # The first CURRENT after WELCOME ends the server's autojoin.
            self.sent = True
            self._waiting = self._plan(state)
            self.done = not self._waiting
            return list(self._waiting)
        return []

    def acked(self, commands: list[str]) -> None:
        for command in commands:
            if command in self._waiting:
                self._waiting.remove(command)
        self.done = self.sent and not self._waiting

    def _plan(self, state: ClientState) -> list[str]:
        wanted = {room_key(name) for name in self.rooms}
        commands = [f"/join {name}" for name in self.rooms if room_key(name) not in state.rooms]
        commands += [f"/part {room.name}" for key, room in state.rooms.items() if key not in wanted]
        # Where plain text would go after these: the last room joined, unless
        # a /part moved it (then the server picks; asking again is simplest).
        if any(command.startswith("/part ") for command in commands):
            then: str | None = None
        elif commands:
            then = room_key(commands[-1].removeprefix("/join "))
        else:
            then = room_key(state.current) if state.current is not None else None
        if self.current is not None and room_key(self.current) != then:
            commands.append(f"/join {self.current}")  # a switch: the room is joined by then
        return commands


def dial_in_background(loop: asyncio.AbstractEventLoop, dialer: Dialer) -> asyncio.Future[ssl.SSLSocket]:
    """Connect and complete the TLS handshake in a thread; the future gets the
    socket (non-blocking) or the `ClientError`.

    # NOTE: the thread owns the socket only until the handshake is done and
    # touches it no more after handing it over (or closing it, when nobody
    # waits any longer): the SSL object is never used by two threads at once
    # (docs/architecture.md, openssl/openssl#20446). A daemon thread, so that
    # Ctrl-C during a slow connect does not wait for its timeout.
    """
    future: asyncio.Future[ssl.SSLSocket] = loop.create_future()

    def hand_over(sock: ssl.SSLSocket | None, error: ClientError | None) -> None:
        if future.cancelled():
            if sock is not None:
                sock.close()
        elif error is not None:
            future.set_exception(error)
        elif sock is not None:
            future.set_result(sock)

    def work() -> None:
        sock: ssl.SSLSocket | None = None
        error: ClientError | None = None
        try:
            sock = dialer.connect()
        except ClientError as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(hand_over, sock, error)
        except RuntimeError:  # the loop is closed: chatctl is exiting
            if sock is not None:
                sock.close()

    threading.Thread(target=work, name="chatctl-connect", daemon=True).start()
    return future
