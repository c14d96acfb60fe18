"""chatd/transport/inbox.py: work handed over from other threads is taken all
at once and in order, announced by one wake-up, and refused (not lost) once
the worker has stopped taking it."""

from __future__ import annotations

import select
import threading

from chatd.transport.inbox import Inbox


def noop() -> None:
    pass


def woken(inbox: Inbox[str]) -> bool:
    poller = select.poll()
    poller.register(inbox.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def test_calls_and_dirty_connections_are_taken_together_in_order() -> None:
    inbox: Inbox[str] = Inbox()
    try:
        first, second = noop, lambda: None
        assert inbox.call_soon(first, "alice")
        inbox.mark_dirty("bob")
        assert inbox.call_soon(second)
        inbox.mark_dirty("carol")
        assert inbox.take() == ([(first, "alice"), (second, None)], ["bob", "carol"])
        assert inbox.take() == ([], [])
    finally:
        inbox.close()


def test_work_from_another_thread_wakes_the_owner_until_it_drains() -> None:
    inbox: Inbox[str] = Inbox()
    try:
        assert not woken(inbox)
        thread = threading.Thread(target=lambda: [inbox.mark_dirty(f"c{n}") for n in range(100)])
        thread.start()
        thread.join(10)
        assert woken(inbox)
        inbox.drain()
        assert not woken(inbox)
        assert len(inbox.take()[1]) == 100
        inbox.call_soon(noop)
        assert woken(inbox)
    finally:
        inbox.close()


def test_a_refusing_inbox_keeps_what_came_before_and_refuses_calls_after() -> None:
    inbox: Inbox[str] = Inbox()
    try:
        assert inbox.call_soon(noop, "alice")
        inbox.refuse()
        assert not inbox.open
        assert not inbox.call_soon(noop, "bob")
        assert inbox.take() == ([(noop, "alice")], [])
    finally:
        inbox.close()
    inbox.wake()  # after close: harmless
    inbox.mark_dirty("late")  # a late deliver to a stopped worker: harmless too
