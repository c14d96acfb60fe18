"""chatctl/session.py: the protocol session both modes of `chatctl connect`
drive, fed with lines (and a fake clock) only: registration, the restore
after a reconnect, the pacing of the client's own commands, what a `BYE`
ends with."""

from __future__ import annotations

import pytest

from chatctl.connection import ClientError, Exit, Outcome
from chatctl.reconnect import STABLE_AFTER
from chatctl.session import (
    Action,
    CaughtUp,
    Ended,
    Lost,
    NickNeeded,
    Page,
    Send,
    Session,
    Shown,
)
from chatctl.timeline import CATCH_UP_PAGE

TIME = "2026-12-01T18:04:05.123Z"


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(event_id: int, room: str = "#lobby", history: bool = False) -> str:
    return f"@id={event_id};time={TIME}" + (";history" if history else "") + f" MSG {room} bob m{event_id}"


def feed(session: Session, *lines: str, clock: Clock | None = None) -> list[Action]:
    actions: list[Action] = []
    for line in lines:
        actions += session.feed(line, clock() if clock is not None else 0.0)
    return actions


def sent(actions: list[Action] | list[Send]) -> list[str]:
    return [action.text for action in actions if isinstance(action, Send)]


def shown(actions: list[Action]) -> list[str]:
    return [action.line for action in actions if isinstance(action, Shown) and not action.quiet]


def joined(room: str, nick: str = "carol", backlog: tuple[str, ...] = (), more: bool = False) -> list[str]:
    """What chatd sends for a join: JOIN, USERS, the backlog and its HISTORY line, CURRENT."""
    end = "more" if more else "end"
    return [
        f"JOIN {room} {nick}",
        f"USERS {room} {nick}",
        *backlog,
        f"HISTORY {room} {len(backlog)} {end}",
        f"CURRENT {room}",
    ]


GREETING = ("HELLO 3 chatd 0.3.0", "NICK")


def registered(session: Session, nick: str = "carol", clock: Clock | None = None) -> list[Action]:
    return feed(session, *GREETING, f"WELCOME {nick} hi", *joined("#lobby", nick), clock=clock)


# -- registration ---------------------------------------------------------------------------


def test_the_nickname_goes_out_when_the_server_asks() -> None:
    session = Session("carol")
    assert feed(session, "HELLO 3 chatd 0.3.0") == [Shown("HELLO 3 chatd 0.3.0")]
    assert sent(feed(session, "NICK")) == ["carol"]
    assert not session.ready
    feed(session, "WELCOME carol hi")
    assert session.ready and session.registered_once and session.state.nick == "carol"


def test_a_refused_nickname_is_reported_with_the_error_and_another_can_be_offered() -> None:
    session = Session("carol")
    feed(session, *GREETING)
    actions = feed(session, "ERR nick_taken That nickname is in use; choose another.", "NICK")
    assert NickNeeded("carol", "nick_taken That nickname is in use; choose another.") in actions
    assert sent(actions) == [] and session.needs_nick  # never offered twice by itself
    assert session.command("hello") == []  # it would be taken for a nickname: held
    assert sent(session.offer_nick("carol2")) == ["carol2"] and not session.needs_nick
    actions = feed(session, "WELCOME carol2 hi")
    assert sent(actions) == ["hello"]  # what was held goes once registered
    assert session.state.nick == "carol2"
    assert NickNeeded("carol2", "nick_taken again") in feed(session, "ERR nick_taken again", "NICK")


def test_without_a_nickname_the_first_nick_asks_for_one() -> None:
    session = Session(None)
    actions = feed(session, *GREETING)
    assert NickNeeded(None, "") in actions and session.needs_nick
    assert sent(session.offer_nick("dave")) == ["dave"]


def test_a_quit_is_sent_even_before_registration_and_only_once() -> None:
    session = Session("carol")
    feed(session, *GREETING)
    assert sent(session.quit("/quit bye")) == ["/quit bye"]
    assert session.quit() == [] and session.quitting


# -- the restore after a reconnect ----------------------------------------------------------


def lose(session: Session) -> Lost:
    result = session.closed(None)
    assert isinstance(result, Lost)
    return result


