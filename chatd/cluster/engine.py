"""ClusterEngine: the core's `Engine` port (core/network.py) on Redis.

Each operation a session asks for becomes a script call (scripts.py's
`Calls`, under this node's current incarnation) queued on the `Writer`;
what Redis answers comes back on the writer thread. A success needs nothing
here: its entry is in the log, and the reader applies it on every node. A
refusal goes to the caller's `refused(code, detail)`:

* the script's own (`nick_taken`, `not_in_room`, ..., `fenced`);
* `busy` at once, when the writer's queue is full (nothing was queued);
* `lost` for a call that did not run: never sent before the writer stopped
  (`Unavailable`), or sent without a reply (`Interrupted`) and, as the log
  shows, not run. Whether an interrupted call ran is known once the reader
  has passed the last id Redis had handed out after it (`settle_after`, from
  the next good heartbeat, then `settled`, from the reader): its entry would
  be at or below that id.

A `fenced` answer to a call of the current incarnation is told to the node
at once (`on_fenced`): it need not wait for its next heartbeat.

Blocking calls (`kick`, `info`: the control thread's) wait for their answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

import structlog

from chatd.cluster.errors import ClusterError, Fenced, Interrupted, Refused
from chatd.cluster.scripts import Call, Calls, Incarnation
from chatd.cluster.writer import Writer
from chatd.core.network import BUSY, FENCED, INTERRUPTED, LOST, Refusal

log = structlog.get_logger(__name__)

BLOCKING_TIMEOUT: Final = 10.0  # seconds the control thread waits for a kick or a broadcast


class ClusterEngine:
    def __init__(self, writer: Writer, calls: Calls, on_fenced: Callable[[Incarnation], None]) -> None:
        self._writer = writer
        self._calls = calls
        self._on_fenced = on_fenced
        self.me = Incarnation("", 0)  # set at each registration
        self._lock = threading.Lock()
        # Interrupted calls: those waiting for a heartbeat's head (with when they
        # were found interrupted), then for the reader.
        self._unsettled: list[tuple[float, Refusal]] = []
        self._settling: list[tuple[int, Refusal]] = []
        self.refusals = 0  # calls a script refused (all reasons), for the metrics

    # -- the Engine port --------------------------------------------------------------

    def claim(self, conn: int, nick: str, refused: Refusal) -> None:
        self._submit(self._calls.claim(self.me, conn, nick), refused)

    def rename(self, conn: int, old: str, new: str, refused: Refusal) -> None:
        self._submit(self._calls.rename(self.me, conn, old, new), refused)

    def leave(self, conn: int, nick: str, reason: str, refused: Refusal) -> None:
        me = self.me
        call = self._calls.leave(me, conn, nick, reason) if reason else self._calls.release(me, conn, nick)
        self._submit(call, refused)

    def join(
        self, conn: int, nick: str, room: str, allow_create: bool, max_rooms: int, per_client: int, refused: Refusal
    ) -> None:
        self._submit(self._calls.join(self.me, conn, nick, room, allow_create, max_rooms, per_client), refused)

    def part(self, conn: int, nick: str, room: str, text: str, refused: Refusal) -> None:
        self._submit(self._calls.part(self.me, conn, nick, room, text), refused)

    def topic(self, conn: int, nick: str, room: str, text: str, refused: Refusal) -> None:
        self._submit(self._calls.topic(self.me, conn, nick, room, text), refused)

    def say(self, conn: int, nick: str, kind: str, room: str, texts: list[bytes], refused: Refusal) -> None:
        self._submit(self._calls.say(self.me, conn, nick, kind, room, texts), refused)

    def direct(self, conn: int, nick: str, recipient: str, text: bytes, refused: Refusal) -> None:
        self._submit(self._calls.direct(self.me, conn, nick, recipient, text), refused)

    def kick(self, nick: str, text: str) -> bool:
        outcome = self._wait(self._calls.kick(self.me, nick, text))
        if isinstance(outcome, Refused) and outcome.code == "no_such_nick":
            return False
        if isinstance(outcome, ClusterError):
            log.warning("cluster_kick_failed", nick=nick, error=str(outcome))
            return False
        return True

    def info(self, text: bytes) -> None:
        outcome = self._wait(self._calls.info(self.me, text))
        if isinstance(outcome, ClusterError):
            log.warning("cluster_broadcast_failed", error=str(outcome))

    # -- interrupted calls --------------------------------------------------------------

    def settle_after(self, head: int, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` (time.monotonic) saw `head` as the last
        id handed out: the entries of calls found interrupted before it was
        sent, if they ran, are at or below it."""
        with self._lock:
            due = [refused for when, refused in self._unsettled if when < sent_at]
            self._unsettled = [(when, refused) for when, refused in self._unsettled if when >= sent_at]
            self._settling.extend((head, refused) for refused in due)

    def settled(self, position: int) -> None:
        """The reader has applied the log up to `position`: an interrupted call
        whose head that passes has not run, or its entry has completed it."""
        if not self._settling:
            return
        with self._lock:
            due = [refused for head, refused in self._settling if head <= position]
            self._settling = [(head, refused) for head, refused in self._settling if head > position]
        for refused in due:
            refused(LOST, INTERRUPTED)

    # -- inside ---------------------------------------------------------------------------

    def _submit(self, call: Call[Any], refused: Refusal) -> None:
        me = self.me

        def done(outcome: object) -> None:
            if isinstance(outcome, ClusterError):
                self._refused(outcome, refused, me)

        if not self._writer.submit(call, done):
            refused(BUSY, "")

    def _refused(self, error: ClusterError, refused: Refusal, me: Incarnation) -> None:
        self.refusals += 1
        if isinstance(error, Fenced):
            if me == self.me:
                self._on_fenced(me)
            refused(FENCED, "")
        elif isinstance(error, Refused):
            refused(error.code, error.detail)
        elif isinstance(error, Interrupted):
            with self._lock:
                self._unsettled.append((time.monotonic(), refused))
        else:  # Unavailable (the writer stopped without Redis), or a reply not understood
            refused(LOST, "unsent")

    def _wait(self, call: Call[Any]) -> object:
        answered = threading.Event()
        outcome: list[object] = [ClusterError("no answer from Redis in time")]

        def done(value: object) -> None:
            outcome[0] = value
            answered.set()

        if not self._writer.submit(call, done):
            return ClusterError("the cluster writer's queue is full")
        answered.wait(BLOCKING_TIMEOUT)
        return outcome[0]
