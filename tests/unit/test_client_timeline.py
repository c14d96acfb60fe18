"""chatctl/timeline.py: what is shown of each room's events, fed with lines only.

The last tests run a small model of chatd's history (a backlog of the last
events on join, `/history ... after` replies of limited size, live events in
between) through many reconnect scenarios and check the promise of
docs/protocol.md, "Catching up after a reconnect": every event once, in
order, no gap.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import pytest

from chatctl.timeline import CATCH_UP_PAGE, PAGE, Shown, Step, Timeline

TIME = "2026-12-01T18:04:05.123Z"


def event(event_id: int, text: str = "", room: str = "#lobby", nick: str = "bob", history: bool = False) -> str:
    tags = f"@id={event_id};time={TIME}" + (";history" if history else "")
    return f"{tags} MSG {room} {nick} {text or f'm{event_id}'}"


def old(event_id: int, room: str = "#lobby") -> str:
    return event(event_id, room=room, history=True)


def join(room: str = "#lobby", nick: str = "carol") -> list[str]:
    return [f"JOIN {room} {nick}", f"USERS {room} bob {nick}"]


def feed(timeline: Timeline, *lines: str, in_flight: str | None = None) -> Step:
    """Every line, one after the other; the steps merged."""
    total = Step()
    for line in lines:
        step = timeline.feed(line, "carol", in_flight)
        total.show += step.show
        total.send += step.send
        total.pages += step.pages
        total.caught_up += step.caught_up
        total.incomplete += step.incomplete
    return total


def shown(step: Step) -> list[str]:
    return [s.line for s in step.show if not s.quiet]


def ids(step: Step) -> list[int]:
    return [int(s.line.split(";")[0].removeprefix("@id=")) for s in step.show if s.line.startswith("@id=")]


def test_lines_that_are_not_events_pass_through() -> None:
    timeline = Timeline()
    lines = [
        "HELLO 3 chatd 0.3.0",
        "NICK",
        "WELCOME carol hi",
        "TOPIC #lobby bob t",
        "MSG #lobby bob v2",
        "DM bob carol hi",
        "@id=3;time=x DM bob carol hi",
        "PONG x",
        "CURRENT #lobby",
        "FROB",
    ]
    assert shown(feed(timeline, *lines)) == lines


def test_a_first_join_shows_the_backlog_and_keeps_its_history_line_quiet() -> None:
    timeline = Timeline()
    step = feed(timeline, *join(), old(3), old(5), "HISTORY #lobby 2 more", "CURRENT #lobby", event(8))
    assert ids(step) == [3, 5, 8]
    assert Shown("HISTORY #lobby 2 more", quiet=True) in step.show
    assert step.send == [] and step.caught_up == []
    mark = timeline.marks["#lobby"]
    assert (mark.last_id, mark.oldest_id, mark.older) == (8, 3, True)


def test_an_event_already_shown_is_not_shown_again() -> None:
    timeline = Timeline()
    feed(timeline, *join(), old(3), "HISTORY #lobby 1 end", event(5), event(6))
    step = feed(timeline, event(6))  # a live line twice: never happens, but harmless
    assert ids(step) == []
    # A part and a rejoin: the backlog repeats what was seen; only the new is shown.
    step = feed(
        timeline, "PART #lobby carol", event(9, room="#rust"), *join(), old(5), old(6), old(7), "HISTORY #lobby 3 more"
    )
    assert ids(step) == [9, 7]


def test_the_room_of_an_event_is_compared_without_regard_to_case() -> None:
    timeline = Timeline()
    feed(timeline, *join("#Lobby"), "HISTORY #Lobby 0 end", event(4, room="#Lobby"))
    assert ids(feed(timeline, old(4, room="#LOBBY"))) == [4]  # not ours, not in a backlog: shown
    assert timeline.marks["#lobby"].seen == {4}


def test_a_join_remembers_every_id_received_before_it() -> None:
    """Every event of a room said after our JOIN comes after it, with a greater id."""
    timeline = Timeline()
    feed(timeline, *join("#rust"), "HISTORY #rust 0 end", event(40, room="#rust"))
    feed(timeline, *join(), "HISTORY #lobby 0 end")
    assert timeline.marks["#lobby"].last_id == 40


def catching_up(timeline: Timeline, name: str | None = None) -> bool:
    """Whether `name` (or any room) is catching up, or waits to after a reconnect."""
    if name is None:
        return bool(timeline._catch_up or timeline._to_catch_up)
    key = name.lower()
    return key in timeline._catch_up or key in timeline._to_catch_up


def reconnected(timeline: Timeline, *rooms: str) -> None:
    timeline.connection_lost()
    feed(timeline, "HELLO 3 chatd 0.3.0", "NICK", "WELCOME carol hi")


def test_after_a_reconnect_a_backlog_that_reaches_back_is_enough() -> None:
    timeline = Timeline()
    feed(timeline, *join(), old(3), "HISTORY #lobby 1 more", event(5))
    reconnected(timeline)
    assert catching_up(timeline, "#LOBBY") and catching_up(timeline)
    step = feed(timeline, *join(), old(3), old(5), old(6), old(7), "HISTORY #lobby 4 more", event(8))
    assert step.send == []
    assert ids(step) == [6, 7, 8]
    assert step.caught_up == [("#lobby", 2)]
    assert not catching_up(timeline)


def test_after_a_reconnect_a_backlog_ending_with_end_is_enough() -> None:
    timeline = Timeline()
    feed(timeline, *join(), "HISTORY #lobby 0 end")
    reconnected(timeline)
    step = feed(timeline, *join(), old(7), "HISTORY #lobby 1 end")
    assert step.send == [] and ids(step) == [7] and step.caught_up == [("#lobby", 1)]


def test_after_a_reconnect_the_gap_is_asked_for_and_everything_comes_out_in_order() -> None:
    timeline = Timeline()
    feed(timeline, *join(), old(3), "HISTORY #lobby 1 more", event(5))
    reconnected(timeline)
    step = feed(timeline, *join(), old(20), old(21), "HISTORY #lobby 2 more")
    assert step.send == [f"/history #lobby after 5 {CATCH_UP_PAGE}"]
    assert ids(step) == []  # held back until the gap is filled
    step = feed(timeline, event(22), old(6), old(9), "HISTORY #lobby 2 more")
    assert ids(step) == [] and step.send == [f"/history #lobby after 9 {CATCH_UP_PAGE}"]
    step = feed(timeline, event(23), old(12), old(20), old(21), old(22), "HISTORY #lobby 4 more")
    assert step.send == []  # the reply reached what came with the join
    assert ids(step) == [6, 9, 12, 20, 21, 22, 23]
    assert [s.line for s in step.show if "history" not in s.line] == [event(22), event(23)]
    assert step.caught_up == [("#lobby", 5)]
    assert ids(feed(timeline, event(24))) == [24]
    assert timeline.marks["#lobby"].last_id == 24


def test_a_catch_up_reply_that_ends_finishes_it() -> None:
    timeline = Timeline()
    feed(timeline, *join(), "HISTORY #lobby 0 end", event(5))
    reconnected(timeline)
    feed(timeline, *join(), old(30), "HISTORY #lobby 1 more")
    step = feed(timeline, old(6), "HISTORY #lobby 1 end")
    assert ids(step) == [6, 30] and step.caught_up == [("#lobby", 2)]


def test_a_room_in_which_nothing_was_said_catches_up_from_the_join() -> None:
    timeline = Timeline()
    feed(timeline, event(50, room="#rust"), *join(), "HISTORY #lobby 0 end")
    reconnected(timeline)
    step = feed(timeline, *join(), old(60), "HISTORY #lobby 1 more")
    assert step.send == [f"/history #lobby after 50 {CATCH_UP_PAGE}"]


def test_rooms_catch_up_each_on_their_own_and_their_replies_are_told_apart() -> None:
    timeline = Timeline()
    feed(
        timeline,
        *join(),
        "HISTORY #lobby 0 more",
        event(5),
        *join("#rust"),
        "HISTORY #rust 0 end",
        event(6, room="#rust"),
    )
    reconnected(timeline)
    step = feed(
        timeline,
        *join(),
        old(10),
        "HISTORY #lobby 1 more",
        *join("#rust"),
        old(11, room="#rust"),
        "HISTORY #rust 1 more",
        event(12, room="#rust"),
        event(13),
    )
    assert step.send == [f"/history #lobby after 5 {CATCH_UP_PAGE}", f"/history #rust after 6 {CATCH_UP_PAGE}"]
    step = feed(
        timeline,
        old(7),
        old(10),
        "HISTORY #lobby 2 more",
        old(8, room="#rust"),
        old(11, room="#rust"),
        "HISTORY #rust 2 more",
    )
    assert ids(step) == [7, 10, 13, 8, 11, 12]
    assert step.caught_up == [("#lobby", 2), ("#rust", 2)]


def test_a_room_joined_before_any_event_without_a_backlog_cannot_catch_up() -> None:
    """A server with `history.backlog: 0`: the room has events, none came with the
    join, and none was received before it: there is no id to catch up from."""
    timeline = Timeline()
    feed(timeline, *join(), "HISTORY #lobby 0 more")
    reconnected(timeline)
    step = feed(timeline, *join(), "HISTORY #lobby 0 more")
    assert step.send == [] and step.incomplete == ["#lobby"]
    assert ids(feed(timeline, event(9))) == [9]
    # With one event seen, the next reconnect catches up from it.
    reconnected(timeline)
    step = feed(timeline, *join(), "HISTORY #lobby 0 more")
    assert step.send == [f"/history #lobby after 9 {CATCH_UP_PAGE}"]


def test_a_failed_catch_up_shows_what_it_has_and_says_so() -> None:
    timeline = Timeline()
    feed(timeline, *join(), "HISTORY #lobby 0 more", event(5))
    reconnected(timeline)
    step = feed(timeline, *join(), old(10), "HISTORY #lobby 1 more")
    timeline.acked(step.send)
    step = feed(timeline, "ERR no_history History cannot be read now; try again.")
    assert ids(step) == [10] and step.incomplete == ["#lobby"]
    assert shown(step)[0].startswith("ERR no_history")


def test_lost_again_while_catching_up_keeps_the_first_gap() -> None:
    timeline = Timeline()
    feed(timeline, *join(), "HISTORY #lobby 0 more", event(5))
    reconnected(timeline)
    feed(timeline, *join(), old(10), "HISTORY #lobby 1 more", event(11))
    reconnected(timeline)  # the held events were never shown
    step = feed(timeline, *join(), old(10), old(11), old(12), "HISTORY #lobby 3 more")
    assert step.send == [f"/history #lobby after 5 {CATCH_UP_PAGE}"]


def test_a_room_not_joined_again_is_not_caught_up_later() -> None:
    timeline = Timeline()
    feed(timeline, *join(), "HISTORY #lobby 0 more", event(5))
    reconnected(timeline)
    timeline.forget_catch_up()
    step = feed(timeline, *join(), old(10), "HISTORY #lobby 1 more")
    assert step.send == [] and ids(step) == [10] and not catching_up(timeline)


def test_older_pages_for_the_scroll_back_view() -> None:
    timeline = Timeline()
    assert timeline.request_older("#lobby") is None  # not in the room
    feed(timeline, *join(), old(30), old(31), "HISTORY #lobby 2 more")
    assert timeline.has_older("#lobby")
    assert timeline.request_older("#lobby") == f"/history #lobby before 30 {PAGE}"
    assert timeline.request_older("#lobby") is None  # one at a time
    step = feed(timeline, event(33), old(10), old(20), "HISTORY #lobby 2 more")
    assert ids(step) == [33] and len(step.pages) == 1
    page = step.pages[0]
    assert (page.room, page.lines, page.more) == ("#lobby", [old(10), old(20)], True)
    assert timeline.request_older("#lobby") == f"/history #lobby before 10 {PAGE}"
    step = feed(timeline, old(4), "HISTORY #lobby 1 end")
    assert step.pages[0].lines == [old(4)] and not step.pages[0].more
    assert not timeline.has_older("#lobby") and timeline.request_older("#lobby") is None
    assert timeline.marks["#lobby"].last_id == 33


def test_a_failed_page_can_be_asked_for_again() -> None:
    timeline = Timeline()
    feed(timeline, *join(), old(30), "HISTORY #lobby 1 more")
    command = timeline.request_older("#lobby")
    assert command is not None
    step = feed(timeline, "ERR no_history History cannot be read now; try again.", in_flight=command)
    assert step.pages[0].lines == [] and step.pages[0].more
    assert timeline.request_older("#lobby") == f"/history #lobby before 30 {PAGE}"


def test_an_err_no_history_is_told_to_the_request_it_answers() -> None:
    """Refused at once (too many questions waiting at the server): the one that
    waits for its PONG. Failed in its turn (the store could not be read): the
    oldest acknowledged one. Nobody's: only shown."""
    timeline = Timeline()
    feed(
        timeline,
        *join(),
        old(30),
        "HISTORY #lobby 1 more",
        *join("#rust"),
        old(40, room="#rust"),
        "HISTORY #rust 1 more",
    )
    lobby, rust = timeline.request_older("#lobby"), timeline.request_older("#rust")
    assert lobby is not None and rust is not None
    timeline.acked([lobby])
    step = feed(timeline, "ERR no_history Too many questions; try again.", in_flight=rust)
    assert [page.room for page in step.pages] == ["#rust"]
    step = feed(timeline, "ERR no_history Too many questions; try again.", in_flight="/join #ops")
    assert [page.room for page in step.pages] == ["#lobby"]
    step = feed(timeline, "ERR no_history Nobody asked.")
    assert step.pages == [] and shown(step) == ["ERR no_history Nobody asked."]


