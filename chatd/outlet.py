"""Outlet: the seam between a chat session and the transport that carries it.

A session (chatd/core/session.py) writes to its client through an `Outlet`;
a room's fan-out pauses the `Sender` of a line when a recipient has fallen far
behind. The transport (chatd/transport/) provides both: the endpoint of a line
client, the WebSocket codec of a browser. They are defined once, here, so that
the chat core and the transport name the same thing the same way; this
module imports neither of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Sender(Protocol):
    """The transport of the client a line comes from, as its recipients see it."""

    def pause_for_backlog(self) -> bool:
        """Stop reading this sender; False if it is already paused."""

    def resume_after_backlog(self) -> None:
        """Read this sender again (callable from any thread)."""


class Outlet(Sender, Protocol):
    """What a session needs from its transport."""

    peer: str
    connected_at: float  # time.time()

    def deliver(self, data: bytes, lines: int = 1, sender: Sender | None = None) -> None:
        """Queue `data` (`lines` complete lines) for the client; never blocks, any
        thread. A recipient far behind pauses `sender` until it has caught up."""

    def close(self, reason: str, text: str = "") -> None:
        """`BYE <reason>` (with `text` unless the reason is `quit`), then close (any thread)."""

    def set_deadline(self, when: float | None) -> None:
        """Call the session's `on_timer` at `when` (monotonic), or never."""

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the session's own thread, soon, under the same guard
        as its other events; callable from any thread (an answer computed
        elsewhere, such as a password check, comes back this way). Dropped if
        the transport has stopped."""
