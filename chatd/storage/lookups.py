"""LookupThread: the chat core's questions for an event store (`/history`),
answered on a thread of their own, `chatd-history`, never on an I/O worker.

The core asks through its `Lookups` port (chatd/core/history.py) and gets
each answer through the callable it gave, on this thread: the answer goes to
the client through its outlet, which any thread may use. The store's
`range` may block (a SQLite read); here that holds up only other questions.
At most `WAITING_MAX` questions wait; beyond that one is answered None at
once ("try again"), so a flood of `/history` cannot grow memory.

What is not here: the store itself (sqlite.py), and what a question and its
answer mean (core/commands.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Final

import structlog

from chatd.core.history import Answer, Event, EventStore

log = structlog.get_logger(__name__)

WAITING_MAX: Final = 1000  # /history questions queued; beyond, "try again"

# What to ask the store, for whom (the log's `target`), and where the answer goes.
_Question = tuple[Callable[[], list[Event]], str, Answer]


class LookupThread:
    """The `Lookups` of a server with a store; the thread starts with the first question."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._questions: queue.SimpleQueue[_Question | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="chatd-history", daemon=True)
        self._starting = threading.Lock()

    def history(
        self, target: str, before: int | None, after: int | None, limit: int, answer: Answer, also: str | None = None
    ) -> None:
        store = self._store
        if also is None:  # the store's range() as every store has it
            self._ask((lambda: store.range(target, before, after, limit), target, answer))
        else:
            self._ask((lambda: store.range(target, before, after, limit, also), target, answer))

    def targets(self, rooms: Sequence[str], nick: str | None, answer: Answer) -> None:
        store, rooms = self._store, tuple(rooms)
        self._ask((lambda: store.targets(rooms, nick), f"targets of {nick or 'a guest'}", answer))

    def _ask(self, question: _Question) -> None:
        answer = question[2]
        if self._questions.qsize() >= WAITING_MAX:
            answer(None)
            return
        if not self._thread.is_alive():
            with self._starting:  # the first question starts the thread
                if not self._thread.is_alive() and self._thread.ident is None:
                    self._thread.start()
        self._questions.put(question)

    def close(self) -> None:
        """Answer what was asked (for up to 10 s), then let the thread end."""
        if self._thread.is_alive():
            self._questions.put(None)
            self._thread.join(10.0)

    def _serve(self) -> None:
        while (question := self._questions.get()) is not None:
            ask, target, answer = question
            try:
                events: list[Event] | None = ask()
            except Exception:  # a failing store answers "try again", and the thread goes on
                log.exception("history_lookup_failed", target=target)
                events = None
            try:
                answer(events)
            except Exception:  # a bug in one answer must not end the thread for the others
                log.exception("history_reply_failed", target=target)
