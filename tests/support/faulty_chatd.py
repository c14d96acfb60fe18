"""chatd with one fault injected, for the tests of crash containment.

    python -m tests.support.faulty_chatd POINT TRIGGER --config FILE

runs chatd's own `main()` with one bug planted at POINT, which fires once,
when the file TRIGGER exists (the thread that fires removes it):

- `worker`: an I/O worker's loop raises outside any connection's handling;
- `start`: starting a newly accepted connection (its endpoint) raises;
- `call`: a callback with no connection, queued on a worker, raises;
- `message`: formatting the next room message or DM raises, deep in the
  message path, where the frames below it hold the message's text.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from chatd import cli
from chatd.core import chat
from chatd.transport.endpoint import Endpoint
from chatd.transport.worker import Worker


class InjectedFault(RuntimeError):
    pass


def _fires(trigger: str) -> bool:
    try:
        os.remove(trigger)
    except FileNotFoundError:
        return False
    return True


def _plant(point: str, trigger: str) -> None:
    if point == "worker":
        turn = Worker._turn

        def faulty_turn(self: Worker) -> None:
            if _fires(trigger):
                raise InjectedFault("worker loop")
            turn(self)

        Worker._turn = faulty_turn  # type: ignore[method-assign]
    elif point == "start":
        start = Endpoint.start

        def faulty_start(self: Endpoint) -> None:
            if _fires(trigger):
                raise InjectedFault("connection start")
            start(self)

        Endpoint.start = faulty_start  # type: ignore[method-assign]
    elif point == "call":
        turn = Worker._turn

        def turn_with_bad_call(self: Worker) -> None:
            if _fires(trigger):
                self.call_soon(_raise)
            turn(self)

        Worker._turn = turn_with_bad_call  # type: ignore[method-assign]
    elif point == "message":
        event_line = chat.event_line

        def faulty_event_line(*args: Any, **kwargs: Any) -> bytes:
            if _fires(trigger):
                raise InjectedFault("message path")
            return event_line(*args, **kwargs)

        chat.event_line = faulty_event_line  # type: ignore[assignment]
    else:
        raise SystemExit(f"unknown fault point {point!r}")


def _raise() -> None:
    raise InjectedFault("callback")


def main(argv: list[str]) -> int:
    point, trigger, *rest = argv
    _plant(point, trigger)
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
