"""A tiny blocking WebSocket client for tests, with wsproto over a TLS socket
that offers ALPN `http/1.1`, as a browser's does: what a browser's page
would see of chatd.

`WebSocketClient` is the tests' `ChatClient` (register, join, readline…)
with its lines carried one per text message (docs/protocol.md, "Transport");
`WebSocket` is the socket-like object underneath, for tests that send
messages or frames a line client cannot. `https_request` and `tls_http` are
for the plain HTTP side.
"""

from __future__ import annotations

import collections
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from tests.support.chatclient import ChatClient


class WebSocketRefused(Exception):
    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        super().__init__(f"the server answered {status} to the WebSocket upgrade: {body!r}")
        self.status = status
        self.headers = headers
        self.body = body


def tls_http(
    port: int, ca: Path, host: str = "127.0.0.1", timeout: float = 5.0, alpn: list[str] | None = None
) -> ssl.SSLSocket:
    """A TLS socket to chatd offering ALPN `http/1.1` (or `alpn`), as a browser's."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(alpn if alpn is not None else ["http/1.1"])
    raw = socket.create_connection((host, port), timeout=timeout)
    sock = context.wrap_socket(raw, server_hostname="localhost")
    sock.settimeout(timeout)
    return sock


class WebSocket:
    """A WebSocket over `tls`, opened at once; `recv`, `sendall`, `settimeout`
    and `close` as on a socket, carrying lines: each text message received
    comes out with a `\\n` after it, each line sent goes as one text message."""

    def __init__(
        self,
        tls: ssl.SSLSocket,
        host: str,
        origin: str | None = None,
        path: str = "/ws",
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.tls = tls
        self.ws = WSConnection(ConnectionType.CLIENT)
        self._lines = bytearray()
        self._text: list[str] = []
        self.closed_with: CloseConnection | None = None  # the server's close frame
        self.pongs: collections.deque[bytes] = collections.deque()
        headers = list(extra_headers or [])
        if origin is not None:
            headers.append((b"Origin", origin.encode()))
        try:
            self.tls.sendall(self.ws.send(Request(host=host, target=path, extra_headers=headers)))
            self._handshake()
            self._take_events()  # the first messages may have come with the 101
        except BaseException:
            self.tls.close()
            raise

    def _handshake(self) -> None:
        rejected: RejectConnection | None = None
        body = b""
        while True:
            data = self.tls.recv(65536)
            self.ws.receive_data(data or None)
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    rejected = event
                    if not event.has_body:
                        raise WebSocketRefused(event.status_code, dict(event.headers), b"")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished and rejected is not None:
                        raise WebSocketRefused(rejected.status_code, dict(rejected.headers), body)
            if not data:
                raise EOFError("closed during the WebSocket handshake")

    # -- socket-like ----------------------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        self.tls.settimeout(timeout)

    def recv(self, size: int) -> bytes:
        """Whole lines (text messages, each then `\\n`), b"" once closed."""
        while not self._lines and self.closed_with is None:
            data = self.tls.recv(65536)
            if not data:
                self.closed_with = CloseConnection(1006)
                break
            self.ws.receive_data(data)
            self._take_events()
        chunk = bytes(self._lines[:size])
        del self._lines[:size]
        return chunk

    def _take_events(self) -> None:
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self._text.append(event.data)
                if event.message_finished:
                    self._lines += "".join(self._text).encode() + b"\n"
                    self._text = []
            elif isinstance(event, Ping):
                self.tls.sendall(self.ws.send(event.response()))
            elif isinstance(event, Pong):
                self.pongs.append(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                self.closed_with = event
                try:
                    self.tls.sendall(self.ws.send(event.response()))
                except (OSError, ssl.SSLError):
                    pass  # the server may be gone already
            elif isinstance(event, BytesMessage):
                raise AssertionError(f"chatd sent a binary message: {event.data!r}")

    def sendall(self, data: bytes) -> None:
        """Each `\\n`-terminated line of `data` as one text message, without the `\\n`."""
        lines = data.split(b"\n")
        if not lines[-1]:
            lines.pop()
        self.tls.sendall(b"".join(self.ws.send(TextMessage(line.decode())) for line in lines))

    def send_text(self, text: str) -> None:
        """One text message, exactly `text` (which may hold newlines)."""
        self.tls.sendall(self.ws.send(TextMessage(text)))

    def send_bytes(self, data: bytes) -> None:
        self.tls.sendall(self.ws.send(BytesMessage(data)))

    def ping(self, payload: bytes) -> None:
        self.tls.sendall(self.ws.send(Ping(payload)))

    def send_close(self, code: int = 1000) -> None:
        self.tls.sendall(self.ws.send(CloseConnection(code)))

    def close(self) -> None:
        try:
            self.tls.close()
        except OSError:
            pass


class WebSocketClient(ChatClient):
    """The tests' ChatClient over a WebSocket: `WebSocketClient.registered(port,
    ca, "alice")` and everything else as for a line client."""

    origin: str | None = None  # default Origin: the server itself, as a page it served would send

    def _connect(
        self, port: int, ca: Path, host: str, cert: tuple[Path, Path] | None, timeout: float, source: str | None
    ) -> Any:
        tls = tls_http(port, ca, host, timeout)
        authority = f"localhost:{port}"
        origin = self.origin if self.origin is not None else f"https://{authority}"
        return WebSocket(tls, authority, origin)

    @property
    def websocket(self) -> WebSocket:
        assert isinstance(self.sock, WebSocket)
        return self.sock


def https_request(
    port: int,
    ca: Path,
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    timeout: float = 5.0,
    sock: ssl.SSLSocket | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request over TLS with ALPN `http/1.1` (on `sock` if given,
    which stays open for keep-alive); returns status, headers (lower-case names)
    and body."""
    own = sock is None
    tls = sock or tls_http(port, ca, timeout=timeout)
    conn = h11.Connection(h11.CLIENT)
    all_headers = [("Host", f"localhost:{port}"), *(headers or [])]
    try:
        tls.sendall(conn.send(h11.Request(method=method, target=target, headers=all_headers)) or b"")
        tls.sendall(conn.send(h11.EndOfMessage()) or b"")
        response: h11.Response | None = None
        body = b""
        deadline = time.monotonic() + timeout
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if time.monotonic() > deadline:
                    raise TimeoutError("no whole response in time")
                conn.receive_data(tls.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        assert response is not None
        names = {name.decode().lower(): value.decode() for name, value in response.headers}
        return response.status_code, names, body
    finally:
        if own:
            tls.close()
