"""Issue 19's probes of the browser-facing surfaces, as an attacker would send
them: raw bytes over TLS sockets on 127.0.0.1 (hand-built WebSocket frames,
hand-written HTTP) to a real chatd whose flood control is as shipped in
config/chatd.yaml (the test daemon turns it off; these tests turn it back on).

Costs are measured as the daemon's CPU time and RSS from /proc, never as wall
time; every wait has a timeout.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, Daemon, assert_healthy, scrape, wait_until
from tests.support.proc import cpu_seconds, rss_bytes
from tests.support.wsclient import https_request

TEXT, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x0, 0x8, 0x9, 0xA
MASK = b"\x37\xfa\x21\x3d"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key: base64 of 16 bytes


def shipped_flood_control() -> dict[str, Any]:
    """message_rate, message_burst and flood_disconnect as config/chatd.yaml ships them."""
    limits = yaml.safe_load((REPO / "config" / "chatd.yaml").read_text())["limits"]
    return {key: limits[key] for key in ("message_rate", "message_burst", "flood_disconnect")}


SHIPPED = shipped_flood_control()


# -- raw TLS, HTTP and WebSocket ---------------------------------------------------------


def tls_socket(daemon: Daemon, rcvbuf: int | None = None) -> ssl.SSLSocket:
    """A TLS socket to the daemon offering ALPN http/1.1, as a browser's."""
    context = ssl.create_default_context(cafile=str(daemon.pki.ca))
    context.set_alpn_protocols(["http/1.1"])
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window stays small
    raw.settimeout(10)
    raw.connect((daemon.host, daemon.port))
    tls = context.wrap_socket(raw, server_hostname="localhost")
    assert tls.selected_alpn_protocol() == "http/1.1"
    return tls


def upgrade_request(daemon: Daemon, key: str = KEY, origin: str | None = None) -> bytes:
    origin_line = f"Origin: {origin}\r\n" if origin is not None else ""
    return (
        f"GET /ws HTTP/1.1\r\nHost: localhost:{daemon.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{origin_line}\r\n"
    ).encode()


def upgrade_status(daemon: Daemon, key: str = KEY, origin: str | None = None) -> int:
    """The status the daemon answers a WebSocket upgrade with."""
    with tls_socket(daemon) as tls:
        tls.sendall(upgrade_request(daemon, key, origin))
        head = b""
        while b"\r\n" not in head:
            chunk = tls.recv(4096)
            assert chunk, f"closed after {head!r}"
            head += chunk
    return int(head.split(b" ", 2)[1])


def frame(opcode: int, payload: bytes = b"", fin: bool = True, length_bytes: int | None = None) -> bytes:
    """One masked client frame; `length_bytes` (0, 2 or 8) forces how its length is written."""
    size = len(payload)
    if length_bytes is None:
        length_bytes = 0 if size < 126 else 2 if size < 65536 else 8
    first = (0x80 if fin else 0) | opcode
    if length_bytes == 0:
        head = bytes((first, 0x80 | size))
    elif length_bytes == 2:
        head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + MASK + bytes(byte ^ MASK[i % 4] for i, byte in enumerate(payload))


