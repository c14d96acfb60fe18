"""Intake: the reading side of one endpoint's flow control: how much one turn
reads, and when its client is not read at all (docs/architecture.md,
"Fan-out without stalls").

A client is not read
- while its own send queue holds more than half its limit: a sender that
  outpaces its own echo is slowed by TCP rather than disconnected;
- while it waits for a recipient's worker to take what it sent
  (`pause_for_backlog`, from that recipient's `SendQueue.deliver`, until
  `backlog_taken`): chatd itself is the bottleneck then;
- while its codec holds input (`held`: HTTP requests queued behind a response
  in flight).

The endpoint (endpoint.py) has one, beside its `SendQueue`, and acts on what
it answers: it stops watching the socket while `paused`, and watches it (and
reads what TLS holds) again when `resume()` says so.
"""

from __future__ import annotations

import ssl
from typing import Any, NamedTuple, Protocol

from chatd.transport.sendqueue import SendQueue
from chatd.transport.tlsstream import describe_error


class Readable(Protocol):
    """What the intake reads from: chatd.transport.tlsstream.TLSStream."""

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes; b"" at the end; ssl.SSLWantReadError when none wait."""


class Received(NamedTuple):
    data: bytes  # what was read (b"": nothing)
    ended: str  # why the stream ended ("": it did not)
    more: bool  # the budget ran out first: more may wait, which epoll cannot see


class Intake:
    __slots__ = ("_queue", "held", "paused", "waiting")

    def __init__(self, queue: SendQueue[Any]) -> None:
        self._queue = queue  # the same endpoint's
        self.paused = False  # not reading: the endpoint does not watch for readability
        self.waiting = False  # for a recipient's worker (`pause_for_backlog`)
        self.held = False  # by the codec

    def read(self, stream: Readable, budget: int) -> Received | None:
        """Read up to `budget` bytes of plaintext, all of it in one piece (lines
        read together leave together); None, and `paused`, if the client is not
        to be read now."""
        if not self._may_read():
            self.paused = True
            return None
        received: list[bytes] = []
        size = 0
        ended = ""
        more = False
        while size < budget:
            try:
                data = stream.recv(budget - size)
            except ssl.SSLWantReadError:
                break
            except OSError as exc:  # ssl.SSLError included
                ended = describe_error(exc)
                break
            if not data:
                ended = "closed by peer"
                break
            received.append(data)
            size += len(data)
        else:
            more = True
        return Received(received[0] if len(received) == 1 else b"".join(received), ended, more)

    def pause_for_backlog(self) -> bool:
        """Wait for a recipient's worker; False if already waiting (then the
        recipient need not resume this client: another will)."""
        if self.waiting:
            return False
        self.waiting = True
        return True

    def resume(self) -> bool:
        """Whether reading, paused, may go on now (True once per pause)."""
        if self.paused and self._may_read():
            self.paused = False
            return True
        return False

    def _may_read(self) -> bool:
        return not self.waiting and not self.held and not self._queue.over_half()
