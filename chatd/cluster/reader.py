"""Reader: the shared log from a position on, in id order, as batches of entries.

`LogReader.batches()` is a plain iterator for one thread (the node's reader
thread later): it blocks in `XREAD BLOCK` on its own connection, yields each
batch of entries after the position, and moves the position to the batch's
last id. It knows nothing of chat: applying entries is the caller's.

It stops the iteration with an exception where continuing would be wrong:

* `LogTrimmed`: entries after the position are gone (the node was away longer
  than `cluster.log_max` entries): the node must be reseeded. Ids are
  contiguous in the log (every script takes its ids and appends them in one
  step), except after `raise_ids`, whose `raise` entry names the id before
  the gap; any other gap is a trim.
* `LogRewound`: Redis hands out ids at or below the position (it lost writes:
  no append-only file, or `appendfsync everysec` and a crash): the caller
  raises the ids above its position (`Calls.raise_ids`) and iterates again.

Redis going away is not an end: the reader logs it, waits with backoff and
reads again from its position on a new connection, after checking the log's
head there (rewound?). Nothing is skipped and nothing is read twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import structlog

from chatd.cluster.backoff import Backoff
from chatd.cluster.entry import Entry, decode
from chatd.cluster.errors import ClusterError, Interrupted, Unavailable
from chatd.cluster.link import Link
from chatd.cluster.scripts import ReplyError, pack

log = structlog.get_logger(__name__)


class LogTrimmed(ClusterError):
    def __init__(self, position: int, first: int) -> None:
        super().__init__(
            f"the log no longer has the entries after {position} (the next it has is {first}): reseed this node"
        )
        self.position = position
        self.first = first


class LogRewound(ClusterError):
    def __init__(self, position: int, head: int) -> None:
        super().__init__(f"Redis hands out ids from {head + 1}, at or below this node's position {position}")
        self.position = position
        self.head = head


class LogReader:
    def __init__(
        self,
        link: Link,
        log_key: str,
        ids_key: str,
        position: int,
        *,
        block_ms: int = 1000,
        count: int = 1000,
        backoff: Backoff | None = None,
    ) -> None:
        """`position`: the last id already applied (0: from the start). The
        link's read timeout must exceed `block_ms`, which bounds how long
        `stop()` takes."""
        self.position = position
        self._link = link
        self._log_key = log_key.encode()
        self._ids_key = ids_key.encode()
        self._block_ms = block_ms
        self._count = count
        self._backoff = backoff or Backoff()
        self._stopping = threading.Event()
        self.connected = False  # to Redis, as of the last attempt (health)

    def stop(self) -> None:
        """End `batches()` within `block_ms`; any thread."""
        self._stopping.set()

    def batches(self) -> Iterator[list[Entry]]:
        """Batches of entries after `position`, in id order, until `stop()`.

        Raises:
            LogTrimmed, LogRewound: see the module's docstring.
            EntryError: an entry of an unknown layout.
        """
        while not self._stopping.is_set():
            try:
                entries = self._read()
            except (Unavailable, Interrupted) as exc:
                self._lost(exc)
                continue
            if entries:
                self._check(entries)
                self.position = entries[-1].id
                yield entries

    def _read(self) -> list[Entry]:
        if not self._link.connected:
            self._link.connect()
            self.connected = True
            self._backoff.reset()
            log.info("cluster_reader_connected", position=self.position)
            self._check_head()
        command = pack(
            b"XREAD",
            b"COUNT",
            b"%d" % self._count,
            b"BLOCK",
            b"%d" % self._block_ms,
            b"STREAMS",
            self._log_key,
            b"0-%d" % self.position,
        )
        reply = self._link.execute([command], reconnect=False)[0]
        if reply is None:  # BLOCK timed out
            return []
        if isinstance(reply, ReplyError):
            raise ClusterError(f"XREAD refused: {reply.message}")
        assert isinstance(reply, list)
        ((_key, items),) = reply
        return [decode(stream_id, fields) for stream_id, fields in items]

    def _check_head(self) -> None:
        """On a new connection: Redis must not be behind this reader."""
        reply = self._link.execute([pack(b"GET", self._ids_key)], reconnect=False)[0]
        head = int(reply) if isinstance(reply, bytes) else 0
        if head < self.position:
            raise LogRewound(self.position, head)

    def _check(self, entries: list[Entry]) -> None:
        position = self.position
        for entry in entries:
            if entry.id != position + 1 and not (entry.kind == "raise" and int(entry.text) <= position):
                raise LogTrimmed(position, entry.id)
            position = entry.id

    def _lost(self, exc: ClusterError) -> None:
        if self.connected:
            log.warning("cluster_reader_disconnected", position=self.position, error=str(exc))
        self.connected = False
        self._link.close()
        self._stopping.wait(self._backoff.next())