def test_no_older_page_of_a_room_without_history_or_with_all_of_it() -> None:
    timeline = Timeline()
    feed(timeline, *join(), "HISTORY #lobby 0 end", *join("#rust"), old(3, room="#rust"), "HISTORY #rust 1 end")
    assert timeline.request_older("#lobby") is None and timeline.request_older("#rust") is None


def test_forget_before_pages_again_from_there() -> None:
    timeline = Timeline()
    feed(timeline, *join(), old(3), "HISTORY #lobby 1 end", event(7), event(9))
    timeline.forget_before("#lobby", 9)
    assert timeline.request_older("#lobby") == f"/history #lobby before 9 {PAGE}"


def test_what_the_user_asks_for_is_shown_as_it_comes() -> None:
    timeline = Timeline()
    feed(timeline, *join(), old(30), "HISTORY #lobby 1 more")
    timeline.on_command("/history #lobby before 30 2")
    assert timeline.request_older("#lobby") is not None  # queued after the user's
    step = feed(timeline, old(28), old(29), "HISTORY #lobby 2 more", old(27), "HISTORY #lobby 1 more")
    assert shown(step) == [old(28), old(29), "HISTORY #lobby 2 more"]
    assert step.pages[0].lines == [old(27)]


@pytest.mark.parametrize(
    "command",
    [
        "/history #rust",
        "/history #lobby before",
        "/history #lobby after x",
        "/history #lobby 501",
        f"/history #lobby after {1 << 62}",
        "/history #lobby after -1",
        "/history #lobby 0",
        "/history #lobby before 3 4 5",
        "/history bob",
        "/historyx #lobby",
        "hello",
    ],
)
def test_commands_the_server_would_refuse_or_not_for_a_room_are_not_queued(command: str) -> None:
    timeline = Timeline()
    feed(timeline, *join(), old(30), "HISTORY #lobby 1 more")
    timeline.on_command(command)
    assert timeline.request_older("#lobby") is not None
    step = feed(timeline, old(20), "HISTORY #lobby 1 more")
    assert step.pages and step.pages[0].lines == [old(20)]


