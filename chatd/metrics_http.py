"""The metrics listener: plain HTTP/1.1 on its own thread, `chatd-metrics`.

`GET /metrics` answers the Prometheus text format; `GET /healthz` answers
200 `ok` while chatd accepts clients and 503 `stopping` once it is stopping;
another path is 404 and another method 405. Every response ends the
connection (`Connection: close`): a scraper asks once every few seconds, so
keeping connections alive would save nothing and cost a state to guard.

It listens on the operator's network, not the clients', but still assumes
nothing of its peers. One thread serves every connection through a selector
and never blocks on one, so a slow or silent peer delays nobody, and:

- each connection has `REQUEST_TIMEOUT` seconds, from accept to the last
  byte of the response, and is closed when they run out;
- a request head over `MAX_HEAD_BYTES` is answered 431 and closed;
- at most `MAX_CONNECTIONS` are served at once; while that many are open,
  the listener is not watched and new ones wait in the kernel's backlog, so
  a scrape behind a few stalled peers is served late rather than refused.

After its response a connection is half-closed and read to its end (for
`LINGER` seconds at most) before it is closed: closing a socket with unread
input sends a reset, which can destroy the response before the peer reads it.

prometheus_client's own `start_http_server` has none of these limits (a
thread per connection, no deadline), so only its registry and
`generate_latest` are used (chatd/metrics.py). Nothing here touches a chat
connection: the I/O workers never wait for this thread.
"""

from __future__ import annotations

import contextlib
import http
import selectors
import socket
import threading
import time
from typing import Callable, Final

import structlog

from chatd.transport.listening import listen_on

log = structlog.get_logger(__name__)

MAX_HEAD_BYTES: Final = 8192
REQUEST_TIMEOUT: Final = 5.0
MAX_CONNECTIONS: Final = 16
LINGER: Final = 1.0
_ACCEPT_PAUSE = 0.5  # seconds without accepting after EMFILE and the like
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


class _Exchange:
    """One connection: the request as it arrives, then the response as it leaves."""

    __slots__ = ("sock", "deadline", "received", "outgoing", "draining")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.received = b""
        self.outgoing: memoryview | None = None
        self.draining = False  # answered and half-closed: reading to the peer's end


