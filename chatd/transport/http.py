"""HttpCodec: HTTP/1.1 with h11, for a client that negotiated ALPN `http/1.1`
(a browser): the web client's files, and `GET /ws`, which becomes a
WebSocket (websocket.py) that carries the line protocol.

Sans-I/O like the rest of the transport: the endpoint feeds bytes in, and
responses leave through its queue. It knows nothing of chat: what a path
answers is its `Files`' business (chatd/web/files.py), and the session
behind a WebSocket comes from `open_session`.

Limits (docs/architecture.md, "The web client"): a request head of at most
`MAX_HEAD` bytes and `MAX_HEADERS` header lines (431 and close), no request
bodies (413 and close), GET and HEAD only (405); the head of each request
must be complete within `limits.handshake_timeout` of the connection being
ready for it (after the TLS handshake, or after the previous response),
which is the keep-alive idle timeout too. h11 parses pipelined requests one
at a time, each answered in order, and the next one only once the previous
response has gone to the socket: a client that pipelines requests and reads
nothing holds one response in chatd's queue, never one per request.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import http
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable
from typing import Final, Protocol

import h11
import structlog
from wsproto.utilities import generate_accept_token

from chatd.http_response import Response, text_response
from chatd.origin import origin_or_none
from chatd.outlet import Outlet
from chatd.transport.codec import Application, Finished
from chatd.transport.endpoint import Endpoint
from chatd.transport.lifecycle import Phase
from chatd.transport.websocket import WebSocketCodec
from chatd.transport.wsframes import TextFrames

log = structlog.get_logger(__name__)

MAX_HEAD: Final = 8192
MAX_HEADERS: Final = 64
WEBSOCKET_PATH: Final = "/ws"
_LOG_PATH: Final = 200  # characters of a path that go into a log line


class Files(Protocol):
    """The static files (chatd.web.files.StaticFiles)."""

    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """What every response carries."""

    def answer(self, method: str, path: str, if_none_match: bytes | None, if_modified_since: bytes | None) -> Response:
        """What a GET or HEAD of `path` gets."""


class Site(Protocol):
    """What the host gives a browser's connection."""

    @property
    def files(self) -> Files: ...
    @property
    def allowed_origins(self) -> Collection[str]:
        """Besides the server itself, as chatd.origin keys."""

    @property
    def frames(self) -> TextFrames: ...