class RawWebSocket:
    """A WebSocket made by hand over a TLS socket: frames in and out as bytes."""

    def __init__(self, daemon: Daemon, key: str = KEY) -> None:
        self.tls = tls_socket(daemon)
        self._buffer = b""
        self._upgraded = False
        self.texts: list[str] = []
        self.pongs = 0
        self.close_code: int | None = None  # the server's close frame's
        self.eof = False
        try:
            self.tls.sendall(upgrade_request(daemon, key, f"https://localhost:{daemon.port}"))
            while b"\r\n\r\n" not in self._buffer:
                assert self._receive(10.0), f"closed after {self._buffer!r}"
        except BaseException:
            self.tls.close()
            raise
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        self._upgraded = True
        assert head.startswith(b"HTTP/1.1 101 "), head
        self._take_frames()

    def _receive(self, timeout: float) -> bool:
        """Read what comes within `timeout`; False at the end of the stream."""
        self.tls.settimeout(timeout)
        try:
            chunk = self.tls.recv(65536)
        except TimeoutError:
            return True  # nothing yet
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self._buffer += chunk
        if self._upgraded:
            self._take_frames()
        return True

    def _take_frames(self) -> None:
        """Unmasked server frames out of the buffer, into texts, pongs and close_code."""
        while len(self._buffer) >= 2:
            opcode, size, head = self._buffer[0] & 0x0F, self._buffer[1] & 0x7F, 2
            assert self._buffer[1] & 0x80 == 0, "the server masked a frame"
            if size == 126:
                if len(self._buffer) < 4:
                    return
                size, head = int.from_bytes(self._buffer[2:4], "big"), 4
            elif size == 127:
                if len(self._buffer) < 10:
                    return
                size, head = int.from_bytes(self._buffer[2:10], "big"), 10
            if len(self._buffer) < head + size:
                return
            payload, self._buffer = self._buffer[head : head + size], self._buffer[head + size :]
            if opcode == TEXT:
                self.texts.append(payload.decode())
            elif opcode == PONG:
                self.pongs += 1
            elif opcode == CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005

    def read_texts(self, count: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.texts) < count:
            assert time.monotonic() < deadline, f"{count} text messages not in {timeout}s: {self.texts}"
            assert self._receive(max(0.01, deadline - time.monotonic())), f"closed after {self.texts}"
        return self.texts[:count]

    def send_until_closed(self, data: bytes, timeout: float = 30.0) -> None:
        """Send `data` (or as much as the server reads of it), taking in what the
        server sends meanwhile, then read until it closes or `timeout` passes."""
        deadline = time.monotonic() + timeout
        self.tls.setblocking(False)
        view, sent = memoryview(data), 0
        while sent < len(data) and self.close_code is None and not self.eof and time.monotonic() < deadline:
            readable, writable, _ = select.select([self.tls], [self.tls], [], 1.0)
            if readable or self.tls.pending():
                try:
                    self._receive(0)
                except (ssl.SSLWantReadError, BlockingIOError):
                    pass
            if writable:
                try:
                    sent += self.tls.send(view[sent : sent + 65536])
                except (ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    break  # the server has closed
        self.tls.setblocking(True)
        while not self.eof and self.close_code is None and time.monotonic() < deadline:
            self._receive(max(0.01, deadline - time.monotonic()))

    def close(self) -> None:
        self.tls.close()


@pytest.fixture
def raw_websockets() -> Any:
    sockets: list[RawWebSocket] = []
    yield sockets
    for ws in sockets:
        ws.close()


def open_websocket(daemon: Daemon, sockets: list[RawWebSocket]) -> RawWebSocket:
    """A WebSocket past the upgrade and the greeting (`HELLO`, `ACCOUNTS`, `NICK`), not registered."""
    ws = RawWebSocket(daemon)
    sockets.append(ws)  # closed at teardown
    hello, accounts, nick = ws.read_texts(3)
    assert hello.startswith("HELLO 5 ") and accounts.startswith("ACCOUNTS ") and nick == "NICK"
    ws.texts.clear()
    return ws


# -- WebSocket control frames and fragments count as lines ----------------------------------


def test_empty_pings_from_an_unregistered_websocket_end_in_bye_flood(
    start_daemon: Callable[..., Daemon], raw_websockets: list[RawWebSocket]
) -> None:
    daemon = start_daemon(limits=SHIPPED)
    ws = open_websocket(daemon, raw_websockets)
    cpu_before = cpu_seconds(daemon.pid)
    ws.send_until_closed(frame(PING) * 100_000)  # 600 KB of empty pings, as fast as TLS takes them
    if ws.close_code is not None:
        daemon.wait_for_event("disconnect", reason="flood")  # its linger over: all it cost is counted
    cpu = cpu_seconds(daemon.pid) - cpu_before
    # A normal handshake and session cost ~0.01 s; answering 100,000 pings cost seconds.
    assert cpu < 0.5, f"{cpu:.2f} s of CPU for a ping flood ({ws.pongs} pongs)"
    assert ws.close_code == 1000, (ws.close_code, ws.pongs, ws.texts[-3:])
    refused = [text for text in ws.texts if text.startswith("ERR rate_limited ")]
    # The burst is answered; each ping after it is a refused line, and
    # flood_disconnect of those end the connection as they would a line client's.
    assert ws.pongs <= SHIPPED["message_burst"] + 1, ws.pongs
    assert len(refused) == SHIPPED["flood_disconnect"], ws.texts
    assert ws.texts[-1] == "BYE flood"
    assert_healthy(daemon)


def test_empty_fragments_are_charged_and_not_stored(
    start_daemon: Callable[..., Daemon], raw_websockets: list[RawWebSocket]
) -> None:
    daemon = start_daemon(limits=SHIPPED)
    ws = open_websocket(daemon, raw_websockets)
    rss_before, cpu_before = rss_bytes(daemon.pid), cpu_seconds(daemon.pid)
    # One message that never ends: a first fragment, then a million empty ones (6 MB).
    ws.send_until_closed(frame(TEXT, b"a", fin=False) + frame(CONTINUATION, fin=False) * 1_000_000)
    if ws.close_code is not None:
        daemon.wait_for_event("disconnect", reason="flood")
    growth, cpu = rss_bytes(daemon.pid) - rss_before, cpu_seconds(daemon.pid) - cpu_before
    assert growth < 3 << 20, f"RSS grew {growth / (1 << 20):.1f} MiB for empty fragments"
    assert cpu < 0.5, f"{cpu:.2f} s of CPU for empty fragments"
    assert ws.close_code == 1000, (ws.close_code, ws.texts[-3:])
    assert ws.texts[-1] == "BYE flood"
    assert len([text for text in ws.texts if text.startswith("ERR rate_limited ")]) == SHIPPED["flood_disconnect"]
    assert_healthy(daemon)


def test_a_message_in_more_than_64_frames_is_closed_with_1009(
    daemon: Daemon, raw_websockets: list[RawWebSocket]
) -> None:
    # Flood control is off here (the test daemon's default), so that the
    # fragment limit, not the rate, is what closes the connection.
    ws = open_websocket(daemon, raw_websockets)
    # 64 frames: one line (a nickname, "ab"), however many of them are empty.
    ws.tls.sendall(frame(TEXT, b"a", fin=False) + frame(CONTINUATION, fin=False) * 62 + frame(CONTINUATION, b"b"))
    assert ws.read_texts(1)[0].startswith("WELCOME ab ")
    ws.send_until_closed(frame(TEXT, b"a", fin=False) + frame(CONTINUATION, fin=False) * 64 + frame(CONTINUATION, b"b"))
    assert ws.close_code == 1009, (ws.close_code, ws.texts[-3:])
    assert not any(text.startswith("MSG ") for text in ws.texts)
    daemon.wait_for_event("websocket_closed", code=1009, by_client=False)
    assert_healthy(daemon)


# -- strict framing and upgrade ---------------------------------------------------------


@pytest.mark.parametrize("length_bytes", [2, 8])
def test_a_length_written_in_more_bytes_than_needed_is_closed_with_1002(
    daemon: Daemon, raw_websockets: list[RawWebSocket], length_bytes: int
) -> None:
    ws = open_websocket(daemon, raw_websockets)
    ws.send_until_closed(frame(TEXT, b"alice", length_bytes=length_bytes), timeout=10)
    assert ws.close_code == 1002, (ws.close_code, ws.texts)
    assert not any(text.startswith("WELCOME") for text in ws.texts), ws.texts
    assert_healthy(daemon)


@pytest.mark.parametrize(
    "key",
    [
        "!!!!!!!!!!!!!!!!!!!!!!==",  # 24 characters, not base64
        "AAAAAAAAAAAAAAAAAAAAAAAA",  # base64 of 18 bytes
        "dGhlIHNhbXBsZSBub25jZQ=!",
        "dGhlIHNhbXBsZSBub25j ZQ=",
    ],
)
def test_a_websocket_key_that_is_not_base64_of_16_bytes_gets_400(daemon: Daemon, key: str) -> None:
    assert upgrade_status(daemon, key=key) == 400
    assert upgrade_status(daemon) == 101


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example@localhost:{port}",
        "https://user:password@localhost:{port}",
        "https://localhost:{port}@evil.example",
        "https://localhost:{port}/",
        "https://localhost:{port}/chat",
        "https://localhost:{port}?x=1",
        "https://localhost:{port}#top",
        "https://localhost:{port} https://evil.example",
    ],
)
def test_an_origin_with_userinfo_path_query_or_fragment_gets_403(daemon: Daemon, origin: str) -> None:
    assert upgrade_status(daemon, origin=origin.format(port=daemon.port)) == 403
    assert upgrade_status(daemon, origin=f"https://localhost:{daemon.port}") == 101