class MetricsServer:
    def __init__(self, address: tuple[str, int], handler: Handler) -> None:
        self.requested = address
        self.address: tuple[str, int] = ("", 0)  # bound, once started
        self._handler = handler
        self._listener: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._exchanges: dict[int, _Exchange] = {}
        self._accept_paused_until = 0.0
        self._watching = False  # the listener is in the selector
        self._thread: threading.Thread | None = None
        self._wake: socket.socket | None = None

    def start(self) -> tuple[str, int]:
        """Bind and start serving; returns the bound (host, port).

        Raises:
            OSError: the address cannot be resolved or bound (e.g. in use).
        """
        host, port = self.requested
        try:
            listener = listen_on(host, port, backlog=64)
        except OSError:
            self._selector.close()
            raise
        self._listener = listener
        self.address = listener.getsockname()[:2]
        wake, self._wake = socket.socketpair()
        wake.setblocking(False)
        self._selector.register(wake, selectors.EVENT_READ)
        self._watch(True)
        self._thread = threading.Thread(target=self._serve, args=(wake,), name="chatd-metrics", daemon=True)
        self._thread.start()
        log.info("metrics_listening", host=self.address[0], port=self.address[1])
        return self.address

    def stop(self) -> None:
        """Stop serving and close every connection (waiting at most a second or two)."""
        if self._thread is None or self._wake is None:
            return
        with contextlib.suppress(OSError):  # the thread has ended already (metrics_crashed)
            self._wake.send(b"\0")
        self._thread.join(timeout=2.0)
        if self._thread.is_alive():
            log.warning("metrics_still_running")
            return
        self._wake.close()

    # -- the chatd-metrics thread ------------------------------------------------------

    def _serve(self, wake: socket.socket) -> None:
        assert self._listener is not None
        try:
            while True:
                for key, events in self._selector.select(self._timeout()):
                    if key.fileobj is wake:
                        return
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._step(key.data, events)
                self._expire(time.monotonic())
        except Exception:
            # The thread's top: metrics stop, chat goes on (it never waits for this thread).
            log.exception("metrics_crashed")
        finally:
            for exchange in list(self._exchanges.values()):
                self._close(exchange)
            self._selector.close()
            self._listener.close()
            wake.close()

    def _timeout(self) -> float | None:
        deadlines = [exchange.deadline for exchange in self._exchanges.values()]
        if self._accept_paused_until:
            deadlines.append(self._accept_paused_until)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _watch(self, on: bool) -> None:
        """Watch the listener for new connections, or stop (at the cap, or paused)."""
        assert self._listener is not None
        if on and not self._watching:
            self._selector.register(self._listener, selectors.EVENT_READ)
        elif not on and self._watching:
            self._selector.unregister(self._listener)
        self._watching = on

    def _accept(self) -> None:
        assert self._listener is not None
        while len(self._exchanges) < MAX_CONNECTIONS:
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                # EMFILE and the like: stop watching for a moment instead of spinning.
                log.warning("metrics_accept_failed", error=exc.strerror or str(exc))
                self._watch(False)
                self._accept_paused_until = time.monotonic() + _ACCEPT_PAUSE
                return
            sock.setblocking(False)
            exchange = _Exchange(sock, time.monotonic() + REQUEST_TIMEOUT)
            self._exchanges[sock.fileno()] = exchange
            self._selector.register(sock, selectors.EVENT_READ, exchange)
        self._watch(False)  # at the cap: the next ones wait in the backlog

    def _step(self, exchange: _Exchange, events: int) -> None:
        try:
            if exchange.draining:
                self._drain(exchange)
            elif exchange.outgoing is None and events & selectors.EVENT_READ:
                self._read(exchange)
            if exchange.outgoing is not None and exchange.sock.fileno() >= 0:
                self._write(exchange)
        except OSError as exc:  # reset by the peer, and the like: that connection ends
            log.debug("metrics_request_failed", error=exc.strerror or str(exc))
            self._close(exchange)
        except Exception:
            # A bug while answering one request (in chatd's collector, say): that
            # request ends, the listener goes on.
            log.exception("metrics_request_crashed")
            self._close(exchange)

    def _read(self, exchange: _Exchange) -> None:
        try:
            data = exchange.sock.recv(4096)
        except BlockingIOError:
            return
        if not data:
            self._close(exchange)
            return
        exchange.received += data
        received = exchange.received
        end = received.find(b"\r\n\r\n")
        if end < 0:
            end = received.find(b"\n\n")
        if end < 0 and len(received) <= MAX_HEAD_BYTES:
            return
        if end < 0 or end > MAX_HEAD_BYTES:
            answer = response(431, b"request head too large\n")
        else:
            answer = self._handler.answer(received[:end])
        exchange.received = b""
        exchange.outgoing = memoryview(answer)
        self._selector.modify(exchange.sock, selectors.EVENT_WRITE, exchange)

    def _write(self, exchange: _Exchange) -> None:
        assert exchange.outgoing is not None
        try:
            sent = exchange.sock.send(exchange.outgoing)
        except BlockingIOError:
            return
        exchange.outgoing = exchange.outgoing[sent:]
        if not exchange.outgoing:
            exchange.sock.shutdown(socket.SHUT_WR)
            exchange.outgoing = None
            exchange.draining = True
            exchange.deadline = min(exchange.deadline, time.monotonic() + LINGER)
            self._selector.modify(exchange.sock, selectors.EVENT_READ, exchange)

    def _drain(self, exchange: _Exchange) -> None:
        """Read what the peer still sends, until it closes its side too."""
        try:
            if exchange.sock.recv(65536):
                return
        except BlockingIOError:
            return
        self._close(exchange)

    def _expire(self, now: float) -> None:
        for exchange in [e for e in self._exchanges.values() if e.deadline <= now]:
            if not exchange.draining:
                log.debug("metrics_request_timed_out")
            self._close(exchange)
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
        if not self._watching and not self._accept_paused_until and len(self._exchanges) < MAX_CONNECTIONS:
            self._watch(True)

    def _close(self, exchange: _Exchange) -> None:
        sock = exchange.sock
        if sock.fileno() < 0:
            return
        self._exchanges.pop(sock.fileno(), None)
        self._selector.unregister(sock)
        sock.close()