@pytest.mark.parametrize(
    "command",
    ["/history #lobby", "/history #LOBBY after 3", "/history #lobby before 9 500", "/history #lobby after 0 5"],
)
def test_well_formed_history_commands_are_queued(command: str) -> None:
    timeline = Timeline()
    feed(timeline, *join(), old(30), "HISTORY #lobby 1 more")
    timeline.on_command(command)
    timeline.request_older("#lobby")
    assert shown(feed(timeline, old(20), "HISTORY #lobby 1 more")) == [old(20), "HISTORY #lobby 1 more"]


def test_history_lines_nobody_asked_for_are_shown() -> None:
    timeline = Timeline()
    lines = ["@id=4;time=x;history DM bob carol hi", "HISTORY bob 1 end", old(3), "HISTORY #lobby 1 end"]
    assert shown(feed(timeline, *lines)) == lines


# -- a model of the server: every event once, in order, no gap --------------------------------


@dataclass
class Server:
    """chatd's history for one room, as docs/protocol.md describes it."""

    backlog: int
    page_max: int  # a reply holds at most this many (the send-queue budget)
    events: list[int] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def say(self) -> int:
        self.events.append(next(self.ids) * 3)  # ids are not consecutive
        next(self.ids)  # and other rooms take some
        return self.events[-1]

    def join(self) -> list[str]:
        recent = self.events[-self.backlog :] if self.backlog else []
        more = "more" if len(self.events) > len(recent) else "end"
        return [*join(), *(old(i) for i in recent), f"HISTORY #lobby {len(recent)} {more}"]

    def answer(self, command: str) -> list[str]:
        words = command.split()
        assert words[:3] == ["/history", "#lobby", "after"], command
        after, limit = int(words[3]), int(words[4])
        newer = [i for i in self.events if i > after]
        page = newer[: min(limit, self.page_max)]
        more = "more" if len(newer) > len(page) else "end"
        return [*(old(i) for i in page), f"HISTORY #lobby {len(page)} {more}"]


