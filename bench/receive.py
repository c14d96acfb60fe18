"""What a client does with the bytes it receives, by phase and role: the
`Receiving` mixin of engine.Conn.

Each `_feed_*` takes the shared decrypt buffer and a length, and must not keep
a reference to the buffer. From cheapest to dearest per byte:

- `_feed_count`: plain receivers; `bytearray.count(b"\\n")`, nothing else.
- `_feed_sender`: senders with a ping window; counts lines and `PONG `s.
- `_feed_latency`: sample receivers; a C regex pulls every `t=` stamp.
- `_feed_parse`: validators (and every client in slow-consumer runs and with
  the seed): format, per-sender order, own-echo window markers.
- `_parse_lines`: the slow path for anything that is not a benchmark line
  (PONG, JOIN/LEAVE, corrupted lines).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.dialects import MSG_RE, N_OFF, S_OFF, SYNC_TEXT, T_OFF, RegistrationFailed

perf_ns = time.perf_counter_ns


class Receiving:
    """Mixed into engine.Conn, whose __init__ sets the engine and the
    registration and calls `_init_receiving` for the run's counters, and
    which provides write(), _fail() and (sending.py) pump()."""

    def _init_receiving(self, sample: bool, sender_id: int) -> None:
        """The run phase's counters, set once by Conn's __init__."""
        self.is_sync_sender = False
        self.synced = False
        self.count = 0  # benchmark lines received
        self.other = 0  # other lines received (PONG, JOIN, LEAVE, ...)
        self.other_examples: list[bytes] = []
        self.corrupt = 0
        self.order_errors = 0
        self.expected = 0
        self.done = False
        self.latencies: list[int] | None = [] if sample else None
        self.last_seq: dict[bytes, int] = {}  # sender (4 digits) -> last sequence seen
        self.own_id = b"%04d" % sender_id if sender_id >= 0 else b"-"
        self.validate = sample
        self.tail = b""  # last bytes of the previous read (PONG search across reads)

    def _ready(self) -> None:
        """TLS is up (and with a WebSocket, the upgrade answered): count the
        handshake, then register, or wait for register() (`hold`)."""
        self.t_handshake = perf_ns()
        self.engine.handshaken += 1
        self.engine.on_handshake(self)
        if self.hold:
            self.feed = self._feed_hold
        else:
            hello = self.registration.start()
            if hello:
                self.write(hello)

    def _feed_hold(self, buf: bytearray | bytes, n: int) -> None:
        """Handshake done, registration not started yet (capacity, phase one)."""
        self.held += bytes(buf[:n])

    def register(self) -> None:
        """Start the registration held back by `hold`."""
        self.hold = False
        self.feed = self._feed_register
        hello = self.registration.start()
        if hello:
            self.write(hello)
        if self.held and self.state == "open":
            held, self.held = bytes(self.held), bytearray()
            self.feed(held, len(held))

    def _feed_register(self, buf: bytearray | bytes, n: int) -> None:
        try:
            reply = self.registration.feed(bytes(buf[:n]))
        except RegistrationFailed as exc:
            self._fail(f"register: {exc}")
            return
        if reply:
            self.write(reply)
        if self.registration.done:
            self.t_registered = perf_ns()
            self.engine.registered += 1
            self.feed = self._feed_setup
            self.engine.on_registered(self)
            leftover = self.registration.leftover
            if leftover and self.state == "open":
                self.feed(leftover, len(leftover))

    def _feed_setup(self, buf: bytearray | bytes, n: int) -> None:
        """Before the barrier: skip JOIN lines and the like until SYNC."""
        data = self.partial + bytes(buf[:n])
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for i, line in enumerate(lines):
            if SYNC_TEXT in line or (self.is_sync_sender and self.engine.dialect.is_pong(line)):
                self.synced = True
                self.engine.synced += 1
                self.feed = self._run_feed()
                rest = b"".join(rest_line + b"\n" for rest_line in lines[i + 1 :]) + self.partial
                self.partial = b""
                if rest:
                    self.feed(rest, len(rest))
                return

    def _run_feed(self) -> Callable[[bytearray | bytes, int], None]:
        if self.validate or self.parse:
            return self._feed_parse
        if self.sample:
            return self._feed_latency
        if self.sender_id >= 0 and self.engine.dialect.window == "ping":
            return self._feed_sender
        if self.sender_id >= 0:
            return self._feed_parse  # echo window: must find its own lines
        return self._feed_count

    def _feed_sender(self, buf: bytearray | bytes, n: int) -> None:
        """A sender in a ping window: count lines and PONGs without splitting lines."""
        lines = buf.count(b"\n", 0, n)
        pongs = buf.count(b"PONG ", 0, n)
        if n >= 4:
            # a "PONG " cut in two by the previous read
            pongs += (self.tail + bytes(buf[:4])).count(b"PONG ")
            self.tail = bytes(buf[n - 4 : n])
        else:
            joined = self.tail + bytes(buf[:n])
            pongs += joined.count(b"PONG ") - self.tail.count(b"PONG ")
            self.tail = joined[-4:]
        if pongs:
            self._acknowledge(pongs)
        msgs = lines - pongs
        watch = self.engine.watch
        if watch is not None and buf.find(watch, 0, n) >= 0:
            # Lines about the non-reader (its LEAVE, IRC's QUIT) are not messages.
            about = _lines_containing(buf, n, watch)
            msgs -= about
            self.engine.watch_hits += about
        if msgs:
            self.count += msgs
            self.engine.received_total += msgs
            self._check_done()
        if pongs and self.sent < self.to_send:
            self.pump()

    def _acknowledge(self, marks: int) -> None:
        now = perf_ns()
        rtts = self.engine.mark_rtts
        for _ in range(min(marks, len(self.marks))):
            rtts.append(now - self.marks.popleft()[1])
        self._check_done()

    def _feed_count(self, buf: bytearray | bytes, n: int) -> None:
        c = buf.count(b"\n", 0, n)
        if c:
            self.count += c
            engine = self.engine
            engine.received_total += c
            self._check_done()

    def _whole_lines(self, buf: bytearray | bytes, n: int) -> tuple[bytes, int]:
        """This read after the previous one's unfinished line; data[:end] is whole
        lines, and what follows is kept for the next read."""
        data = self.partial + bytes(buf[:n])
        end = data.rfind(b"\n") + 1
        self.partial = data[end:]
        return data, end

    def _feed_latency(self, buf: bytearray | bytes, n: int) -> None:
        """A sample receiver: the latency of every line (format and order are the
        validators' job); anything but benchmark lines goes the slow path."""
        data, end = self._whole_lines(buf, n)
        if not end:
            return
        now = perf_ns()
        stamps = self.engine.dialect.stamp_re.findall(data, 0, end)
        if len(stamps) != data.count(b"\n", 0, end):
            self._parse_lines(data[:end].split(b"\n")[:-1], now)
            return
        self.latencies.extend([now - int(t) for t in stamps])  # type: ignore[union-attr]
        self._counted(len(stamps), -1, now)

    def _feed_parse(self, buf: bytearray | bytes, n: int) -> None:
        """Split lines: latency from `t=`, per-sender order, format checks, markers."""
        data, end = self._whole_lines(buf, n)
        if not end:
            return
        now = perf_ns()
        # Fast path, all in C but the loop below: every line is a benchmark line.
        matches = self.engine.dialect.line_re.findall(data, 0, end)
        if len(matches) != data.count(b"\n", 0, end):
            self._parse_lines(data[:end].split(b"\n")[:-1], now)
            return
        last = self.last_seq
        errors = 0
        own = self.own_id
        own_seq = -1
        if self.latencies is not None:
            add = self.latencies.append
            for t, s, q in matches:
                add(now - int(t))
                seq = int(q)
                if last.get(s, -1) + 1 != seq:
                    errors += 1
                last[s] = seq
                if s == own:
                    own_seq = seq
        else:
            for _, s, q in matches:
                seq = int(q)
                if last.get(s, -1) + 1 != seq:
                    errors += 1
                last[s] = seq
                if s == own:
                    own_seq = seq
        self.order_errors += errors
        self._counted(len(matches), own_seq, now)

    def _parse_lines(self, lines: list[bytes], now: int) -> None:
        """Slow path, line by line: PONGs, JOIN/LEAVE and the like, corrupted lines."""
        dialect = self.engine.dialect
        msgs = 0
        own_seq = -1
        latencies = self.latencies
        for line in lines:
            i = line.find(b"t=")
            if i < 0:
                if dialect.is_pong(line):
                    self._acknowledge(1)
                    continue
                self.other += 1
                if len(self.other_examples) < 5:
                    self.other_examples.append(line[:120])
                if self.validate and dialect.body_at_start:
                    self.corrupt += 1
                watch = self.engine.watch
                if watch is not None and watch in line:
                    self.engine.watch_hits += 1
                continue
            if not MSG_RE.fullmatch(line, i) or (dialect.body_at_start and i):
                self.corrupt += 1
                continue
            s = line[i + S_OFF : i + S_OFF + 4]
            seq = int(line[i + N_OFF : i + N_OFF + 7])
            if self.last_seq.get(s, -1) + 1 != seq:
                self.order_errors += 1
            self.last_seq[s] = seq
            if s == self.own_id:
                own_seq = seq
            msgs += 1
            if latencies is not None:
                latencies.append(now - int(line[i + T_OFF : i + T_OFF + 19]))
        self._counted(msgs, own_seq, now)

    def _counted(self, msgs: int, own_seq: int, now: int) -> None:
        if own_seq >= 0 and self.engine.dialect.window == "echo":
            while self.marks and self.marks[0][0] <= own_seq:
                self.engine.mark_rtts.append(now - self.marks.popleft()[1])
        if msgs:
            self.count += msgs
            self.engine.received_total += msgs
            self._check_done()
        if self.sender_id >= 0 and self.sent < self.to_send:
            self.pump()

    def _check_done(self) -> None:
        """Finished once every line it expects is in and, a sender, once every
        batch it sent is acknowledged: the last PONG can come after the last
        line, and the run counts each batch's round trip."""
        if not self.done and self.count >= self.expected and not self.marks:
            self._finish()

    def _finish(self) -> None:
        self.done = True
        engine = self.engine
        engine.finished += 1
        if engine.finished >= engine.finishers:
            engine.t_all_finished = perf_ns()


def _lines_containing(buf: bytearray | bytes, n: int, needle: bytes) -> int:
    """How many lines of buf[:n] contain `needle` (IRC's QUIT names a nick twice)."""
    count, at = 0, buf.find(needle, 0, n)
    while at >= 0:
        count += 1
        end = buf.find(b"\n", at, n)
        if end < 0:
            break
        at = buf.find(needle, end, n)
    return count
