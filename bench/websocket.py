"""The load generator's WebSocket layer, between a TLS client (engine.Conn)
and its dialect: the upgrade (`GET /ws`, after a TLS handshake that
negotiated ALPN `http/1.1`), lines sent as masked text messages, and server
messages turned back into `\\n`-terminated lines, so that registration,
counting and parsing (dialects.py, receive.py) stay what they are for line
clients.

wsproto makes the upgrade request and checks the answer, and frames and
masks what a client sends (few lines: senders are paced by their window).
What the server sends is decoded here instead, because every receiver
reads every line of the run: a server's text frames are unmasked and
whole (chatd sends one per line), so turning them into lines is a header
walk, where wsproto's per-event objects would make the generator, not
the server, the bottleneck.
"""

from __future__ import annotations

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Pong, RejectConnection, Request, TextMessage

_TEXT, _CLOSE, _PING = 0x81, 0x88, 0x89


class WebSocketFailed(Exception):
    """The upgrade was refused, or the server sent a frame a chatd never sends."""


class ClientWebSocket:
    def __init__(self, host: str, path: str = "/ws") -> None:
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._request = self._ws.send(Request(host=host, target=path))
        self.open = False
        self._head = b""
        self._rest = b""  # a frame not all received yet
        self.closed = False

    def upgrade_request(self) -> bytes:
        return self._request

    def take_upgrade(self, data: bytes) -> bytes | None:
        """Feed the answer to the upgrade; once it is whole, the bytes that
        followed it (the first frames), else None.

        Raises:
            WebSocketFailed: the server refused the upgrade.
        """
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > 65536:
                raise WebSocketFailed("no end to the upgrade's answer")
            return None
        head, rest = self._head[: end + 4], self._head[end + 4 :]
        self._head = b""
        self._ws.receive_data(head)  # the head only: the frames after it are ours to decode
        for event in self._ws.events():
            if isinstance(event, AcceptConnection):
                self.open = True
                return rest
            if isinstance(event, RejectConnection):
                raise WebSocketFailed(f"upgrade refused: HTTP {event.status_code}")
        raise WebSocketFailed(f"not an answer to the upgrade: {head[:80]!r}")

    def frame(self, data: bytes) -> bytes:
        """Each `\\n`-terminated line of `data` as one masked text message."""
        send = self._ws.send
        return b"".join(send(TextMessage(line.decode())) for line in data.split(b"\n")[:-1])

    def lines(self, data: bytes | bytearray | memoryview) -> tuple[bytes, bytes]:
        """The server's frames in `data` as `\\n`-terminated lines, and what to send back
        (the answer to a ping).

        Raises:
            WebSocketFailed: a close frame, or a frame chatd does not send.
        """
        buf = self._rest + bytes(data) if self._rest else bytes(data)
        out = []
        reply = b""
        at, end = 0, len(buf)
        while at + 2 <= end:
            first, size = buf[at], buf[at + 1]
            head = 2
            if size == 126:
                if at + 4 > end:
                    break
                size, head = int.from_bytes(buf[at + 2 : at + 4], "big"), 4
            elif size == 127:
                if at + 10 > end:
                    break
                size, head = int.from_bytes(buf[at + 2 : at + 10], "big"), 10
            stop = at + head + size
            if stop > end:
                break
            if first == _TEXT:
                out.append(buf[at + head : stop])
            elif first == _PING:
                reply += self._ws.send(Pong(buf[at + head : stop]))
            elif first == _CLOSE:
                self.closed = True
                raise WebSocketFailed("closed by server: " + buf[at + head + 2 : stop].decode(errors="replace"))
            else:
                raise WebSocketFailed(f"unexpected frame {first:#x}")
            at = stop
        self._rest = buf[at:]
        if not out:
            return b"", reply
        out.append(b"")
        return b"\n".join(out), reply