# -- HTTP ---------------------------------------------------------------------------------


def test_pipelined_requests_never_read_hold_one_response_at_a_time(start_daemon: Callable[..., Daemon]) -> None:
    # write_timeout short, so that the existing deadline ends the probe soon.
    daemon = start_daemon(limits={**SHIPPED, "write_timeout": 3.0})
    request = f"GET /chat.js HTTP/1.1\r\nHost: localhost:{daemon.port}\r\n\r\n".encode()
    pipelined = request * (12_288 // len(request))  # 12 KB of requests, ~300 responses of 22 KB
    probes = [tls_socket(daemon, rcvbuf=4096) for _ in range(3)]
    try:
        for tls in probes:
            tls.sendall(pipelined)  # and never read
        largest = total = 0.0
        samples = 0

        def all_closed() -> bool:
            nonlocal largest, total, samples
            metrics = scrape(daemon)
            largest = max(largest, metrics("chatd_send_queue_largest_bytes"))
            total = max(total, metrics("chatd_send_queue_bytes"))
            samples += 1
            return len(daemon.find_events("disconnect", reason="write_timeout")) == len(probes)

        wait_until(all_closed, 60, "the probes closed by write_timeout")
    finally:
        for tls in probes:
            tls.close()
    assert samples >= 2
    assert largest < 1 << 20, f"{largest / (1 << 20):.1f} MiB queued for one connection"
    assert total < len(probes) << 20, f"{total / (1 << 20):.1f} MiB queued for {len(probes)} connections"
    assert not daemon.find_events("slow_consumer")
    assert_healthy(daemon)


def test_pipelined_requests_are_all_answered_in_order_to_a_client_that_reads(daemon: Daemon) -> None:
    """One response at a time, input held while requests wait: none is lost."""
    paths = ["/chat.js", "/nope", "/app.css", "/"] * 75  # ~12 KB of requests
    requests = b"".join(f"GET {path} HTTP/1.1\r\nHost: localhost:{daemon.port}\r\n\r\n".encode() for path in paths)
    statuses: list[int] = []
    sizes: list[int] = []
    data = b""
    deadline = time.monotonic() + 30
    with tls_socket(daemon) as tls:
        tls.sendall(requests)
        while len(sizes) < len(paths):
            head, found, rest = data.partition(b"\r\n\r\n")
            size = next(
                (
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                ),
                None,
            )
            if found and size is not None and len(rest) >= size:
                statuses.append(int(head.split(b" ", 2)[1]))
                sizes.append(size)
                data = rest[size:]
                continue
            assert time.monotonic() < deadline, f"{len(sizes)} of {len(paths)} responses"
            chunk = tls.recv(65536)
            assert chunk, f"closed after {len(sizes)} of {len(paths)} responses"
            data += chunk
    assert statuses == [404 if path == "/nope" else 200 for path in paths]
    assert len(set(sizes[0::4])) == 1 and sizes[0] > 10_000  # chat.js, whole each time


@pytest.mark.parametrize(
    "date",
    [
        "Mon, 01 Jan 2020 00:00:00 +99999999999999999999",
        "Mon, 01 Jan 99999999 00:00:00 GMT",
        "Mon, 01 Jan 2020 99:99:99 GMT",
        "Sun, 06 Nov 1994 08:49:37 +2400",
        "yesterday",
    ],
)
def test_an_unparsable_if_modified_since_is_ignored(daemon: Daemon, date: str) -> None:
    status, _, body = https_request(daemon.port, daemon.pki.ca, "GET", "/", headers=[("If-Modified-Since", date)])
    assert status == 200 and body.startswith(b"<!doctype html>")
    assert not daemon.find_events("session_crashed")
    assert_healthy(daemon)
