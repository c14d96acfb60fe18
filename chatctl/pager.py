"""The scroll-back view of `chatctl connect`: one room's lines, full screen,
with older history paged in from the server as you scroll past the top.

The chat itself prints lines above the input line and leaves them to the
terminal, which cannot insert anything above what it has printed. So PageUp
opens this view instead (prompt_toolkit, full screen, like `less`): the
current room's lines since you joined it, its backlog, and whatever older
pages were fetched. Scrolling up past the oldest line asks for the page
before it (`request_older`); when it arrives (`insert_older`) it is inserted
above, and the line you were looking at stays where it was. New lines of the
room appear at the bottom while it is open. Esc or q (or PageDown at the
bottom) goes back to the chat.

`ScrollBack` keeps each room's lines (`Entry` lists) for the view, at most
`KEEP_MAX` per room, takes in the pages of older events the Timeline
(chatctl/timeline.py) hands over, and runs the view (`Pager`) over the chat
when asked. Lines are rendered by chatctl/render.py as in the chat, without
the room's name, with a day separator wherever the day changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from prompt_toolkit.application import Application, in_terminal
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.styles import Style
from prompt_toolkit.utils import get_cwidth

from chatctl.render import Fragments, line_time, render_day, render_line, sanitize
from chatctl.state import line_tags, room_key
from chatctl.timeline import Page, Timeline

KEEP_MAX: Final = 10_000  # lines kept per room
KEEP_TRIM: Final = 1_000  # dropped at once when there are more


@dataclass(frozen=True)
class Entry:
    """A line of a room as it came: the server line, and when it arrived."""

    line: str
    at: datetime


class ScrollBack:
    """Each room's lines for the scroll-back view, and the view while it is open.

    Args:
        timeline: what the client has seen of each room; asked for the
            `/history` command of an older page.
        send: sends a command to the server.
        connected: whether a command can be sent now (connected and registered).
        own_nick: your nickname, highlighted as in the chat.
        on_closed: called when the view closes (to print what waited meanwhile).
    """

    def __init__(
        self,
        timeline: Timeline,
        send: Callable[[str], None],
        connected: Callable[[], bool],
        own_nick: Callable[[], str],
        style: Style,
        escape_timeout: float,
        on_closed: Callable[[], None],
    ) -> None:
        self.timeline = timeline
        self._send = send
        self._connected = connected
        self._own_nick = own_nick
        self._style = style
        self._escape_timeout = escape_timeout
        self._on_closed = on_closed
        self.rooms: dict[str, list[Entry]] = {}  # by room key
        self.pager: Pager | None = None

    @property
    def is_open(self) -> bool:
        return self.pager is not None

    def keep(self, room: str, entry: Entry) -> None:
        """A line of `room` was shown in the chat."""
        kept = self.rooms.setdefault(room_key(room), [])
        kept.append(entry)
        if len(kept) > KEEP_MAX:
            del kept[:KEEP_TRIM]
            oldest = next((i for e in kept if (i := line_tags(e.line).id) is not None), None)
            if oldest is not None:
                self.timeline.forget_before(room, oldest)  # fetched again if scrolled back to
        if self.pager is not None and room_key(self.pager.room) == room_key(room):
            self.pager.refresh()

    def insert(self, page: Page, now: datetime) -> None:
        """Older events of a room came: above its first line (and in the view, if open on it)."""
        older = [Entry(line, now) for line in page.lines]
        if self.pager is not None and room_key(self.pager.room) == room_key(page.room):
            self.pager.insert_older(older)
        else:
            self.rooms.setdefault(room_key(page.room), [])[:0] = older

    def open(self, room: str, app: Application[str]) -> None:
        """Show the view of `room` over `app` (the chat's prompt) until it is closed."""
        if self.pager is not None:
            return
        self.pager = Pager(
            room,
            self.rooms.setdefault(room_key(room), []),
            lambda: self._request_older(room),
            lambda: self.timeline.has_older(room),
            self._own_nick,
            self._style,
            self._escape_timeout,
        )
        app.create_background_task(self._run(self.pager, app.ttimeoutlen))

    def close(self) -> None:
        if self.pager is not None:
            self.pager.close()

    async def _run(self, pager: Pager, prompt_timeout: float) -> None:
        try:
            # NOTE: the prompt's application flushes the (shared) terminal input
            # `ttimeoutlen` after each key, to tell Esc from an escape sequence;
            # a flush due while the view runs would take an Esc meant for it.
            await asyncio.sleep(prompt_timeout)
            async with in_terminal():
                await pager.run()
        finally:
            self.pager = None
            self._on_closed()

    def _request_older(self, room: str) -> bool:
        if not self._connected():
            return False
        command = self.timeline.request_older(room)
        if command is None:
            return False
        self._send(command)
        return True


class Pager:
    """The view of one room's `entries` (a list the caller keeps appending to).

    Args:
        request_older: asks the server for the page before the oldest line;
            returns False when there is nothing older (or a request is on
            its way already).
        has_older: whether the server may have older lines.
        own_nick: your nickname, highlighted as in the chat.
        escape_timeout: how long a lone Esc waits for the rest of an escape sequence.
    """

    def __init__(
        self,
        room: str,
        entries: list[Entry],
        request_older: Callable[[], bool],
        has_older: Callable[[], bool],
        own_nick: Callable[[], str],
        style: Style,
        escape_timeout: float = 0.1,
    ) -> None:
        self.room = room
        self.entries = entries
        self._request_older = request_older
        self._has_older = has_older
        self._own_nick = own_nick
        self.loading = False
        self._lines: list[Fragments] = []  # one per entry, and the day separators
        self._made_for = -1  # len(entries) when `_lines` was made
        self._rows: list[Fragments] = []  # `_lines` wrapped to the width
        self._wrapped_for = (-1, -1)  # (len(entries), width) of `_rows`
        self._top = 0  # the first row shown
        self._follow = True  # at the bottom: new lines scroll the view
        self.app: Application[None] = Application(
            layout=Layout(
                HSplit(
                    [
                        Window(FormattedTextControl(self._text), wrap_lines=False),
                        Window(FormattedTextControl(self._status), height=1, style="class:bottom-toolbar"),
                    ]
                )
            ),
            key_bindings=self._key_bindings(),
            style=style,
            full_screen=True,
        )
        self.app.ttimeoutlen = escape_timeout
        self.scroll_up(self._height())  # the key that opened the view scrolls, too

    async def run(self) -> None:
        await self.app.run_async()

    def close(self) -> None:
        if self.app.is_running and self.app.future is not None and not self.app.future.done():
            self.app.exit()

    def refresh(self) -> None:
        """New lines at the end: show them (the view follows them if it was at the bottom)."""
        self.app.invalidate()

    def insert_older(self, older: list[Entry]) -> None:
        """Put `older` before the first entry (an empty list: the request
        failed): the view moves up onto them, the page that ends where it was."""
        self.loading = False
        self._settle()
        before = len(self._wrapped())
        self.entries[:0] = older
        self._top += len(self._wrapped()) - before
        if older:
            self._top = max(0, self._top - self._height())
            self._follow = False
        self.app.invalidate()

    # -- scrolling ---------------------------------------------------------------------

    def scroll_up(self, rows: int) -> None:
        """Up by `rows`; at the top, ask for older lines."""
        self._settle()
        if self._top == 0:
            if not self.loading and self._request_older():
                self.loading = True
            return
        self._top = max(0, self._top - rows)
        self._follow = False

    def scroll_down(self, rows: int) -> None:
        """Down by `rows`; already at the bottom, back to the chat."""
        self._settle()
        bottom = self._bottom_top()
        if self._top >= bottom:
            self.close()
        self._top = min(bottom, self._top + rows)
        self._follow = self._top >= bottom

    def _settle(self) -> None:
        if self._follow:
            self._top = self._bottom_top()

    def _bottom_top(self) -> int:
        return max(0, len(self._wrapped()) - self._height())

    # -- drawing ---------------------------------------------------------------------

    def _size(self) -> tuple[int, int]:
        size = self.app.output.get_size()
        return max(1, size.rows - 1), max(10, size.columns)

    def _height(self) -> int:
        return self._size()[0]

    def _wrapped(self) -> list[Fragments]:
        width = self._size()[1]
        if self._made_for != len(self.entries):
            self._lines = self._render()
            self._made_for = len(self.entries)
            self._wrapped_for = (-1, -1)
        if self._wrapped_for != (self._made_for, width):
            self._rows = [row for line in self._lines for row in wrap(line, width)]
            self._wrapped_for = (self._made_for, width)
        return self._rows

    def _render(self) -> list[Fragments]:
        lines: list[Fragments] = []
        last_day: date | None = None
        nick = self._own_nick()
        for entry in self.entries:
            day = line_time(entry.line, entry.at).date()
            if last_day is not None and day != last_day:
                lines.append(render_day(day))
            last_day = day
            lines.append(render_line(entry.line, nick, entry.at, self.room))
        return lines

    def _text(self) -> FormattedText:
        rows = self._wrapped()
        self._settle()
        self._top = min(self._top, self._bottom_top())
        fragments: Fragments = []
        for index, row in enumerate(rows[self._top : self._top + self._height()]):
            if index:
                fragments.append(("", "\n"))
            fragments.extend(row)
        return FormattedText(fragments)

    def _status(self) -> FormattedText:
        if self.loading:
            where = "loading earlier lines…"
        elif self._top == 0 and not self._has_older():
            where = "the beginning of the history"
        elif self._top == 0:
            where = "PageUp for earlier lines"
        elif self._follow:
            where = "the latest lines"
        else:
            where = f"{len(self._wrapped()) - self._top - self._height()} rows below"
        return FormattedText(
            [
                ("class:status-current", f" {sanitize(self.room)} "),
                ("class:status", f" {where} | PgUp PgDn Home End | Esc: back "),
            ]
        )

    # -- keys --------------------------------------------------------------------------

    def _key_bindings(self) -> KeyBindings:
        bindings = KeyBindings()

        @bindings.add("pageup")
        def _up_page(event: KeyPressEvent) -> None:
            self.scroll_up(self._height())

        @bindings.add("up")
        def _up_row(event: KeyPressEvent) -> None:
            self.scroll_up(1)

        @bindings.add("pagedown")
        def _down_page(event: KeyPressEvent) -> None:
            self.scroll_down(self._height())

        @bindings.add("down")
        def _down_row(event: KeyPressEvent) -> None:
            if self._top < self._bottom_top():
                self.scroll_down(1)

        @bindings.add("end")
        def _bottom(event: KeyPressEvent) -> None:
            self._follow = True

        @bindings.add("home")
        def _top(event: KeyPressEvent) -> None:
            self._top, self._follow = 0, False

        @bindings.add("escape", eager=True)
        @bindings.add("q")
        @bindings.add("c-c")
        def _close(event: KeyPressEvent) -> None:
            self.close()

        return bindings


def wrap(fragments: Fragments, width: int) -> list[Fragments]:
    """Styled text cut into rows of at most `width` columns (wide characters count two)."""
    rows: list[Fragments] = [[]]
    used = 0
    for style, text in fragments:
        for char in text:
            char_width = max(0, get_cwidth(char))
            if used + char_width > width and used:
                rows.append([])
                used = 0
            row = rows[-1]
            if row and row[-1][0] == style:
                row[-1] = (style, row[-1][1] + char)
            else:
                row.append((style, char))
            used += char_width
    return rows
