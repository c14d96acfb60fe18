"""CHATHISTORY (IRCv3 draft/chathistory) on chatd's history: the session's
`/history` asked once (twice for AROUND), its ids as msgids
(MSGREFTYPES=msgid), and what to keep of its answers (`History`, read by
ircreplies.py into a `chathistory` batch). LATEST, BEFORE, AFTER, BETWEEN,
AROUND; and TARGETS, the session's "targets" (the rooms and direct-message
partners with events between two times). No I/O here.
"""

from __future__ import annotations

import datetime

from chatd.outlet import Command
from chatd.transport.irclink import Link
from chatd.transport.ircmessage import Message
from chatd.transport.ircstate import Asked, History, Reply

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def chathistory(link: Link, message: Message, reply: Reply) -> None:
    """draft/chathistory on chatd's history, ids as msgids (MSGREFTYPES=msgid)."""
    state = link.state
    sub, target = message.text(0).upper(), message.text(1)
    if sub == "TARGETS":
        _targets(link, message, reply)
        return
    if sub not in ("LATEST", "BEFORE", "AFTER", "BETWEEN", "AROUND") or len(message.params) < 4:
        reply.out.append(
            state.fail("CHATHISTORY", "INVALID_PARAMS", sub or "*", "Unknown subcommand or too few parameters")
        )
        return
    refs = [_reference(message.text(i)) for i in range(2, len(message.params) - 1)]
    limit_text = message.text(len(message.params) - 1)
    if not limit_text.isdigit() or not 1 <= int(limit_text) or None in refs or (sub == "BETWEEN" and len(refs) < 2):
        reply.out.append(state.fail("CHATHISTORY", "INVALID_PARAMS", sub, "Bad message reference or limit"))
        return
    limit = min(int(limit_text), link.settings.history_page)
    history = History(target, sub)
    asks: list[str] = []
    first = refs[0] or 0
    if sub == "LATEST":
        history.after = refs[0] if refs[0] != -1 else None
        asks.append(f"{limit}")
    elif sub == "BEFORE":
        asks.append(f"before {first} {limit}")
    elif sub == "AFTER":
        asks.append(f"after {first} {limit}")
    elif sub == "BETWEEN":
        second = refs[1] or 0
        if first < second:
            history.before = second
            asks.append(f"after {first} {limit}")
        else:
            history.after = second
            asks.append(f"before {first} {limit}")
    else:  # AROUND: the older half before it, then it and the newer half
        older = limit // 2
        if older:
            asks.append(f"before {first} {older}")
        asks.append(f"after {first - 1} {limit - older}")
    history.parts = len(asks)
    for words in asks:
        link.ask(reply, Command("history", words.encode(), target), Asked(reply, target=target, history=history))


def _reference(text: str) -> int | None:
    """`*` (-1), `msgid=<id>`, else None (timestamps are not offered: MSGREFTYPES=msgid)."""
    if text == "*":
        return -1
    key, _, value = text.partition("=")
    return int(value) if key == "msgid" and value.isdigit() and len(value) < 19 else None


def _targets(link: Link, message: Message, reply: Reply) -> None:
    """`CHATHISTORY TARGETS <timestamp> <timestamp> <limit>`: the session's
    "targets" between the two times (either order), in a
    `draft/chathistory-targets` batch."""
    state = link.state
    times = [_timestamp(message.text(i)) for i in (1, 2)]
    limit = message.text(3)
    if len(message.params) < 4 or None in times or not limit.isdigit() or int(limit) < 1:
        reply.out.append(state.fail("CHATHISTORY", "INVALID_PARAMS", "TARGETS", "Give two timestamps and a limit"))
        return
    low, high = sorted(t for t in times if t is not None)
    words = f"{low} {high} {min(int(limit), link.settings.history_page)}"
    link.ask(reply, Command("targets", words.encode()), Asked(reply, history=History("", "TARGETS")))


def _timestamp(text: str) -> int | None:
    """`timestamp=YYYY-MM-DDThh:mm:ss.sssZ` in ms since the epoch, else None."""
    key, _, value = text.partition("=")
    if key != "timestamp":
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return (when - _EPOCH) // datetime.timedelta(milliseconds=1)  # exact: no float
