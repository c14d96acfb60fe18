"""chatd/transport/waker.py: a wake-up from another thread ends a wait, wake-ups
before a drain are merged into one byte, and a late one after close is harmless."""

from __future__ import annotations

import fcntl
import select
import termios
import threading

from chatd.transport.waker import Waker


def waiting(waker: Waker) -> int:
    """The bytes the owner's descriptor holds (FIONREAD)."""
    return int.from_bytes(fcntl.ioctl(waker.fileno(), termios.FIONREAD, b"\0\0\0\0"), "little")


def test_a_wake_from_another_thread_ends_the_wait() -> None:
    waker = Waker()
    try:
        poller = select.poll()
        poller.register(waker.fileno(), select.POLLIN)
        thread = threading.Thread(target=waker.wake)
        thread.start()
        events = poller.poll(10_000)  # milliseconds; returns as soon as the byte is there
        thread.join(10)
        assert events == [(waker.fileno(), select.POLLIN)]
    finally:
        waker.close()


def test_wakes_before_a_drain_cost_one_byte_and_the_next_wakes_again() -> None:
    waker = Waker()
    try:
        for _ in range(1000):
            waker.wake()
        assert waiting(waker) == 1
        waker.drain()
        assert waiting(waker) == 0
        assert select.select([waker], [], [], 0)[0] == []
        waker.wake()
        assert waiting(waker) == 1
    finally:
        waker.close()


def test_a_drain_with_nothing_waiting_returns_at_once() -> None:
    waker = Waker()
    try:
        waker.drain()
        assert waiting(waker) == 0
    finally:
        waker.close()


def test_a_wake_after_close_does_nothing() -> None:
    waker = Waker()
    waker.close()
    assert waker.fileno() == -1
    waker.wake()  # a late deliver() to a worker that has stopped: no error, no stray write
    waker.drain()
