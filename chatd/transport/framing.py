"""Line framing: a byte stream cut into bounded lines, without I/O."""

from __future__ import annotations

from typing import Final

TOO_LONG: Final = None  # handed over in place of an oversized line (chatd.core.protocol.TOO_LONG)


class LineBuffer:
    """Splits a byte stream into lines of at most `max_line_bytes` (newline included).

    `feed()` returns complete lines without their `\\n`, or `TOO_LONG` once for
    each oversized line; the rest of that line is discarded up to the next
    newline, so the client is told at once and the connection stays usable.
    """

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._partial = b""
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | None]:
        if self._partial:
            data = self._partial + data
        parts = data.split(b"\n")
        self._partial = parts.pop()
        lines: list[bytes | None] = []
        limit = self.max_line_bytes
        for part in parts:
            if self._discarding:
                self._discarding = False  # this part is the tail of a line already refused
            elif len(part) >= limit:
                lines.append(TOO_LONG)
            else:
                lines.append(part)
        if len(self._partial) >= limit:
            if not self._discarding:
                lines.append(TOO_LONG)
                self._discarding = True
            self._partial = b""
        return lines
