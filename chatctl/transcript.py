"""What `chatctl connect` prints above the input line, as styled fragments
(chatctl/render.py's `Fragments`, each ending its line): the server's lines,
with a day separator before the first line of a new day, and chatctl's own
notices (a room caught up, a nickname to choose or refused, the commands'
help).

Pure, like chatctl/render.py, which says how one line looks: no terminal,
no prompt_toolkit, no session. What is not here: deciding what to show and
printing it (chatctl/interactive.py, chatctl/terminal.py), the status line
(chatctl/status.py), the scroll-back view (chatctl/pager.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Final

from chatctl.render import Fragments, Roles, line_time, render_day, render_line, render_notice

COMMANDS_HELP: Final = (
    "<text> says it in the current room; //text sends a line that starts with /",
    "/join <#room>   /part [#room]   /msg <#room|nick> <text>   /topic [#room] [text]   /rooms",
    "/me <text>   /who [#room]   /nick <new>   /ping   /quit [text]   /help",
    "/history <#room|nick> [before|after <id>] [limit]",
    "rooms with owners: /room register|drop <#room>   /room <#room> [<flag> on|off | owner <nick>]",
    "/op /deop /voice /devoice <#room> <nick>   /kick <#room> <nick> [why]   /invite <#room> <nick>",
    "/ban <#room> <nick|account:name|ip/cidr> [why]   /unban <#room> <mask>   /bans <#room>",
)


class Transcript:
    """The server's lines as printed one after another: the day is remembered
    so that a separator comes before the first line of each new day."""

    def __init__(self, roles: Roles) -> None:
        self._roles = roles
        self._last_day: date | None = None

    def line(self, line: str, own: str, current: str | None, now: datetime) -> Fragments:
        """A server line as shown (`own`: your nickname; `current`: the current
        room when the line came), after a day separator when the day changed."""
        fragments: Fragments = []
        day = line_time(line, now).date()
        if self._last_day is not None and day != self._last_day:
            fragments += _lines(render_day(day))
        self._last_day = day
        return fragments + _lines(render_line(line, own, now, current, self._roles))


def notice(text: str, now: datetime) -> Fragments:
    """chatctl's own line, told apart from the server's."""
    return _lines(render_notice(text, now))


def notices(texts: Iterable[str], now: datetime) -> Fragments:
    return [fragment for text in texts for fragment in notice(text, now)]


def caught_up(room: str, missed: int, now: datetime) -> Fragments:
    """A room's catch-up after a reconnect is over: how many events it showed."""
    if not missed:
        return notice(f"{room}: back, nothing missed", now)
    return notice(f"{room}: back, {missed} missed event" + ("" if missed == 1 else "s") + " above", now)


def nick_needed(nick: str | None, registered_once: bool, now: datetime) -> Fragments:
    """The server asks for a nickname: the first time, or after `nick` was refused."""
    if not registered_once:
        return notice("choose a nickname: type it and press Enter", now)
    return notices(
        (
            f"{nick} was refused: your old connection may linger at the server",
            f"type {nick} again to retry, or choose another nickname",
        ),
        now,
    )


def _lines(fragments: Fragments) -> Fragments:
    return [*fragments, ("", "\n")] if fragments else []
