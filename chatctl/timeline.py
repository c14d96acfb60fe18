"""Each room's events as chatctl has shown them: ids seen, exact catch-up after
a reconnect, and pages of older history. No sockets, no terminal.

`Timeline.feed()` takes every server line, in order, and answers with a
`Step`: the lines to show now (in order; a line held back earlier may come
out with a later one), the `/history` commands to send, pages of older events
for the scroll-back view, and the rooms whose catch-up just finished. The
protocol session (chatctl/session.py) feeds it for both modes of `chatctl
connect`; what "show" means is theirs.

The rules come from docs/protocol.md ("Events and tags", "History"):

- An event (`MSG`, `ACTION`, `DM`, a `TOPIC` change) carries an id. In one
  room, events arrive in increasing id order. An event whose id was already
  shown is not shown again (a backlog after a rejoin repeats what was seen).
- Per room, `Mark.last_id` is an id up to which every event of the room has
  been seen: the greatest id seen in it, or, on a join, the greatest id of
  any event received before the `JOIN` (the server assigns ids in order, and
  every event of the room said after the join comes to us after the `JOIN`).
  A room joined before any event was received anywhere, whose backlog was
  empty although it has history (a server with `history.backlog: 0`), has
  no such id until an event of it arrives: it cannot catch up, and says so.
- After a reconnect (`connection_lost()`, then the rooms are joined again),
  a room *catches up*: backlog events at or below `last_id` are dropped; if
  the backlog did not reach back that far, `/history <room> after <last_id>`
  is asked, then after the greatest id of each reply, until a reply ends with
  `end` or reaches the events that came with the join. Meanwhile the room's
  new events (backlog and live) are held, and all come out at the end in id
  order: no gap, no duplicate, no reordering.
- `request_older()` asks for the page before the oldest event seen in a room,
  for the scroll-back view.

A `history`-tagged line of a room belongs to the backlog of a join in
progress, or else to the oldest `/history` request for that room; which
request a reply (or an `ERR no_history`) answers is
chatctl/history_requests.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from chatctl.history_requests import Request, Requests, asked_room
from chatctl.state import is_room, line_room, line_tags, room_key, same_nick, split_line

PAGE: Final = 100  # events per scroll-back request
CATCH_UP_PAGE: Final = 500  # events per catch-up request: the protocol's maximum
EVENT_VERBS: Final = frozenset({"MSG", "ACTION", "TOPIC"})  # room events; DM has no room


@dataclass(frozen=True)
class Shown:
    """A line to show. `quiet` lines are bookkeeping the terminal UI leaves out
    (the `HISTORY` that ends a join's backlog); script mode prints them."""

    line: str
    quiet: bool = False


@dataclass(frozen=True)
class Page:
    """Older events of a room for the scroll-back view, oldest first."""

    room: str  # as the server spells it
    lines: list[str]
    more: bool  # the server may have events older than these


@dataclass
class Step:
    """What to do after one server line."""

    show: list[Shown] = field(default_factory=list)
    send: list[str] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    caught_up: list[tuple[str, int]] = field(default_factory=list)  # (room, missed events shown)
    incomplete: list[str] = field(default_factory=list)  # rooms whose catch-up failed


@dataclass
class Mark:
    """What has been seen of one room (kept across parts and reconnects)."""

    seen: set[int] = field(default_factory=set)
    last_id: int = 0  # every event of the room up to this id has been seen (see the module doc)
    anchored: bool = False  # `last_id` means that (see the module doc)
    oldest_id: int | None = None  # the oldest event id seen
    older: bool = False  # the server may have events before `oldest_id`
    paging: bool = False  # a request for older events is on its way

    def see(self, event_id: int) -> None:
        """Event `event_id` of the room was shown (or kept for the scroll-back view)."""
        self.seen.add(event_id)
        self.last_id = max(self.last_id, event_id)
        self.anchored = True
        if self.oldest_id is None or event_id < self.oldest_id:
            self.oldest_id = event_id

    def backlog_ended(self, ids: list[int], more: bool) -> None:
        """A join's backlog came: the events `ids`; `more`: the room has older ones."""
        if ids and (self.oldest_id is None or min(ids) <= self.oldest_id):
            self.oldest_id = min(ids)
            self.older = more
        if not more:
            self.anchored = True  # every event of the room has been received


@dataclass
class _CatchUp:
    """One room catching up after a reconnect (see the module doc)."""

    name: str
    after: int  # every event up to this id has been seen or is held
    start: int  # every event up to this id has been seen (`after` when it began)
    held: dict[int, str] = field(default_factory=dict)  # id -> line, shown when done
    joined_min: int | None = None  # the smallest held id that came with the join or live
    covered: bool = False  # the backlog reached back to `after`: nothing to ask

    def hold(self, event_id: int, line: str, from_join: bool) -> None:
        """An event of the room (`from_join`: of the join's backlog, or live),
        kept until the catch-up is over."""
        if event_id <= self.after:
            # Seen before the connection was lost: the backlog reaches back far
            # enough that nothing needs asking for.
            self.covered = self.covered or from_join
            return
        self.held.setdefault(event_id, line)
        if from_join and (self.joined_min is None or event_id < self.joined_min):
            self.joined_min = event_id

    def reached_join(self) -> bool:
        """Whether the replies reached the events that came with the join."""
        return self.joined_min is not None and self.after >= self.joined_min

    def release(self, mark: Mark) -> list[str]:
        """The events held and not seen meanwhile, in id order, seen now."""
        lines = []
        for event_id in sorted(self.held):
            if event_id not in mark.seen:
                mark.see(event_id)
                lines.append(self.held[event_id])
        return lines


class Timeline:
    def __init__(self) -> None:
        self.marks: dict[str, Mark] = {}  # by room key
        self._max_delivered = 0  # the greatest event id received, in any room
        self._member: dict[str, str] = {}  # rooms we are in on this connection: key -> name
        self._joining: dict[str, list[int]] = {}  # own JOIN seen, backlog's HISTORY not yet: ids
        self._catch_up: dict[str, _CatchUp] = {}
        self._to_catch_up: dict[str, int] = {}  # after a reconnect: key -> last_id, until joined
        self._unanchored: set[str] = set()  # after a reconnect: rooms that cannot catch up
        self._requests = Requests()

    # -- what the client does --------------------------------------------------------

    def connection_lost(self) -> None:
        """The connection is gone: the rooms we were in catch up once joined again.
        Events held back and requests in flight are forgotten (held events were
        not shown, so they are asked for again)."""
        for key in self._member:
            catch_up = self._catch_up.get(key)
            mark = self._mark(key)
            if catch_up is not None:
                self._to_catch_up[key] = catch_up.start  # what is held was never shown
            elif mark.anchored:
                self._to_catch_up[key] = mark.last_id
            else:
                self._unanchored.add(key)
        for mark in self.marks.values():
            mark.paging = False
        self._member.clear()
        self._joining.clear()
        self._catch_up.clear()
        self._requests.clear()

    def forget_catch_up(self) -> None:
        """Rooms not joined again after a reconnect are not caught up later."""
        self._to_catch_up.clear()
        self._unanchored.clear()

    def request_older(self, name: str) -> str | None:
        """The `/history` command for the page before the oldest event seen in
        room `name`, or None when there is none (or one is already asked for)."""
        key = room_key(name)
        mark = self.marks.get(key)
        if (
            key not in self._member
            or key in self._joining
            or key in self._catch_up
            or mark is None
            or mark.oldest_id is None
            or not mark.older
            or mark.paging
        ):
            return None
        mark.paging = True
        command = f"/history {self._member[key]} before {mark.oldest_id} {PAGE}"
        self._requests.add(Request(key, "older", command))
        return command

    def acked(self, commands: list[str]) -> None:
        """The server has taken `commands` (ours): a failure now comes in its turn."""
        self._requests.acked(commands)

    def has_older(self, name: str) -> bool:
        """Whether the server may have events of `name` older than those seen."""
        mark = self.marks.get(room_key(name))
        return mark is not None and mark.older

    def forget_before(self, name: str, oldest_id: int) -> None:
        """The scroll-back view let go of the events before `oldest_id`: page from there."""
        mark = self._mark(room_key(name))
        if mark.oldest_id is None or oldest_id > mark.oldest_id:
            mark.oldest_id, mark.older = oldest_id, True

    def on_command(self, text: str) -> None:
        """A line the user sent: a well-formed `/history` for a room we are in is
        queued, so that its reply is told from ours."""
        key = asked_room(text)
        if key is not None and key in self._member:
            self._requests.add(Request(key, "user", text, acked=True))

    # -- what the server says ----------------------------------------------------------

    def feed(self, line: str, own_nick: str, in_flight: str | None = None) -> Step:
        """Take in one server line (every one, in order); `in_flight` is the
        client's own command that waits for its acknowledgement, if any."""
        step = Step()
        verb, rest = split_line(line)
        tags = line_tags(line)
        if tags.id is not None:
            self._max_delivered = max(self._max_delivered, tags.id)
        room = line_room(verb, rest)
        if room is not None and verb in EVENT_VERBS and tags.id is not None:
            if tags.history:
                self._on_history_event(room_key(room), tags.id, line, step)
            else:
                self._on_live_event(room_key(room), tags.id, line, step)
            return step
        if verb == "HISTORY":
            self._on_history_end(rest, line, step)
            return step
        step.show.append(Shown(line))
        nick = rest.split(" ", 2)[1] if room is not None and " " in rest else ""
        own = bool(own_nick) and same_nick(nick, own_nick)
        if verb == "JOIN" and room is not None and own:
            self._on_own_join(room)
        elif verb in ("PART", "KICK") and room is not None and own:  # a kick takes us out as a part does (v5)
            self._on_own_part(room_key(room), step)
        elif verb == "ERR" and rest.partition(" ")[0] == "no_history":
            failed = self._requests.failed(in_flight)
            if failed is not None:
                self._requests.remove(failed)
                self._end_request(failed, [], False, step, failed=True)
        return step

    def _mark(self, key: str) -> Mark:
        mark = self.marks.get(key)
        if mark is None:
            mark = self.marks[key] = Mark()
        return mark

    def _on_own_join(self, name: str) -> None:
        key = room_key(name)
        self._member[key] = name
        self._joining[key] = []
        after = self._to_catch_up.pop(key, None)
        if after is not None:
            self._catch_up[key] = _CatchUp(name, after, after)
        elif self._max_delivered:
            mark = self._mark(key)
            # Every event of the room said from now on comes after this JOIN,
            # with an id greater than any received so far.
            mark.last_id = max(mark.last_id, self._max_delivered)
            mark.anchored = True

    def _on_own_part(self, key: str, step: Step) -> None:
        self._member.pop(key, None)
        self._joining.pop(key, None)
        if key in self._catch_up:
            self._finish(key, step, complete=False)

    def _on_live_event(self, key: str, event_id: int, line: str, step: Step) -> None:
        """A live event, or one of a join's backlog: held while the room catches
        up, else shown unless it was seen."""
        catch_up = self._catch_up.get(key)
        if catch_up is not None:
            catch_up.hold(event_id, line, from_join=True)
        elif event_id not in self._mark(key).seen:
            self._mark(key).see(event_id)
            step.show.append(Shown(line))

    def _on_history_event(self, key: str, event_id: int, line: str, step: Step) -> None:
        backlog = self._joining.get(key)
        if backlog is not None:
            backlog.append(event_id)
            self._on_live_event(key, event_id, line, step)
            return
        request = self._requests.oldest(key)
        if request is None:  # not asked for by us: show it as it is
            step.show.append(Shown(line))
            return
        request.max_id = max(request.max_id, event_id)
        if request.kind == "catch_up":
            catch_up = self._catch_up.get(key)
            if catch_up is not None:
                catch_up.hold(event_id, line, from_join=False)
        elif request.kind == "older":
            if event_id not in self._mark(key).seen:
                self._mark(key).see(event_id)
                request.lines.append(line)
        else:  # the user asked: show what came
            self._mark(key).see(event_id)
            step.show.append(Shown(line))

    def _on_history_end(self, rest: str, line: str, step: Step) -> None:
        """`HISTORY <target> <count> <more|end>`: a backlog or a reply is complete."""
        target, _, rest = rest.partition(" ")
        count_text, _, more_text = rest.partition(" ")
        more = more_text == "more"
        count = int(count_text) if count_text.isdigit() else 0
        key = room_key(target)
        backlog = self._joining.pop(key, None) if is_room(target) else None
        if backlog is not None:
            step.show.append(Shown(line, quiet=True))
            self._on_backlog_end(key, backlog, more, step)
            return
        request = self._requests.oldest(key)
        if request is None:
            step.show.append(Shown(line))
            return
        self._requests.remove(request)
        if request.kind == "user":
            step.show.append(Shown(line))
        self._end_request(request, request.lines, more, step, failed=False, count=count)

    def _on_backlog_end(self, key: str, ids: list[int], more: bool, step: Step) -> None:
        self._mark(key).backlog_ended(ids, more)
        catch_up = self._catch_up.get(key)
        if catch_up is None:
            if key in self._unanchored:
                self._unanchored.discard(key)
                step.incomplete.append(self._member.get(key, key))
            return
        if catch_up.covered or not more:
            self._finish(key, step, complete=True)
        else:
            self._ask_after(key, catch_up, step)

    def _ask_after(self, key: str, catch_up: _CatchUp, step: Step) -> None:
        command = f"/history {catch_up.name} after {catch_up.after} {CATCH_UP_PAGE}"
        self._requests.add(Request(key, "catch_up", command))
        step.send.append(command)

    def _end_request(
        self, request: Request, lines: list[str], more: bool, step: Step, failed: bool, count: int = 0
    ) -> None:
        key = request.key
        if request.kind == "older":
            mark = self._mark(key)
            mark.paging = False
            if not failed:  # after a failure the next request may work
                mark.older = more
            step.pages.append(Page(self._member.get(key, key), lines, mark.older))
        elif request.kind == "catch_up" and key in self._catch_up:
            catch_up = self._catch_up[key]
            if failed:
                self._finish(key, step, complete=False)
                return
            catch_up.after = max(catch_up.after, request.max_id)
            if not more or count == 0 or catch_up.reached_join():
                self._finish(key, step, complete=True)
            else:
                self._ask_after(key, catch_up, step)

    def _finish(self, key: str, step: Step, complete: bool) -> None:
        """The catch-up of a room is over: what was held comes out, in id order."""
        catch_up = self._catch_up.pop(key)
        mark = self._mark(key)
        lines = catch_up.release(mark)
        step.show.extend(Shown(line) for line in lines)
        mark.last_id = max(mark.last_id, catch_up.after)
        if complete:
            missed = sum(line_tags(line).history for line in lines)
            step.caught_up.append((catch_up.name, missed))
        else:
            step.incomplete.append(catch_up.name)
