"""IOStats: the counters of one worker's connections, for the metrics and
`chatctl status` (apart from worker.py, which holds one per worker, so that
the worker's loop reads in one sitting)."""

from __future__ import annotations


class IOStats:
    """Counters of one worker's connections, for the metrics and `chatctl status`.

    # NOTE: only the worker's own thread writes them, with plain increments,
    # and per read or per write rather than per line where that is exact: no
    # lock and no metrics library on the message path. The collector reads
    # them from another thread when scraped, which the GIL makes safe enough
    # for counters (a read may miss the increment in flight, never corrupt).
    """

    __slots__ = ("bytes_in", "bytes_out", "disconnects", "lines_in", "slow_consumers")

    def __init__(self) -> None:
        self.lines_in = 0  # lines cut from what clients sent, commands and nicknames too
        self.bytes_in = 0  # plaintext read from clients (after TLS)
        self.bytes_out = 0  # plaintext handed to TLS for clients
        self.slow_consumers = 0
        self.disconnects: dict[str, int] = {}  # by the `disconnect` event's reason

    def disconnected(self, reason: str) -> None:
        self.disconnects[reason] = self.disconnects.get(reason, 0) + 1
