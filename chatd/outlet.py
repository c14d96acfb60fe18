"""The seam between a chat session and the transport that carries it, named
once for both layers: what goes out (`Outlet`, `Sender`), and what a
transport with a grammar of its own hands in (`Command`, `Tracer`).

A session (chatd/core/session.py) writes to its client through an `Outlet`;
a room's fan-out pauses the `Sender` of a line when a recipient has fallen far
behind. The transport (chatd/transport/) provides both: the endpoint of a line
client, the WebSocket codec of a browser, the IRC codec of an IRC client.

Most transports hand their session lines of the line protocol, which the
core's grammar reads into `Command`s. The IRC codec (chatd/transport/irc.py)
reads IRC's grammar itself and hands over `Command`s directly, and needs to
know which of its commands each reply answers: it is the session's `Tracer`.
This module imports neither layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

Deliver = Callable[[bytes, int, "Sender | None"], None]  # an outlet's `deliver`


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


class DeliveryGroup(Protocol):
    """Outlets of one kind that take a room's block in one call for all of
    them: the IRC codecs of a listener translate a block once per set of
    capabilities, and a call per member would cost more than queueing it."""

    def deliver_to(self, outlets: tuple[Outlet, ...]) -> Deliver:
        """What delivers a block to each of `outlets` (members of one room,
        all of this group), as each one's `deliver` would."""


@dataclass(frozen=True, slots=True)
class SharedDelivery:
    """A session's outlet and the group it is delivered to with: what a room's
    fan-out calls once for all of the group's members (core/rooms.py)."""

    group: DeliveryGroup
    outlet: Outlet


# Not frozen, though never changed: a frozen dataclass is built through
# object.__setattr__, 3x the instructions, and IRC makes one per PRIVMSG.
@dataclass(slots=True)
class Command:
    """One client request, as the chat core's command table (core/commands.py) runs it.

    `verb` names a row of that table; `text` is UTF-8 (checked again by the
    session when a transport hands a `Command` in); `target` is a nickname or
    room argument ("" when an optional one was left out); `option` a second
    word some commands take (`/register`'s invite code). `tags` are tags for
    the events the command makes, as they go on the line (`key=value` items
    joined by `;`, values escaped as IRCv3 escapes them, so never a space or
    a `;`): the IRC codec's client-only tags and its `notice`/`action` marks.
    The line protocol's grammar never sets them.
    """

    verb: str
    text: bytes = b""
    target: str = ""
    option: str = ""
    tags: bytes = field(default=b"", kw_only=True)


class Tracer(Protocol):
    """Told when a session begins and ends handling each line or `Command` it
    was handed (the IRC codec: its labeled responses, and which command an
    `ERR` answers). Everything the session delivers to its own client on the
    transport's thread between the two answers that item. The events it says
    in a room join the read's block (one delivery to each member for all of
    them), and may leave later, inside another item's window or after the
    last; those of an item the tracer `wants_events` for have left by `end`,
    and nothing said before it leaves inside its window."""

    def wants_events(self, item: bytes | Command | None) -> bool:
        """Whether the room events `item` says belong to its answer (asked
        before its `begin`)."""

    def begin(self, item: bytes | Command | None) -> None: ...

    def end(self) -> None: ...
