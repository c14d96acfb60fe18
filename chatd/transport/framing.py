"""Line framing: a byte stream cut into bounded lines, without I/O.

Linear in the bytes fed, however they are cut (h11's `_receivebuffer.py` is
the model): what arrives is split where it arrives, and only the start of a
line whose newline has not come yet is kept, in a bytearray that grows at
its end and is never searched again. A client that sends its line a byte
at a time (one TLS record each) costs what the line costs; copying the
partial line on each read made that O(n²), 0.78 s of CPU for one line at
`max_line_bytes: 65536`.
"""

from __future__ import annotations

from typing import Final

TOO_LONG: Final = None  # handed over in place of an oversized line (chatd.core.protocol.TOO_LONG)


class LineBuffer:
    """Splits a byte stream into lines of at most `max_line_bytes` (newline included).

    `feed()` returns complete lines without their `\\n`, or `TOO_LONG` once for
    each oversized line; the rest of that line is discarded up to the next
    newline, so the client is told at once and the connection stays usable.
    At most `max_line_bytes` - 1 bytes are ever kept.
    """

    __slots__ = ("_discarding", "_partial", "max_line_bytes")

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        # The line in progress, without a newline; None between lines (an empty
        # bytearray is 56 bytes per idle client).
        self._partial: bytearray | None = None
        self._discarding = False  # the line in progress was refused: drop it to its newline

    def feed(self, data: bytes) -> list[bytes | None]:
        if self._partial or self._discarding:
            end = data.find(b"\n")  # in the new bytes only: the partial line has no newline
            if end < 0:
                return self._continue(data)
            if self._discarding:
                self._discarding = False  # the tail of a line already refused
                data = data[end + 1 :]
            elif self._partial is not None:
                data = b"".join((self._partial, data))  # each kept byte is copied once, now
                self._partial = None
        # NOTE: this is on the path of every line: a split and one pass over
        # the lines (a list comprehension costs more here, in Python 3.11).
        lines: list[bytes | None] = []
        parts = data.split(b"\n")
        tail = parts.pop()
        limit = self.max_line_bytes
        for part in parts:
            lines.append(part if len(part) < limit else TOO_LONG)
        if tail:
            if len(tail) >= limit:
                lines.append(TOO_LONG)
                self._discarding = True
            else:  # no line was in progress: it was joined above, or refused
                self._partial = bytearray(tail)
        return lines

    def _continue(self, data: bytes) -> list[bytes | None]:
        """More of the line in progress, still without its newline."""
        if self._discarding or self._partial is None:
            return []
        self._partial += data
        if len(self._partial) < self.max_line_bytes:
            return []
        self._partial = None
        self._discarding = True
        return [TOO_LONG]
