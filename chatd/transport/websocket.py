"""WebSocketCodec: the line protocol over a WebSocket (RFC 6455), after
http.py's `GET /ws` upgrade: one protocol line per text message each way.

Coming in, wsproto parses frames (masking, fragments, UTF-8, control
frames); each finished text message is one line for the session, with one
trailing `\\n` (or `\\r\\n`) allowed and none needed. What browsers send
(a line, one whole masked text frame per message) is read by
`read_text_frames` (wsframes.py) instead, which costs a tenth of wsproto's
~15 µs per message; at the first frame of any other kind the connection is wsproto's
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

Going out, the session's lines are framed by `TextFrames` (wsframes.py)
rather than by wsproto: server frames are not masked, so the frames of a
block of lines are the same bytes for every recipient, made once per block
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
from chatd.transport.forwarding import ForwardingOutlet
from chatd.transport.framing import TOO_LONG
from chatd.transport.lifecycle import Phase
from chatd.transport.wsframes import TextFrames, frame_end, frame_needs, read_text_frames

log = structlog.get_logger(__name__)

# The frames one text message may come in; more is closed with 1009 (docs/protocol.md,
# "WebSocket"). Browsers send one; a library that fragments uses a few.
MAX_FRAGMENTS: Final = 64


class WebSocketCodec(ForwardingOutlet):
    __slots__ = (
        "_close_reply",
        "_discarding",
        "_fragments",
        "_frames",
        "_message",
        "_partial",
        "_partial_needs",
        "_ws",
        "app",
        "connected_at",
        "endpoint",
        "peer",
    )

    exempt_bytes = 0  # a WebSocket reader that takes nothing is a slow consumer like any other

    def __init__(self, endpoint: Endpoint, frames: TextFrames, open_session: Callable[[Outlet], Application]) -> None:
        self.endpoint = endpoint
        self.peer = endpoint.peer
        self.connected_at = endpoint.connected_at
        self._frames = frames
        # wsproto's connection, made when it is first needed (`_wsproto`): from
        # then on every byte goes to it. Until then a client costs ~1.5 KB less.
        self._ws: Connection | None = None
        # The start of a text frame for read_text_frames, and the size it must
        # reach before it is worth reading again (the frame's end once its head
        # says it): a frame trickled a byte at a time costs O(bytes), as a
        # trickled line does in framing.py. None while no frame is in progress
        # (an empty bytearray is 56 bytes per idle client).
        self._partial: bytearray | None = None
        self._partial_needs = 0
        self._message: bytearray | None = None  # the text message being received, as UTF-8 (wsproto's path)
        self._fragments = 0  # the frames of that message so far
        self._discarding = False  # the rest of that message is dropped (too long, or over the rate)
        self._close_reply: CloseConnection | None = None  # when the client closed, or broke the protocol
        self.app = open_session(self)

    # -- the session's outlet (any thread) --------------------------------------------------

    def deliver(self, data: bytes, lines: int = 1, sender: Sender | None = None) -> None:
        self.endpoint.deliver(self._frames.frame(data), lines, sender)

    # -- the codec (the endpoint's thread) -------------------------------------------------

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        log.info("websocket_opened", **self.endpoint.context)
        self.app.on_open(reject, cert_nick)

    def on_data(self, data: bytes) -> None:
        lines: list[bytes | None] = []
        if self._ws is not None:
            self._receive(data, lines)
        else:
            if self._partial:
                self._partial += data
                if len(self._partial) < self._partial_needs:
                    return
                data = bytes(self._partial)
                self._partial = None
            limit = self.endpoint.host.limits.max_line_bytes
            payloads, taken, partial = read_text_frames(data, limit)
            for payload in payloads:
                line = payload[:-1] if payload.endswith(b"\n") else payload
                lines.append(TOO_LONG if len(line) >= limit else line)  # max_line_bytes counts a newline
            if partial:
                self._partial = bytearray(memoryview(data)[taken:])
                self._partial_needs = frame_needs(self._partial)
            elif taken < len(data):
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
        ws = self._wsproto()
        ws.receive_data(data)
        endpoint = self.endpoint
        for event in ws.events():
            if isinstance(event, TextMessage):
                self._take(event, lines)
            elif isinstance(event, Ping):
                if self.app.charge(1):
                    endpoint.deliver(ws.send(event.response()), 0)
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
        if self._message is None:
            self._message = bytearray()
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
        remote = self._wsproto().state is ConnectionState.REMOTE_CLOSING
        self._close_reply = event.response() if remote else CloseConnection(event.code)
        log.info(
            "websocket_closed",
            **self.endpoint.context,
            code=int(event.code),
            reason=event.reason or None,
            by_client=remote,
        )
        self.endpoint.begin_close("connection_lost")

    def _wsproto(self) -> Connection:
        if self._ws is None:
            self._ws = Connection(SERVER)
        return self._ws

    def on_timer(self, now: float) -> None:
        self.app.on_timer(now)

    def on_close(self, reason: str, text: str) -> bytes:
        """The session's `BYE`, then a close frame; only the close frame if the client
        closed first (or broke the protocol), as RFC 6455 5.5.1 asks."""
        bye = self.app.on_close(reason, text)
        ws = self._wsproto()  # a new one is OPEN, as the client's connection is
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