def test_a_reconnect_rejoins_the_rooms_in_order_restores_the_current_one_and_catches_up() -> None:
    session = Session("carol", reconnect=True)
    registered(session)
    feed(session, *joined("#rust"), event(5, "#rust"), *joined("#ops"), "CURRENT #rust")
    assert session.command("/nick carol_") == [Send("/nick carol_")]
    feed(session, "RENAME carol carol_")
    assert [room.name for room in session.state.rooms.values()] == ["#lobby", "#rust", "#ops"]

    assert lose(session) == Lost("the server closed the connection without saying why")
    assert not session.state.rooms and not session.state.registered  # the connection is forgotten

    # The new connection: the nickname the server gave, then the server's autojoin.
    assert sent(feed(session, *GREETING)) == ["carol_"]
    actions = feed(session, "WELCOME carol_ hi", *joined("#lobby", "carol_"))
    # Once the autojoin is over (its CURRENT): the missing rooms in their old
    # order, then the current room; the first at once, with a ping.
    assert sent(actions) == ["/join #rust", "/ping chatctl-1"]
    assert session.command("typed meanwhile") == []  # held: the rooms are not back yet
    assert not session.ready

    # #rust's backlog does not reach back to event 5: it asks for the rest, in its turn.
    actions = feed(session, *joined("#rust", "carol_", (event(9, "#rust", history=True),), more=True))
    assert sent(actions) == []  # queued behind the command in flight
    actions = feed(session, "PONG chatctl-1")
    assert shown(actions) == []  # our own bookkeeping is not shown
    assert sent(actions) == ["/join #ops", "/join #rust", "/ping chatctl-2"]  # a /history goes alone
    actions = feed(session, *joined("#ops", "carol_"), "CURRENT #rust")
    assert CaughtUp("#ops", 0) in actions
    assert not session.ready
    actions = feed(session, "PONG chatctl-2")
    assert sent(actions) == [f"/history #rust after 5 {CATCH_UP_PAGE}", "/ping chatctl-3", "typed meanwhile"]
    assert session.ready
    assert [room.name for room in session.state.rooms.values()] == ["#lobby", "#rust", "#ops"]
    assert session.state.current == "#rust"

    actions = feed(session, event(6, "#rust", history=True), event(7, "#rust", history=True), "HISTORY #rust 2 end")
    assert [a for a in actions if isinstance(a, CaughtUp)] == [CaughtUp("#rust", 3)]
    assert shown(actions) == [event(6, "#rust", True), event(7, "#rust", True), event(9, "#rust", True)]


def test_the_rooms_come_back_in_their_old_order_not_the_autojoins() -> None:
    session = Session("carol", reconnect=True)
    registered(session)
    feed(session, *joined("#rust"), "PART #lobby carol", *joined("#lobby"))
    assert list(session.state.rooms) == ["#rust", "#lobby"]
    lose(session)
    actions = feed(session, *GREETING, "WELCOME carol hi", *joined("#lobby"))  # autojoined first
    assert sent(actions) == ["carol", "/join #rust", "/ping chatctl-1"]
    feed(session, *joined("#rust"))
    assert sent(feed(session, "PONG chatctl-1")) == ["/join #lobby", "/ping chatctl-2"]  # current again
    assert list(session.state.rooms) == ["#lobby", "#rust"] and not session.ready
    feed(session, "CURRENT #lobby", "PONG chatctl-2")
    assert session.ready and list(session.state.rooms) == ["#rust", "#lobby"]
    assert session.state.current == "#lobby"


def test_lost_again_before_the_rooms_are_back_restores_the_first_rooms() -> None:
    session = Session("carol", reconnect=True)
    registered(session)
    feed(session, *joined("#rust"))
    lose(session)
    feed(session, *GREETING, "WELCOME carol hi", *joined("#lobby"))
    lose(session)  # before the /join #rust was acknowledged
    actions = feed(session, *GREETING, "WELCOME carol hi", *joined("#lobby"))
    assert sent(actions) == ["carol", "/join #rust", "/ping chatctl-2"]


def test_attempts_start_afresh_only_after_a_connection_that_stayed_up() -> None:
    clock = Clock()
    session = Session("carol", reconnect=True)
    registered(session, clock=clock)
    clock.now += STABLE_AFTER - 1
    lose(session)
    assert session.attempts.next(clock()) == 1
    assert session.attempts.next(clock()) == 2  # the next attempt failed
    registered(session, clock=clock)
    clock.now += 1  # a short connection: the backoff goes on
    lose(session)
    assert session.attempts.next(clock()) == 3
    registered(session, clock=clock)
    clock.now += STABLE_AFTER
    lose(session)
    assert session.attempts.next(clock()) == 1


# -- pacing -----------------------------------------------------------------------------------


def test_the_clients_own_commands_wait_for_their_pong_not_for_time() -> None:
    clock = Clock()
    session = Session("carol")
    registered(session, clock=clock)
    sends = [text for n in range(6) for text in sent(session.push(f"/join #r{n}"))]
    assert sends == ["/join #r0", "/ping chatctl-1"]
    clock.now += 3600.0  # an hour passes: nothing more goes out
    assert sent(feed(session, "PONG somebody-else", clock=clock)) == []
    assert sent(feed(session, event(3), clock=clock)) == []
    actions = feed(session, "PONG chatctl-1", clock=clock)
    assert sent(actions) == [f"/join #r{n}" for n in range(1, 5)] + ["/ping chatctl-2"]
    assert shown(actions) == []
    assert sent(feed(session, "PONG chatctl-2", clock=clock)) == ["/join #r5", "/ping chatctl-3"]
    assert sent(feed(session, "PONG chatctl-3", clock=clock)) == []
    assert session.outbox.idle