class HttpCodec:
    def __init__(self, endpoint: Endpoint, site: Site, open_session: Callable[[Outlet], Application]) -> None:
        self.endpoint = endpoint
        self.app = Finished()  # until the upgrade, whose codec has a session
        # The response in flight, in bytes (0: none): exempt from the slow-consumer
        # rule, since a file may be larger than a chat client's queue. Nothing
        # else is queued while it is: the next request waits for `drained`.
        self.exempt_bytes = 0
        self.site = site
        self._open_session = open_session
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._reject: str | None = None
        self._cert_nick: str | None = None
        self._upgrading: dict[bytes, bytes] | None = None  # an accepted `GET /ws`, until h11 pauses

    # -- the codec ---------------------------------------------------------------------

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        self._reject, self._cert_nick = reject, cert_nick
        self._await_request()

    def on_data(self, data: bytes) -> None:
        self._conn.receive_data(data)
        self._process()
        if self.exempt_bytes and len(self._conn.trailing_data[0]) > MAX_HEAD:
            self.endpoint.hold_input()  # enough requests wait behind this response: TCP holds the rest

    def drained(self) -> None:
        """The response in flight has left: the next request may be answered."""
        self.exempt_bytes = 0
        self.endpoint.release_input()
        self._process()

    def on_timer(self, now: float) -> None:
        if self.endpoint.output_pending():
            self._await_request()  # still sending the last response: write_timeout watches that
            return
        started = bool(self._conn.trailing_data[0])
        if started:
            log.info("http_error", **self.endpoint.context, status=408, error="request head not complete in time")
            self._send(text_response(408, "Request timeout."), "GET", close=True)
        self.endpoint.begin_close("http_request_timeout" if started else "http_idle")

    def on_close(self, reason: str, text: str) -> bytes:
        return b""  # an HTTP client gets no goodbye

    def limits_changed(self) -> None:
        pass  # the next deadline reads the new handshake_timeout

    def cut(self, data: bytes, limit: int) -> int:
        return limit

    def rest_of_unit(self, head: bytes) -> bytes:
        return b""  # an HTTP client gets no goodbye to finish a unit for

    # -- requests ------------------------------------------------------------------------

    def _await_request(self) -> None:
        self.endpoint.set_deadline(time.monotonic() + self.endpoint.host.limits.handshake_timeout)

    def _process(self) -> None:
        """Answer what h11 has of requests, one at a time: the next one only
        once the previous response has left (`drained`), so that requests
        pipelined by a client that reads nothing cost no memory here."""
        conn = self._conn
        while self.endpoint.state is Phase.OPEN:
            if conn.our_state is h11.MUST_CLOSE:
                self.endpoint.begin_close("http_done")
                return
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                if self.exempt_bytes:
                    return  # `drained` comes back here
                conn.start_next_cycle()
                self._await_request()
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(exc.error_status_hint, str(exc))
                return
            if isinstance(event, h11.Request):
                self._request(event)
            elif event is h11.PAUSED and self._upgrading is not None:
                self._upgrade(self._upgrading)  # the request is whole: h11 awaits our 101
                return
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.endpoint.begin_close("http_closed")
                return
            # Data and EndOfMessage of a request already answered: nothing to do.

    def _request(self, request: h11.Request) -> None:
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        path = urllib.parse.unquote(target.partition("?")[0])
        headers = _headers(request.headers)
        if len(request.headers) > MAX_HEADERS:
            self._refuse(431, f"more than {MAX_HEADERS} header lines")
            return
        # h11 bounds only a head that arrives in pieces (max_incomplete_event_size).
        size = len(request.method) + len(request.target) + sum(len(n) + len(v) + 4 for n, v in request.headers)
        if size > MAX_HEAD:
            self._refuse(431, f"a request head over {MAX_HEAD} bytes")
            return
        if (b"content-length" in headers and headers[b"content-length"] != b"0") or b"transfer-encoding" in headers:
            self._refuse(413, "a request body (chatd takes none)", method, path)
            return
        if self._reject == "banned":  # an operator's ban (docs/operations.md "Accounts"), not a busy server
            response = text_response(403, "Your address is banned from this server.")
            self._log(method, path, response.status)
            self._send(response, method, close=True)
            return
        if self._reject is not None:
            response = text_response(503, "The server is busy; try again later.", [(b"Retry-After", b"60")])
            self._log(method, path, response.status)
            self._send(response, method, close=True)
            return
        if method not in ("GET", "HEAD"):
            response = text_response(405, "Only GET and HEAD.", [(b"Allow", b"GET, HEAD")])
        elif not path.startswith("/"):
            response = text_response(400, "Bad request target.")
        elif path == WEBSOCKET_PATH:
            refusal = self._upgrade_refusal(method, headers)
            if refusal is None:
                self._upgrading = headers
                return
            response = refusal
        else:
            response = self.site.files.answer(
                method, path, headers.get(b"if-none-match"), headers.get(b"if-modified-since")
            )
        self._log(method, path, response.status)
        self._send(response, method)

    def _send(self, response: Response, method: str, close: bool = False) -> None:
        conn = self._conn
        headers = [*response.headers, *self.site.files.headers, (b"Date", _http_date())]
        if close:
            headers.append((b"Connection", b"close"))
        reason = http.HTTPStatus(response.status).phrase.encode()
        try:
            out = [conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))]
            if response.body and method != "HEAD" and response.status != 304:
                out += conn.send_with_data_passthrough(h11.Data(data=response.body)) or []
            out.append(conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError as exc:  # e.g. the client's half of the exchange broke first
            log.info("http_error", **self.endpoint.context, status=response.status, error=str(exc))
            self.endpoint.begin_close("http_error")
            return
        data = b"".join(part for part in out if part is not None)
        self.exempt_bytes += len(data)
        self.endpoint.notify_when_drained()
        self.endpoint.deliver(data, 0)

    def _refuse(self, status: int, error: str, method: str = "GET", path: str = "") -> None:
        """A request chatd will not answer normally: say why, then close."""
        log.info("http_error", **self.endpoint.context, status=status, error=error, path=path[:_LOG_PATH] or None)
        if self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._send(text_response(status, http.HTTPStatus(status).phrase + "."), method, close=True)
        self.endpoint.begin_close("http_error")

    def _log(self, method: str, path: str, status: int) -> None:
        log.debug("http_request", **self.endpoint.context, method=method, path=path[:_LOG_PATH], status=status)

    # -- the WebSocket upgrade -------------------------------------------------------------

    def _upgrade_refusal(self, method: str, headers: dict[bytes, bytes]) -> Response | None:
        """None if `GET /ws` may become a WebSocket (RFC 6455, 4.2.1), else the answer."""
        upgrade = _tokens(headers.get(b"upgrade", b""))
        if method != "GET" or b"websocket" not in upgrade or b"upgrade" not in _tokens(headers.get(b"connection", b"")):
            return text_response(426, "This is a WebSocket endpoint.", [(b"Upgrade", b"websocket")])
        if headers.get(b"sec-websocket-version") != b"13":
            return text_response(426, "WebSocket version 13 only.", [(b"Sec-WebSocket-Version", b"13")])
        if not _websocket_key_valid(headers.get(b"sec-websocket-key", b"")):
            return text_response(400, "Sec-WebSocket-Key is missing or malformed (base64 of 16 bytes).")
        origin = headers.get(b"origin")
        if origin is not None and not self._origin_allowed(origin, headers.get(b"host")):
            log.info("websocket_refused", **self.endpoint.context, origin=origin.decode("latin-1")[:_LOG_PATH])
            return text_response(403, "Cross-origin WebSocket refused.")
        return None

    def _origin_allowed(self, origin: bytes, host: bytes | None) -> bool:
        """This server (https and the Host it was asked as), or one of `web.allowed_origins`.

        A request without `Origin` is allowed by the caller: every browser sends
        one with a WebSocket request, and a program can send any it likes.
        """
        key = origin_or_none(origin.decode("latin-1"))
        if key is None:
            return False  # `null` (a sandboxed or file: page), or not exactly an origin
        if key in self.site.allowed_origins:
            return True
        if host is None:
            return False
        return origin_or_none("https://" + host.decode("latin-1")) == key

    def _upgrade(self, headers: dict[bytes, bytes]) -> None:
        self._upgrading = None
        accept = generate_accept_token(headers[b"sec-websocket-key"])
        response = h11.InformationalResponse(
            status_code=101,
            headers=[
                (b"Upgrade", b"websocket"),
                (b"Connection", b"Upgrade"),
                (b"Sec-WebSocket-Accept", accept),
                *self.site.files.headers,
            ],
            reason=b"Switching Protocols",
        )
        self.endpoint.deliver(self._conn.send(response) or b"", 0)
        trailing, _ = self._conn.trailing_data
        self._log("GET", WEBSOCKET_PATH, 101)
        self.endpoint.set_deadline(None)
        codec = WebSocketCodec(self.endpoint, self.site.frames, self._open_session)
        self.endpoint.switch_codec(codec)
        codec.on_open(None, self._cert_nick)
        if trailing and self.endpoint.is_open():
            codec.on_data(bytes(trailing))


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Lower-case names (h11 gives them so); repeated headers joined with commas."""
    headers: dict[bytes, bytes] = {}
    for name, value in raw:
        headers[name] = headers[name] + b", " + value if name in headers else value
    return headers


def _tokens(value: bytes) -> list[bytes]:
    return [token.strip().lower() for token in value.split(b",")]


def _websocket_key_valid(key: bytes) -> bool:
    """RFC 6455, 4.1: the key is the base64 of 16 random bytes (24 characters)."""
    try:
        return len(key) == 24 and len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False


def _http_date() -> bytes:
    return email.utils.formatdate(usegmt=True).encode()
