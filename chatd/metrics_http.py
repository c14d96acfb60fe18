"""The metrics listener: plain HTTP/1.1 on its own thread, `chatd-metrics`.

`GET /metrics` answers the Prometheus text format; `GET /healthz` answers
200 `ok` while chatd accepts clients and 503 `stopping` once it is stopping;
another path is 404 and another method 405. Every response ends the
connection (`Connection: close`): a scraper asks once every few seconds, so
keeping connections alive would save nothing and cost a state to guard.

It listens on the operator's network, not the clients', but still assumes
nothing of its peers. One thread serves every connection through a selector
(chatd/oneshot.py) and never blocks on one, so a slow or silent peer delays
nobody, and:

- a connection has `HEAD_TIMEOUT` seconds from accept to send its whole
  request head, and `REQUEST_TIMEOUT` seconds from accept to the last byte
  of the response; both are fixed at accept, so a peer that trickles bytes
  cannot extend them;
- a request head over `MAX_HEAD_BYTES` is answered 431 and closed;
- at most `MAX_CONNECTIONS` are open at once, and the listener keeps
  accepting (with a `BACKLOG` for bursts): a new connection past the cap
  closes the oldest one that has not sent a whole head yet. A scraper sends
  its request as soon as it has connected, so it is answered however many
  silent peers are connected (issue 19: with the listener paused at the
  cap, 48 silent peers made 3 of 3 scrapes time out).

prometheus_client's own `start_http_server` has none of these limits (a
thread per connection, no deadline), so only its registry and
`generate_latest` are used (chatd/metrics.py). Nothing here touches a chat
connection: the I/O workers never wait for this thread.
"""

from __future__ import annotations

import http
import socket
from collections.abc import Callable
from typing import Final

import structlog

from chatd.oneshot import Limits, OneShotServer
from chatd.transport.listening import listen_on

log = structlog.get_logger(__name__)

MAX_HEAD_BYTES: Final = 8192
HEAD_TIMEOUT: Final = 2.0
REQUEST_TIMEOUT: Final = 5.0
MAX_CONNECTIONS: Final = 16
# Room in the kernel for a burst of connects while the thread is busy: past it, a
# connection is refused or, worse, left half-open on the client's side.
BACKLOG: Final = 128
LINGER: Final = 1.0
_TEXT = "text/plain; charset=utf-8"


def response(status: int, body: bytes = b"", content_type: str = _TEXT, allow: str = "") -> bytes:
    """A whole HTTP/1.1 response that closes the connection."""
    phrase = http.HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    )
    if allow:
        head += f"Allow: {allow}\r\n"
    return head.encode("ascii") + b"\r\n" + body


class Handler:
    """What each request gets: the answer to one request head, no I/O."""

    def __init__(self, metrics: Callable[[], bytes], content_type: str, accepting: Callable[[], bool]) -> None:
        self._metrics = metrics
        self._content_type = content_type
        self._accepting = accepting

    def answer(self, head: bytes) -> bytes:
        """The response to a request head (its request line and headers)."""
        line = head.split(b"\n", 1)[0].rstrip(b"\r")
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[0].isalpha():
            return response(400, b"bad request\n")
        method, target = parts[0], parts[1]
        path = target.split(b"?", 1)[0]
        if path not in (b"/metrics", b"/healthz"):
            return response(404, b"not found: try /metrics or /healthz\n")
        if method != b"GET":
            return response(405, b"only GET\n", allow="GET")
        if path == b"/healthz":
            return response(200, b"ok\n") if self._accepting() else response(503, b"stopping\n")
        return response(200, self._metrics(), self._content_type)


class MetricsServer:
    def __init__(self, address: tuple[str, int], handler: Handler) -> None:
        self.requested = address
        self.address: tuple[str, int] = ("", 0)  # bound, once started
        self._handler = handler
        self._server: OneShotServer | None = None

    def start(self) -> tuple[str, int]:
        """Bind and start serving; returns the bound (host, port).

        Raises:
            OSError: the address cannot be resolved or bound (e.g. in use).
        """
        host, port = self.requested
        listener = listen_on(host, port, backlog=BACKLOG)
        self.address = listener.getsockname()[:2]
        limits = Limits(
            max_connections=MAX_CONNECTIONS,
            request_timeout=HEAD_TIMEOUT,
            exchange_timeout=REQUEST_TIMEOUT,
            max_request_bytes=MAX_HEAD_BYTES,
            linger=LINGER,
        )
        self._server = OneShotServer("metrics", listener, self._respond, limits)
        self._server.start()
        log.info("metrics_listening", host=self.address[0], port=self.address[1])
        return self.address

    def stop(self) -> None:
        """Stop serving and close every connection (waiting at most a second or two)."""
        if self._server is not None:
            self._server.stop()

    def _respond(self, sock: socket.socket, received: bytes, ended: bool) -> bytes | None:
        """The answer once `received` holds a whole head; 431 for one too large."""
        end = received.find(b"\r\n\r\n")
        if end < 0:
            end = received.find(b"\n\n")
        if 0 <= end <= MAX_HEAD_BYTES:
            return self._handler.answer(received[:end])
        if end > MAX_HEAD_BYTES or len(received) > MAX_HEAD_BYTES:
            return response(431, b"request head too large\n")
        return None  # more to come, or the peer gave up before a whole head