@pytest.mark.parametrize("seed", range(300))
def test_catching_up_shows_every_event_once_in_order(seed: int) -> None:
    rng = random.Random(seed)
    server = Server(backlog=rng.choice([0, 1, 3, 50]), page_max=rng.choice([1, 2, 5, 500]))
    for _ in range(rng.randrange(0, 8)):
        server.say()
    timeline = Timeline()
    seen = ids(feed(timeline, *server.join()))
    first = len(server.events) - len(seen)  # events before the first backlog are not expected
    needs_anchor = server.backlog == 0 and bool(server.events)  # see ..._cannot_catch_up
    for _ in range(rng.randrange(1 if needs_anchor else 0, 6)):
        seen += ids(feed(timeline, event(server.say())))
    rounds = rng.randrange(1, 4)
    for round_ in range(rounds):
        for _ in range(rng.randrange(0, 12)):  # said while we are away
            server.say()
        reconnected(timeline)
        pending = list(server.join())
        requests: list[str] = []
        # Sometimes the connection is lost again in the middle of catching up.
        cut = rng.randrange(1, 8) if round_ < rounds - 1 and rng.random() < 0.4 else -1
        while (pending or requests) and cut != 0:
            cut -= 1
            if pending and (not requests or rng.random() < 0.5):
                step = feed(timeline, pending.pop(0))
            elif rng.random() < 0.3:  # a live event in between
                step = feed(timeline, event(server.say()))
            else:  # the server answers the oldest request
                step = feed(timeline, *server.answer(requests.pop(0)))
            seen += ids(step)
            requests += step.send
        if cut == 0:
            continue
        assert not catching_up(timeline), seed
        for _ in range(rng.randrange(0, 3)):
            seen += ids(feed(timeline, event(server.say())))
    assert seen == server.events[first:], seed
