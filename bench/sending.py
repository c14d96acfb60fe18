"""What a client sends in the measured phase, and what the run stops
waiting for when a client is gone: the `Sending` mixin of engine.Conn.

A sender writes its benchmark lines in batches while its window (the
marks not yet acknowledged, and the engine's lag limit) allows: `pump`, once
per batch, never per received line. What a client does with what it
receives is in receive.py; the TLS and socket side, `write` and `_fail`,
in engine.py; what the lines look like, in dialects.py.
"""

from __future__ import annotations

import collections
import time

perf_ns = time.perf_counter_ns


class Sending:
    """Mixed into engine.Conn, which calls `_init_sending` from its __init__
    and provides the engine, the counters of receive.py, write(), _check_done()
    and _finish()."""

    def _init_sending(self) -> None:
        self.to_send = 0
        self.sent = 0
        self.batch = 1
        self.max_marks = 1
        self.marks: collections.deque[tuple[int, int]] = collections.deque()  # (last seq, sent at)
        self.pings = 0
        self.stalls = 0

    def pump(self) -> None:
        """Send the next batches of benchmark messages while the window allows."""
        engine = self.engine
        dialect = engine.dialect
        while self.sent < self.to_send and len(self.marks) < self.max_marks:
            if not engine.lag_ok():
                engine.blocked.add(self)
                return
            k = min(self.batch, self.to_send - self.sent)
            t = perf_ns()
            first = self.sent
            pad, prefix = engine.pad, self.prefix
            parts = [dialect.message(t, self.sender_id, seq, pad, prefix) for seq in range(first, first + k)]
            if dialect.window == "ping":
                parts.append(dialect.ping(self.pings))
                self.pings += 1
            self.marks.append((first + k - 1, perf_ns()))
            self.sent += k
            engine.sent_msgs += k
            engine.sent_by_group[self.group] += k
            engine.expected_sent += k * engine.fanouts[self.group]
            if engine.records == "packed":
                self.write(b"".join(parts))
            else:
                # One write, hence one TLS record, and one send() per line, as an
                # interactive client sends them: any coalescing is the server's.
                for part in parts:
                    self.write(part)
                    if self.state != "open":
                        return
            if self.state != "open":
                return

    def check_stall(self, limit: float) -> None:
        """Echo windows (seed): a marker that never comes back is given up after `limit` s."""
        if self.marks and perf_ns() - self.marks[0][1] > limit * 1e9:
            self.marks.popleft()
            self.stalls += 1
            self._check_done()
            self.pump()

    def _forget_unsent(self) -> None:
        """A sender is gone: the others stop waiting for what it never sent."""
        engine = self.engine
        unsent = self.to_send - self.sent
        engine.failed_senders += 1
        engine.unsent += unsent
        self.to_send = self.sent
        self.marks.clear()
        for reader in engine.readers:
            if reader is not self and not reader.done and reader.group == self.group:
                reader.expected -= unsent
                reader._check_done()

    def _gone(self) -> None:
        """A registered client failed: the run goes on without it."""
        engine = self.engine
        if self.sent < self.to_send:
            self._forget_unsent()
        if not self.done and self.expected:
            # Dropped by the server (slow_consumer, say): the run goes on without
            # it, and what it will never receive no longer counts as lag.
            engine.failed_receivers += 1
            engine.fanouts[self.group] -= 1
            engine.expected_sent -= max(
                0, engine.sent_by_group[self.group] - self.count - (0 if engine.dialect.echo else self.sent)
            )
            self._finish()
