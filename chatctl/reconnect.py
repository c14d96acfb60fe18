"""Reconnecting `chatctl connect`: when, after how long, and how to get back to
where the session was.

- `reconnects_after_bye()`: which `BYE` reasons are worth coming back from.
  A close without `BYE` (a crash, a reset, a keepalive timeout) always is.
- `backoff()`: exponential backoff with jitter, so that clients dropped
  together by a restart do not all come back in the same instant.
- `Restore`: after the new connection registers (and the server has done its
  autojoin), the commands that put the rooms back as they were: `/join` the
  missing ones, `/part` autojoined ones you had left, `/join` the current room
  last, then a `/ping` whose `PONG` says all of that has been answered. Each
  room then catches up on its own (chatctl/timeline.py).
- `dial_in_background()`: the interactive client's connection attempt, in a
  thread so that the terminal stays responsive.

Only `dial_in_background` touches a socket; the rest is pure and tested as such.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import threading
from typing import Callable, Final

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


class Restore:
    """Rooms and the current room as they were before the connection was lost.

    Feed it every line of the new connection (after `ClientState.on_line`);
    `on_line` returns the commands to send. `done` is true once the server has
    answered all of them; `own_pong()` tells the line that says so, which is
    not shown.
    """

    def __init__(self, rooms: list[str], current: str | None, token: str) -> None:
        self.rooms = rooms  # in the order they were joined
        self.current = current
        self.token = token
        self.sent = False
        self.done = False

    def on_line(self, verb: str, rest: str, state: ClientState) -> list[str]:
        if not self.sent and verb == "WELCOME" and state.version == 1:
            self.sent = self.done = True  # a v1 server has no rooms to go back to
            return []
        if not self.sent and verb == "CURRENT" and state.registered:
            # The first CURRENT after WELCOME ends the server's autojoin.
            self.sent = True
            return self._plan(state)
        if self.sent and self.own_pong(verb, rest):
            self.done = True
        return []

    def own_pong(self, verb: str, rest: str) -> bool:
        return verb == "PONG" and rest == self.token

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
        commands.append(f"/ping {self.token}")
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
