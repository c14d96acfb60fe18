"""WebSocketCodec: the line protocol over a WebSocket (RFC 6455), after
http.py's `GET /ws` upgrade: one protocol line per text message each way.

Coming in, wsproto parses frames (masking, fragments, UTF-8, control
frames); each finished text message is one line for the session, with one
trailing `\\n` (or `\\r\\n`) allowed and none needed. What browsers send
(a line, one whole masked text frame per message) is read by
`read_text_frames` instead, which costs a tenth of wsproto's ~15 µs per
message; at the first frame of any other kind the connection is wsproto's
for good, from that frame boundary on. A message longer than
`limits.max_line_bytes` becomes `TOO_LONG` (the session answers
`ERR line_too_long`, a strike) and is dropped, as a long line is; a message
with a `\\n` inside is one line that contains a control character (the
session answers `ERR bad_encoding`). A binary message ends the connection
(close code 1003), as does anything wsproto finds malformed (1002, a length
in more bytes than it needs included: `read_text_frames` leaves such a
frame to wsproto).

Frames that carry no line are not free: each ping, pong and fragment but a
message's last takes one line's worth of the session's flood-control budget
(`Application.charge`), so a client that floods them is told
`ERR rate_limited` and then `BYE flood` as a line client would be. A
message in more than `MAX_FRAGMENTS` frames is closed with 1009; empty
fragments are not stored, and what is stored is bounded by
`limits.max_line_bytes`.

Going out, the session's lines are framed here rather than by wsproto:
server frames are not masked, so the frames of a block of lines are the
same bytes for every recipient, and `TextFrames` makes them once per block
for a whole room (docs/architecture.md, "The web client").

This codec is also the session's outlet: it frames what the session
delivers and hands it to the endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import structlog
from wsproto.connection import SERVER, Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason

from chatd.outlet import Outlet, Sender
from chatd.transport.codec import Application
from chatd.transport.endpoint import Endpoint
from chatd.transport.framing import TOO_LONG
from chatd.transport.lifecycle import Phase

log = structlog.get_logger(__name__)

_TEXT: Final = 0x81  # FIN and opcode 1: a whole text message in one frame
# The frames one text message may come in; more is closed with 1009 (docs/protocol.md,
# "WebSocket"). Browsers send one; a library that fragments uses a few.
MAX_FRAGMENTS: Final = 64


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


class WebSocketCodec:
    exempt_bytes = 0  # a WebSocket reader that takes nothing is a slow consumer like any other

    def __init__(self, endpoint: Endpoint, frames: TextFrames, open_session: Callable[[Outlet], Application]) -> None:
        self.endpoint = endpoint
        self.peer = endpoint.peer
        self.connected_at = endpoint.connected_at
        self._frames = frames
        self._ws = Connection(SERVER)
        self._wsproto = False  # every byte goes to wsproto from now on
        self._partial = b""  # the start of a text frame for read_text_frames
        self._message = bytearray()  # the text message being received, as UTF-8
        self._fragments = 0  # the frames of that message so far
        self._discarding = False  # the rest of that message is dropped (too long, or over the rate)
        self._close_reply: CloseConnection | None = None  # when the client closed, or broke the protocol
        self.app = open_session(self)

    # -- the session's outlet (any thread) --------------------------------------------------

    def deliver(self, data: bytes, lines: int = 1, sender: Sender | None = None) -> None:
        self.endpoint.deliver(self._frames.frame(data), lines, sender)

    def close(self, reason: str, text: str = "") -> None:
        self.endpoint.close(reason, text)

    def set_deadline(self, when: float | None) -> None:
        self.endpoint.set_deadline(when)

    def pause_for_backlog(self) -> bool:
        return self.endpoint.pause_for_backlog()

    def resume_after_backlog(self) -> None:
        self.endpoint.resume_after_backlog()

    # -- the codec (the endpoint's thread) -------------------------------------------------

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        log.info("websocket_opened", **self.endpoint.context)
        self.app.on_open(reject, cert_nick)

    def on_data(self, data: bytes) -> None:
        lines: list[bytes | None] = []
        if self._wsproto:
            self._receive(data, lines)
        else:
            if self._partial:
                data, self._partial = self._partial + data, b""
            limit = self.endpoint.host.limits.max_line_bytes
            payloads, taken, partial = read_text_frames(data, limit)
            for payload in payloads:
                line = payload[:-1] if payload.endswith(b"\n") else payload
                lines.append(TOO_LONG if len(line) >= limit else line)  # max_line_bytes counts a newline
            if partial:
                self._partial = data[taken:]
            elif taken < len(data):
                self._wsproto = True
                self._receive(data[taken:], lines)
        if lines and self.endpoint.is_open():
            self.endpoint.worker.stats.lines_in += len(lines)
            self.app.on_lines(lines)

    def _receive(self, data: bytes, lines: list[bytes | None]) -> None:
        """wsproto's way, for anything but whole text frames.

        Every frame that carries no line (a ping, a pong, a fragment but the
        last) is charged to the session's flood-control budget as a line would
        be (`Application.charge`): a ping that finds none is not answered, a
        fragment that finds none drops its message.
        """
        self._ws.receive_data(data)
        endpoint = self.endpoint
        for event in self._ws.events():
            if isinstance(event, TextMessage):
                self._take(event, lines)
            elif isinstance(event, Ping):
                if self.app.charge(1):
                    endpoint.deliver(self._ws.send(event.response()), 0)
            elif isinstance(event, Pong):
                self.app.charge(1)  # chatd sends no pings: a pong is the client's doing
            elif isinstance(event, CloseConnection):
                self._closed_by_client(event)
            elif isinstance(event, BytesMessage):
                self._closed_by_client(CloseConnection(CloseReason.UNSUPPORTED_DATA, "text messages only"))
            if endpoint.state is not Phase.OPEN:
                break  # closing (flood, too many fragments, a close frame): the rest is not read

    def _take(self, event: TextMessage, lines: list[bytes | None]) -> None:
        """Add a piece of a text message; once finished, its line goes to `lines`,
        or TOO_LONG (once, as soon as it goes over the limit)."""
        finished = event.message_finished
        if event.frame_finished:
            self._fragments += 1
            if self._fragments > MAX_FRAGMENTS:
                self._closed_by_client(
                    CloseConnection(CloseReason.MESSAGE_TOO_BIG, f"more than {MAX_FRAGMENTS} frames in a message")
                )
                return
            if not finished and not self.app.charge(1) and not self._discarding:
                self._message.clear()
                self._discarding = True  # the session said why (ERR rate_limited)
        if not self._discarding and event.data:  # an empty fragment adds nothing, not even an entry
            self._message += event.data.encode()
            limit = self.endpoint.host.limits.max_line_bytes
            if len(self._message) > limit:  # too long even if it ends with a newline
                lines.append(TOO_LONG)
                self._message.clear()
                self._discarding = True
        if finished:
            if not self._discarding:
                line = bytes(self._message)
                if line.endswith(b"\n"):
                    line = line[:-1]
                # As for a line: max_line_bytes counts its newline.
                lines.append(TOO_LONG if len(line) >= self.endpoint.host.limits.max_line_bytes else line)
            self._message.clear()
            self._fragments, self._discarding = 0, False

    def _closed_by_client(self, event: CloseConnection) -> None:
        """The client closed, sent what chatd does not take, or broke the protocol
        (wsproto reports that as a close with the code to answer)."""
        remote = self._ws.state is ConnectionState.REMOTE_CLOSING
        self._close_reply = event.response() if remote else CloseConnection(event.code)
        log.info(
            "websocket_closed",
            **self.endpoint.context,
            code=int(event.code),
            reason=event.reason or None,
            by_client=remote,
        )
        self.endpoint.begin_close("connection_lost")

    def on_timer(self, now: float) -> None:
        self.app.on_timer(now)

    def on_close(self, reason: str, text: str) -> bytes:
        """The session's `BYE`, then a close frame; only the close frame if the client
        closed first (or broke the protocol), as RFC 6455 5.5.1 asks."""
        bye = self.app.on_close(reason, text)
        ws = self._ws
        if ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return b""
        if self._close_reply is not None:
            return ws.send(self._close_reply)
        code = CloseReason.GOING_AWAY if reason == "shutdown" else CloseReason.NORMAL_CLOSURE
        return self._frames.frame(bye) + ws.send(CloseConnection(code))

    def limits_changed(self) -> None:
        self.app.limits_changed()

    def cut(self, data: bytes, limit: int) -> int:
        """The last frame boundary within `limit`, or the end of the first
        frame if that is longer: a frame is never cut in two."""
        at = frame_end(data, 0)
        while at < len(data):
            end = frame_end(data, at)
            if end > limit:
                break
            at = end
        return at

    def rest_of_unit(self, head: bytes) -> bytes:
        return b""  # `cut` never leaves a frame unfinished

    def drained(self) -> None:
        pass  # never asked for
