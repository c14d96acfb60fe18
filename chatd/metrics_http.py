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

The request head is read by h11 (as chatd/transport/http.py reads the web
client's), one connection's `h11.Connection` per request: only GET of the
two paths is served, and an HTTP/1.1 request without `Host` is answered
too (see `read_request`).

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

import h11
import structlog

from chatd.http_response import Response, text_response
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


def read_request(received: bytes) -> tuple[h11.Connection, h11.Request | int | None]:
    """The request whose head `received` starts with, None while the head is
    not whole, or the status that refuses it (400; 431 for a head over
    MAX_HEAD_BYTES); and the h11 connection that read it, to answer with.

    h11 refuses an HTTP/1.1 request without `Host`, as RFC 9112 (3.2) tells
    a server to. This listener has one site and has always answered such a
    request (`printf 'GET /metrics HTTP/1.1\\r\\n\\r\\n' | nc`), so a request h11
    refuses is read once more with an empty `Host` after its request line:
    if that was all it lacked, it is answered.
    """
    conn, request = _read(received)
    if request == 400:
        after_line = received.find(b"\n") + 1
        again, retried = _read(received[:after_line] + b"Host:\r\n" + received[after_line:])
        if isinstance(retried, h11.Request):
            return again, retried
    return conn, request


def _read(data: bytes) -> tuple[h11.Connection, h11.Request | int | None]:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        return conn, exc.error_status_hint  # 431 for a head not whole within MAX_HEAD_BYTES
    if event is h11.NEED_DATA:
        return conn, None
    if not isinstance(event, h11.Request) or not event.http_version.startswith(b"1."):
        return conn, 400
    if len(data) - len(conn.trailing_data[0]) > MAX_HEAD_BYTES:
        return conn, 431  # h11 bounds only a head that is not whole yet
    return conn, event


class Handler:
    """What each request gets: the answer to one request head, no I/O."""

    def __init__(self, metrics: Callable[[], bytes], content_type: str, accepting: Callable[[], bool]) -> None:
        self._metrics = metrics
        self._content_type = content_type.encode()
        self._accepting = accepting

    def respond(self, received: bytes) -> bytes | None:
        """The whole response (which closes the connection) once `received`
        holds a whole request head; None until then."""
        conn, request = read_request(received)
        if request is None:
            return None
        if isinstance(request, int):
            text = "request head too large" if request == 431 else "bad request"
            return _write(conn, text_response(request, text))
        return _write(conn, self._answer(request), request.method)

    def answer(self, head: bytes) -> bytes:
        """The response to a request head already cut out (the blank line that
        ends it may be left out)."""
        return self.respond(head + b"\r\n\r\n") or b""  # never b"": a blank line ends any head

    def _answer(self, request: h11.Request) -> Response:
        path = request.target.split(b"?", 1)[0]
        if path not in (b"/metrics", b"/healthz"):
            return text_response(404, "not found: try /metrics or /healthz")
        if request.method != b"GET":
            return text_response(405, "only GET", [(b"Allow", b"GET")])
        if path == b"/healthz":
            return text_response(200, "ok") if self._accepting() else text_response(503, "stopping")
        body = self._metrics()
        return Response(200, [(b"Content-Type", self._content_type), (b"Content-Length", b"%d" % len(body))], body)


def _write(conn: h11.Connection, response: Response, method: bytes = b"") -> bytes:
    """`response` to a `method` request (none: a head that was not one), as
    `conn` writes it, ending the connection."""
    headers = [*response.headers, (b"Connection", b"close")]
    reason = http.HTTPStatus(response.status).phrase.encode()
    out = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason)) or b""
    if method != b"HEAD":
        out += conn.send(h11.Data(data=response.body)) or b""
    return out + (conn.send(h11.EndOfMessage()) or b"")


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
        return self._handler.respond(received)  # None: more to come, or the peer gave up first