def test_the_scroll_back_views_request_goes_alone_and_its_page_comes_back() -> None:
    session = Session("carol")
    registered(session)
    feed(session, *joined("#rust", backlog=(event(30, "#rust", True),), more=True))
    command = session.timeline.request_older("#rust")
    assert command is not None
    assert sent(session.push(command)) == [command, "/ping chatctl-1"]
    assert sent(session.push("/join #ops")) == []
    actions = feed(session, "PONG chatctl-1", event(20, "#rust", True), "HISTORY #rust 1 end")
    assert sent(actions) == ["/join #ops", "/ping chatctl-2"]
    assert Page("#rust", [event(20, "#rust", True)], False) in actions


# -- BYE and the end of a connection --------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "status", "words"),
    [
        ("quit", Exit.OK, None),
        ("kicked spamming links", Exit.DROPPED, "an operator removed you (spamming links)"),
        ("flood", Exit.DROPPED, "you sent too fast"),
        ("nick_failed", Exit.NICK_REFUSED, "too many refused nicknames"),
        ("shutdown", Exit.DROPPED, "shutting down"),
    ],
)
def test_bye_without_reconnecting_ends_the_session(reason: str, status: Exit, words: str | None) -> None:
    session = Session("carol")
    registered(session)
    actions = feed(session, f"BYE {reason}")
    assert shown(actions) == [f"BYE {reason}"]
    ended = actions[-1]
    assert isinstance(ended, Ended) and ended.outcome.status == status
    assert (ended.outcome.message is None) if words is None else (words in (ended.outcome.message or ""))


@pytest.mark.parametrize(
    ("reason", "why"),
    [
        ("shutdown", "the server is shutting down"),
        ("slow_consumer", "you were not reading fast enough"),
        ("write_timeout", "you stopped reading"),
    ],
)
def test_bye_worth_coming_back_from_is_a_reconnect(reason: str, why: str) -> None:
    session = Session("carol", reconnect=True)
    registered(session)
    actions = feed(session, f"BYE {reason}")
    assert not any(isinstance(action, Ended) for action in actions)
    assert session.closed(None) == Lost(why)


@pytest.mark.parametrize("reason", ["quit", "kicked x", "flood", "too_many_errors"])
def test_bye_not_worth_coming_back_from_ends_even_with_reconnecting(reason: str) -> None:
    session = Session("carol", reconnect=True)
    registered(session)
    assert isinstance(feed(session, f"BYE {reason}")[-1], Ended)


def test_no_reconnecting_before_the_first_registration_or_after_quit() -> None:
    session = Session("carol", reconnect=True)
    feed(session, *GREETING)
    closed = session.closed(None)
    assert isinstance(closed, Ended) and closed.outcome.status == Exit.DROPPED
    session = Session("carol", reconnect=True)
    registered(session)
    session.quit()
    assert session.closed(ClientError(Exit.DROPPED, "reset")) == Ended(Outcome(Exit.DROPPED, "reset"))


def test_a_failed_connection_is_a_reconnect_worded_without_the_advice() -> None:
    session = Session("carol", reconnect=True)
    registered(session)
    error = ClientError(Exit.DROPPED, "the connection to 127.0.0.1:7443 failed (reset); try connecting again")
    assert session.closed(error) == Lost("the connection to 127.0.0.1:7443 failed (reset)")


def test_leaving_because_of_an_error_ends_with_that_error() -> None:
    session = Session("carol")
    registered(session)
    session.quit(then=Outcome(Exit.INTERRUPTED))
    assert feed(session, "BYE quit")[-1] == Ended(Outcome(Exit.INTERRUPTED))
    session = Session("carol")
    registered(session)
    session.quit(then=Outcome(Exit.OK))  # end of input
    assert feed(session, "BYE quit")[-1] == Ended(Outcome(Exit.OK))


def test_without_follow_every_line_is_shown_as_it_came() -> None:
    """Script mode without --reconnect: the protocol's lines, a repeated event included."""
    session = Session("carol", follow=False)
    lines = [*GREETING, "WELCOME carol hi", *joined("#lobby", backlog=(event(3, history=True),)), event(3)]
    assert [a.line for a in feed(session, *lines) if isinstance(a, Shown)] == lines
    assert sent(session.command("/history #lobby")) == ["/history #lobby"]
    with pytest.raises(ValueError, match="follow"):
        Session("carol", follow=False, reconnect=True)
