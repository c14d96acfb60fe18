"""ForwardingOutlet: the part of a session's `Outlet` (chatd/outlet.py) that a
codec passes to its endpoint unchanged: closing, deadlines, `call_soon` and the
backlog pause. A codec that frames or translates what it delivers
(websocket.py, irc.py) inherits these and writes only its own `deliver`.
"""

from __future__ import annotations

from collections.abc import Callable

from chatd.transport.endpoint import Endpoint


class ForwardingOutlet:
    __slots__ = ()  # a codec made for every client may have slots of its own (websocket.py)

    endpoint: Endpoint

    def close(self, reason: str, text: str = "") -> None:
        self.endpoint.close(reason, text)

    def set_deadline(self, when: float | None) -> None:
        self.endpoint.set_deadline(when)

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.endpoint.call_soon(callback)

    def pause_for_backlog(self) -> bool:
        return self.endpoint.pause_for_backlog()

    def resume_after_backlog(self) -> None:
        self.endpoint.resume_after_backlog()
