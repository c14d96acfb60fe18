"""WebSocket frames without a connection (RFC 6455, section 5): the server's
unmasked text frames made once per block of lines, where a write may cut
them, and the whole masked text frames browsers send, read without wsproto.

wsproto keeps frame_protocol.py apart from connection.py in the same way:
what a frame is lives here, what a WebSocket connection does with frames
(the close handshake, fragments, pings, flood charges) in websocket.py.
No state here but `TextFrames`' one-block cache, no I/O.
"""

from __future__ import annotations

from typing import Final

_TEXT: Final = 0x81  # FIN and opcode 1: a whole text message in one frame


def encode_text_frames(data: bytes) -> bytes:
    """One unmasked text frame per `\\n`-terminated line of `data`, without the `\\n`."""
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()  # what followed the last newline: nothing
    parts = []
    for line in lines:
        size = len(line)
        if size < 126:
            parts.append(bytes((_TEXT, size)))
        elif size < 65536:
            parts.append(b"\x81\x7e" + size.to_bytes(2, "big"))
        else:
            parts.append(b"\x81\x7f" + size.to_bytes(8, "big"))
        parts.append(line)
    return b"".join(parts)


def frame_end(data: bytes, start: int) -> int:
    """Where the unmasked frame that starts at `start` ends."""
    size = data[start + 1] & 0x7F
    if size == 126:
        return start + 4 + int.from_bytes(data[start + 2 : start + 4], "big")
    if size == 127:
        return start + 10 + int.from_bytes(data[start + 2 : start + 10], "big")
    return start + 2 + size


def frame_needs(data: bytes | bytearray) -> int:
    """How long the client's (masked) frame at the start of `data` is, as far
    as what has come of its head tells: the whole frame once its length is
    there, else the head up to where the length ends."""
    if len(data) < 2:
        return 2
    size = data[1] & 0x7F
    if size == 126:
        return 4 if len(data) < 4 else 8 + int.from_bytes(data[2:4], "big")
    if size == 127:
        return 10 if len(data) < 10 else 14 + int.from_bytes(data[2:10], "big")
    return 6 + size


def read_text_frames(data: bytes, limit: int) -> tuple[list[bytes], int, bool]:
    """The whole, unfragmented, masked text frames of at most `limit` bytes of
    valid UTF-8 at the start of `data`, unmasked.

    Returns:
        Their payloads; how many bytes they took; and whether what follows is
        the start of such a frame, not all there yet (else it is another kind
        of frame, for wsproto, or nothing).
    """
    payloads: list[bytes] = []
    at, end = 0, len(data)
    while at < end:
        if data[at] != _TEXT or at + 2 > end:
            return payloads, at, data[at] == _TEXT
        size = data[at + 1]
        if size < 0x80:
            break  # unmasked: a protocol error wsproto will report
        size &= 0x7F
        head = 6
        if size == 126:
            if at + 4 > end:
                return payloads, at, True
            size, head = int.from_bytes(data[at + 2 : at + 4], "big"), 8
            if size < 126:
                break  # a length in 2 bytes that fits in 7 bits: wsproto closes with 1002
        elif size == 127:
            break  # a 64-bit length is never a line
        if size > limit:
            break  # wsproto's path drops it in pieces
        stop = at + head + size
        if stop > end:
            return payloads, at, True
        payload = data[at + head : stop]
        if size:
            key = (data[at + head - 4 : at + head] * (size // 4 + 1))[:size]
            payload = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                break  # wsproto closes with 1007
        payloads.append(payload)
        at = stop
    return payloads, at, False


class TextFrames:
    """Frames for blocks of lines, with the last block's kept: a room's members
    are all delivered the same `bytes` object, one after the other.

    Any thread may call `frame`. The cache is one tuple, read and replaced
    whole (atomic under the GIL): two threads framing at once at worst miss.
    """

    def __init__(self) -> None:
        self._last: tuple[bytes, bytes] = (b"", b"")

    def frame(self, data: bytes) -> bytes:
        last = self._last
        if last[0] is data:
            return last[1]
        framed = encode_text_frames(data)
        self._last = (data, framed)
        return framed
