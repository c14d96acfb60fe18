"""The history rows of the command table (core/commands.py): `/history` of
a room or of the direct messages with a nickname, and IRC's CHATHISTORY
TARGETS. Both ask the store off the session's thread (`Chat.lookups`) and
answer from the lookup thread, where only the outlet is safe to use.

What is not here: the store and what it keeps (core/history.py,
chatd/storage/), the backlog a join sends (`Chat.seat`).
"""

from __future__ import annotations

from chatd import names
from chatd.core import protocol
from chatd.core.history import PAGE_DEFAULT, PAGE_MAX, Event, dm_key, owned_dm_key
from chatd.core.protocol import Command
from chatd.core.room_commands import Moderator, joined
from chatd.errors import ProtocolError


def history(caller: Moderator, command: Command) -> None:
    """`/history`: the store is asked off this thread; the answer is sent from there."""
    query = protocol.parse_history(command.text, PAGE_DEFAULT, PAGE_MAX)
    chat, target, outlet = caller.chat, command.target, caller.outlet
    also: str | None = None
    if names.is_room(target):
        room = joined(caller, target)
        if not chat.keeps_history:
            raise ProtocolError(protocol.NO_HISTORY, "This server keeps no history.")
        key, shown = room.key, room.name
    else:
        protocol.check_nick(target, chat.config.limits.max_nick_length)
        if not chat.keeps_history or not caller.authenticated:
            # Kept only between authenticated parties: a guest's nickname proves nothing.
            raise ProtocolError(protocol.NO_HISTORY, "This server keeps no direct messages of yours.")
        key, shown = dm_key(caller.nick, target), target
        also = owned_dm_key(caller.nick, target)  # and those with `target` while it was a guest
    newer = query.after is not None

    def answer(events: list[Event] | None) -> None:
        if events is None:  # on the lookup thread: only the outlet is safe to use
            error = ProtocolError(protocol.NO_HISTORY, f"The history of {shown} cannot be read now; try again.")
            outlet.deliver(protocol.format_error(error))
            return
        more = len(events) > query.limit
        if more:
            events = events[: query.limit] if newer else events[-query.limit :]
        chat.send_history(caller, shown, events, more, newer)

    chat.lookups.history(key, query.before, query.after, query.limit + 1, answer, also)


def targets(caller: Moderator, command: Command) -> None:
    """IRC's CHATHISTORY TARGETS (`<after_ms> <before_ms> <limit>`, only the IRC
    codec hands it in): the rooms the caller is in, and (if authenticated) the
    nicknames it has direct messages with, whose last kept event is strictly
    between the two times, the earliest first: `TARGET <name> <time>` each,
    then `TARGETS <count>`."""
    try:
        after, before, limit = (int(word) for word in command.text.split())
    except ValueError:
        raise ProtocolError(protocol.BAD_ARGUMENT, "TARGETS takes two times (ms) and a limit.") from None
    chat, outlet = caller.chat, caller.outlet
    if not chat.keeps_history:
        raise ProtocolError(protocol.NO_HISTORY, "This server keeps no history.")
    me = names.nick_key(caller.nick) if caller.authenticated else None

    def answer(events: list[Event] | None) -> None:  # on the lookup thread: only the outlet is safe to use
        if events is None:
            error = ProtocolError(protocol.NO_HISTORY, "The history cannot be read now; try again.")
            outlet.deliver(protocol.format_error(error))
            return
        kept = sorted((e for e in events if after < e.time_ms < before), key=lambda e: (e.time_ms, e.id))
        clock = chat.history.clock
        lines = [protocol.format_line("TARGET", _shown(e, me), clock.format(e.time_ms).decode()) for e in kept[:limit]]
        lines.append(protocol.format_line("TARGETS", str(len(lines))))
        outlet.deliver(b"".join(lines), len(lines))

    chat.lookups.targets([room.key for room in caller.rooms.values()], me, answer)


def _shown(event: Event, me: str | None) -> str:
    """A target as its owner names it: the room, or the other party of a DM."""
    if not event.target.startswith("dm:"):
        return event.room
    return event.room if names.nick_key(event.nick) == me else event.nick
