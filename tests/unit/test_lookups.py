"""chatd/storage/lookups.py: the core's questions for the store, answered on
the `chatd-history` thread, never on the asking one; and the core's own
default, chatd/core/history.py's DirectLookups."""

from __future__ import annotations

import queue
import re
import threading
from pathlib import Path

from chatd.core.history import DirectLookups, Event
from chatd.storage.lookups import WAITING_MAX, LookupThread

WAIT = 10.0  # seconds; a bound, never a pause
CORE = Path(__file__).resolve().parents[2] / "chatd" / "core"


def event(number: int, target: str = "#lobby") -> Event:
    return Event(number, 0, target, target, "alice", "msg", b"hi %d" % number)


class Store:
    """`range` of an EventStore, which waits for `gate` when it is given one."""

    def __init__(self, gate: threading.Event | None = None, fails: bool = False) -> None:
        self.gate = gate
        self.fails = fails
        self.asked: list[tuple[str, int | None, int | None, int]] = []

    def range(self, target: str, before: int | None, after: int | None, limit: int) -> list[Event]:
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        self.asked.append((target, before, after, limit))
        if self.fails:
            raise OSError("disk I/O error")
        return [event(1, target)]


def answers() -> tuple[queue.SimpleQueue[tuple[str, list[Event] | None]], object]:
    got: queue.SimpleQueue[tuple[str, list[Event] | None]] = queue.SimpleQueue()

    def answer(events: list[Event] | None) -> None:
        got.put((threading.current_thread().name, events))

    return got, answer


def test_a_question_is_answered_on_the_history_thread() -> None:
    store = Store()
    lookups = LookupThread(store)  # type: ignore[arg-type]
    got, answer = answers()
    lookups.history("#lobby", 10, None, 5, answer)  # type: ignore[arg-type]
    assert got.get(timeout=WAIT) == ("chatd-history", [event(1)])
    assert store.asked == [("#lobby", 10, None, 5)]
    lookups.close()


def test_beyond_the_waiting_limit_a_question_is_answered_none_at_once() -> None:
    gate = threading.Event()
    lookups = LookupThread(Store(gate))  # type: ignore[arg-type]
    got, answer = answers()
    for _ in range(WAITING_MAX + 1):  # the first is taken by the thread, which waits on the gate
        lookups.history("#lobby", None, None, 1, answer)  # type: ignore[arg-type]
    lookups.history("#lobby", None, None, 1, answer)  # type: ignore[arg-type]
    assert got.get(timeout=WAIT) == (threading.current_thread().name, None)
    gate.set()
    lookups.close()


def test_a_failing_store_or_answer_leaves_the_thread_answering() -> None:
    store = Store(fails=True)
    lookups = LookupThread(store)  # type: ignore[arg-type]
    got, answer = answers()

    def broken(events: list[Event] | None) -> None:
        raise RuntimeError("a bug in one answer")

    lookups.history("#a", None, None, 1, broken)
    lookups.history("#b", None, None, 1, answer)  # type: ignore[arg-type]
    assert got.get(timeout=WAIT) == ("chatd-history", None)  # the store failed: "try again"
    store.fails = False
    lookups.history("#c", None, None, 1, answer)  # type: ignore[arg-type]
    assert got.get(timeout=WAIT) == ("chatd-history", [event(1, "#c")])
    lookups.close()


def test_close_answers_what_was_asked_first() -> None:
    gate = threading.Event()
    lookups = LookupThread(Store(gate))  # type: ignore[arg-type]
    got, answer = answers()
    for target in ("#a", "#b", "#c"):
        lookups.history(target, None, None, 1, answer)  # type: ignore[arg-type]
    gate.set()
    lookups.close()
    assert [got.get_nowait()[1] for _ in range(3)] == [[event(1, t)] for t in ("#a", "#b", "#c")]


def test_close_before_any_question_starts_no_thread() -> None:
    LookupThread(Store()).close()  # type: ignore[arg-type]
    assert "chatd-history" not in {thread.name for thread in threading.enumerate()}


def test_direct_lookups_answer_on_the_asking_thread() -> None:
    got, answer = answers()
    DirectLookups(Store()).history("#lobby", None, 3, 2, answer)  # type: ignore[arg-type]
    assert got.get_nowait() == (threading.current_thread().name, [event(1)])


def test_the_chat_core_starts_no_thread() -> None:
    sources = {path.name: path.read_text() for path in CORE.glob("*.py")}
    spawning = re.compile(r"\bThread\(|^import queue|^from queue ", re.M)
    assert sources and not [name for name, text in sources.items() if spawning.search(text)]
