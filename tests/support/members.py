"""`FakeMember`: what the room table and the nick registry need of a client
(a `nick` and a `deliver()`), recording what it was sent, for the unit tests
of chatd/core/rooms.py and chatd/core/nicks.py."""

from __future__ import annotations


class FakeMember:
    """A client as rooms and nicks see it. `received` is the bytes of each
    delivery; `deliveries` the whole calls, as (data, lines, sender)."""

    def __init__(self, nick: str = "", label: str = "") -> None:
        self.nick = nick
        self.account: str | None = None  # a guest (room roles are accounts')
        self.shared = None  # delivered to alone, not with a group (chatd/outlet.py)
        self.label = label  # a name for the test's own messages, before the member has a nick
        self.received: list[bytes] = []
        self.deliveries: list[tuple[bytes, int, object]] = []

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        self.received.append(data)
        self.deliveries.append((data, lines, sender))

    def __repr__(self) -> str:
        return f"FakeMember({self.label or self.nick!r})"
