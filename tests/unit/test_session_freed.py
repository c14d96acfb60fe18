"""A closed session is freed with its last reference, without a GC pass,
whichever way its lines took: core/dispatch.py and core/registering.py are
functions that take the session and must keep nothing that points back at it
(the split of Session into helper objects that each held it was reverted for
leaving every finished session to the cyclic GC: tests/integration/test_churn.py).
The simplest case is tests/unit/test_session.py's."""

from __future__ import annotations

import gc
import weakref

import pytest

from chatd.core.chat import Chat
from chatd.core.session import Session
from tests.support.sessions import PAUSE, FakeOutlet, clock_of, connect, make_chat


@pytest.fixture
def chat() -> Chat:
    return make_chat()


def paste(outlet: FakeOutlet, count: int) -> None:
    """`count` lines in one read, after a pause that fills the bucket."""
    assert outlet.session is not None
    clock_of(outlet).advance(PAUSE)
    outlet.session.on_lines([b"line %d" % i for i in range(count)])


def _freed_at_once(outlet: FakeOutlet) -> None:
    """`outlet`'s session, closed, goes with the outlet's reference to it."""
    assert outlet.session is not None
    session = weakref.ref(outlet.session)
    outlet.close("quit")
    gc.collect()
    gc.disable()
    try:
        outlet.session = None
        assert session() is None
    finally:
        gc.enable()


def test_a_session_closed_on_each_way_of_its_lines_is_freed_at_once(chat: Chat) -> None:
    """The ways a line takes (core/dispatch.py, core/registering.py) keep no
    reference to the session: not a nickname refused, a line held by flood
    control or refused for the rate, nor lines held while the bus works."""
    newcomer = FakeOutlet("127.0.0.1:1")
    newcomer.session = Session(chat, newcomer, {})
    newcomer.session.on_open(None, None)
    newcomer.session.on_lines([b"no good", b"/rooms"])  # refused, and a command without a nickname
    assert newcomer.take()[-2:] == ["ERR nick_invalid Nicknames are 1-32 characters of A-Z, a-z, 0-9, _ and -.", "NICK"]
    _freed_at_once(newcomer)

    flooder = connect(chat, "flooder")
    paste(flooder, 11)  # 5 said, 5 held by flood control, 1 refused
    assert flooder.take()[-1] == "ERR rate_limited Slow down; that line was dropped."
    _freed_at_once(flooder)

    waiter = connect(chat, "waiter")
    assert waiter.session is not None
    waiter.session.hold()  # an operation on its way through the bus: lines wait
    waiter.session.on_lines([b"/join #a", b"hello"])
    assert waiter.take() == []
    _freed_at_once(waiter)
