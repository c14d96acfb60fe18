"""chatd/transport/http.py without sockets: HttpCodec fed bytes by a small
fake endpoint and read by a real h11 client. Requests and their answers,
the limits (405, 413, 431, 400, 503, 408), pipelined requests answered one
at a time on `drained`, and the upgrade of `GET /ws` to the WebSocket codec,
which then reads what a browser sends (also a byte at a time)."""

from __future__ import annotations

import base64
import gc
import time
from pathlib import Path
from types import SimpleNamespace

import h11
import pytest
from wsproto.connection import CLIENT, Connection
from wsproto.events import TextMessage
from wsproto.utilities import generate_accept_token

from chatd.transport import websocket
from chatd.transport.http import MAX_HEAD, MAX_HEADERS, HttpCodec
from chatd.transport.lifecycle import Phase
from chatd.transport.websocket import WebSocketCodec
from chatd.transport.wsframes import TextFrames, read_text_frames
from chatd.web.files import HEADERS, StaticFiles

PAGE = b"<!doctype html><title>chat</title>\n"
KEY = base64.b64encode(b"0123456789abcdef")


class FakeEndpoint:
    """What a codec uses of chatd.transport.endpoint.Endpoint; its "socket"
    takes everything at once when the test calls `write()`."""

    def __init__(self, max_line_bytes: int = 4096) -> None:
        self.host = SimpleNamespace(limits=SimpleNamespace(max_line_bytes=max_line_bytes, handshake_timeout=10.0))
        self.worker = SimpleNamespace(stats=SimpleNamespace(lines_in=0))
        self.peer = "192.0.2.1:50000"
        self.context = {"session": 1, "peer": self.peer}
        self.connected_at = 0.0
        self.state = Phase.OPEN
        self.app: object = None
        self.codec: object = None
        self.queue = bytearray()
        self.notify = False
        self.held = False
        self.deadline: float | None = None
        self.closed_for: str | None = None

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        self.queue += data

    def switch_codec(self, codec: object) -> None:
        self.codec = codec
        self.app = codec.app  # type: ignore[attr-defined]

    def write(self) -> bytes:
        """The socket takes what is queued; then `drained`, as the endpoint's flush does."""
        out = bytes(self.queue)
        self.queue.clear()
        if self.notify and self.state is Phase.OPEN:
            self.notify = False
            self.codec.drained()  # type: ignore[attr-defined]
        return out

    def output_pending(self) -> bool:
        return bool(self.queue)

    def notify_when_drained(self) -> None:
        self.notify = True

    def hold_input(self) -> None:
        self.held = True

    def release_input(self) -> None:
        self.held = False

    def set_deadline(self, when: float | None) -> None:
        self.deadline = when

    def begin_close(self, reason: str, text: str = "") -> None:
        if self.state is Phase.OPEN:
            self.state, self.closed_for = Phase.CLOSING, reason

    def close(self, reason: str, text: str = "") -> None:
        self.begin_close(reason, text)

    def is_open(self) -> bool:
        return self.state is not Phase.CLOSED


class FakeSession:
    """The application behind the WebSocket."""

    nick = ""
    messages_in = 0
    rate_limited = 0

    def __init__(self, outlet: object) -> None:
        self.outlet = outlet
        self.opened: tuple[str | None, str | None] | None = None
        self.lines: list[bytes | None] = []

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        self.opened = (reject, cert_nick)

    def on_lines(self, lines: list[bytes | None]) -> None:
        self.lines += lines

    def charge(self, frames: int) -> bool:
        return True

    def on_timer(self, now: float) -> None:
        pass

    def on_close(self, reason: str, text: str) -> bytes:
        return f"BYE {reason}\n".encode()

    def limits_changed(self) -> None:
        pass


class Browser:
    """An HttpCodec on a fake endpoint, and h11 clients reading its answers."""

    def __init__(self, tmp_path: Path, reject: str | None = None, max_line_bytes: int = 4096) -> None:
        (tmp_path / "index.html").write_bytes(PAGE)
        self.site = SimpleNamespace(
            files=StaticFiles.load(tmp_path), allowed_origins=frozenset({"https://app.example"}), frames=TextFrames()
        )
        self.sessions: list[FakeSession] = []
        self.endpoint = FakeEndpoint(max_line_bytes)
        self.codec = HttpCodec(self.endpoint, self.site, self.open_session)  # type: ignore[arg-type]
        self.endpoint.codec = self.codec
        self.codec.on_open(reject, "alice")
        self._asked: list[h11.Request] = []  # requests sent, not answered yet
        self._received = b""  # what the socket took, not read yet

    def open_session(self, outlet: object) -> FakeSession:
        self.sessions.append(FakeSession(outlet))
        return self.sessions[-1]

    def request(self, method: str = "GET", target: str = "/", headers: list[tuple[str, str]] | None = None) -> bytes:
        """The bytes of one request, an h11 client's (so a valid one)."""
        request = h11.Request(method=method, target=target, headers=[("Host", "chat"), *(headers or [])])
        self._asked.append(request)
        client = h11.Connection(h11.CLIENT)
        return client.send(request) + (client.send(h11.EndOfMessage()) or b"")

    def responses(self) -> list[tuple[h11.Response | h11.InformationalResponse, bytes]]:
        """The whole responses among what the endpoint's socket takes now (which may
        let the codec answer the next request: read again for it)."""
        self._received += self.endpoint.write()
        out: list[tuple[h11.Response | h11.InformationalResponse, bytes]] = []
        while self._received:
            # A client that asked what the answer answers (a HEAD has no body), or a GET
            # for bytes that were not a request.
            asked = self._asked[0] if self._asked else h11.Request(method="GET", target="/", headers=[("Host", "x")])
            client = h11.Connection(h11.CLIENT)
            client.send(asked)
            client.send(h11.EndOfMessage())
            client.receive_data(self._received)
            events = []
            while (event := client.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
                events.append(event)
                if isinstance(event, (h11.EndOfMessage, h11.InformationalResponse)):
                    break
            if not events or not isinstance(events[-1], (h11.EndOfMessage, h11.InformationalResponse)):
                break  # not whole yet
            self._received = client.trailing_data[0]
            if self._asked:
                self._asked.pop(0)
            response = events[0]
            assert isinstance(response, (h11.Response, h11.InformationalResponse)), events
            out.append((response, b"".join(e.data for e in events if isinstance(e, h11.Data))))
            if isinstance(response, h11.InformationalResponse):
                break  # 101: a WebSocket from here on
        return out

    def answer(self, data: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.codec.on_data(data)
        ((response, body),) = self.responses()
        return response.status_code, dict(response.headers), body


def upgrade_headers(**extra: str) -> list[tuple[str, str]]:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY.decode(),
        "Sec-WebSocket-Version": "13",
        **extra,
    }
    return list(headers.items())


# -- requests ------------------------------------------------------------------------------


def test_a_get_gets_the_file_with_the_security_headers_and_the_connection_stays(tmp_path: Path) -> None:
    browser = Browser(tmp_path)
    status, headers, body = browser.answer(browser.request("GET", "/"))
    assert (status, body) == (200, PAGE)
    assert headers[b"content-type"] == b"text/html; charset=utf-8"
    assert all(headers[name.lower()] == value for name, value in HEADERS)
    assert b"date" in headers and b"connection" not in headers
    assert browser.endpoint.state is Phase.OPEN and browser.endpoint.deadline is not None


def test_head_gets_the_headers_and_no_body(tmp_path: Path) -> None:
    browser = Browser(tmp_path)
    status, headers, body = browser.answer(browser.request("HEAD", "/index.html"))
    assert (status, body, headers[b"content-length"]) == (200, b"", str(len(PAGE)).encode())


def test_an_unknown_path_is_404_and_the_connection_stays(tmp_path: Path) -> None:
    browser = Browser(tmp_path)
    status, headers, _ = browser.answer(browser.request("GET", "/nothing"))
    assert status == 404 and headers[b"cache-control"] == b"no-store"
    assert browser.endpoint.state is Phase.OPEN


def test_another_method_is_405_with_allow(tmp_path: Path) -> None:
    browser = Browser(tmp_path)
    status, headers, body = browser.answer(browser.request("DELETE", "/"))
    assert (status, headers[b"allow"]) == (405, b"GET, HEAD")
    assert body == b"Only GET and HEAD.\n" and headers[b"content-type"] == b"text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: chat\r\nContent-Length: 5\r\n\r\nhello", 413),
        (b"GET / HTTP/1.1\r\nHost: chat\r\nTransfer-Encoding: chunked\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nHost: chat\r\n" + b"X-A: b\r\n" * MAX_HEADERS + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: chat\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n", 431),  # whole, in one read
        (b"GET / HTTP/1.1\r\nHost: chat\r\nX-Big: " + b"a" * MAX_HEAD, 431),  # not whole yet, already too big
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
    ],
)
def test_limits_answer_and_close(tmp_path: Path, data: bytes, status: int) -> None:
    browser = Browser(tmp_path)
    got, headers, _ = browser.answer(data)
    assert got == status
    assert headers[b"connection"] == b"close"
    assert browser.endpoint.state is Phase.CLOSING and browser.endpoint.closed_for in ("http_error", "http_done")


def test_a_target_that_is_not_a_path_is_400_and_the_connection_stays(tmp_path: Path) -> None:
    browser = Browser(tmp_path)
    assert browser.answer(b"GET http://elsewhere/ HTTP/1.1\r\nHost: chat\r\n\r\n")[0] == 400
    assert browser.endpoint.state is Phase.OPEN


def test_a_busy_server_answers_503_and_closes(tmp_path: Path) -> None:
    browser = Browser(tmp_path, reject="server_full")
    status, headers, _ = browser.answer(browser.request())
    assert (status, headers[b"retry-after"], headers[b"connection"]) == (503, b"60", b"close")
    assert browser.endpoint.state is Phase.CLOSING


def test_a_head_not_whole_in_time_is_408_and_an_idle_connection_just_closes(tmp_path: Path) -> None:
    started = Browser(tmp_path)
    started.codec.on_data(b"GET / HT")
    started.codec.on_timer(time.monotonic())
    ((response, _),) = started.responses()
    assert response.status_code == 408 and started.endpoint.closed_for == "http_request_timeout"

    idle = Browser(tmp_path)
    idle.codec.on_timer(time.monotonic())
    assert idle.endpoint.queue == b"" and idle.endpoint.closed_for == "http_idle"


# -- pipelining ------------------------------------------------------------------------------


def test_pipelined_requests_are_answered_one_at_a_time_each_after_the_last_has_left(tmp_path: Path) -> None:
    browser = Browser(tmp_path)
    browser.codec.on_data(browser.request("GET", "/") + browser.request("GET", "/nothing") + browser.request("HEAD"))
    assert browser.endpoint.notify and browser.codec.exempt_bytes == len(browser.endpoint.queue)
    for status in (200, 404, 200):
        # One response queued at a time; writing it out (drained) lets the next one be answered.
        assert [response.status_code for response, _ in browser.responses()] == [status]
    assert not browser.endpoint.notify and browser.codec.exempt_bytes == 0


def test_requests_piling_up_behind_a_response_hold_the_input_until_it_has_left(tmp_path: Path) -> None:
    browser = Browser(tmp_path)
    many = browser.request() * (MAX_HEAD // len(browser.request()) + 2)
    browser.codec.on_data(many)
    assert browser.endpoint.held  # TCP keeps the rest in the client's kernel
    browser.responses()
    assert not browser.endpoint.held


# -- the upgrade -------------------------------------------------------------------------------


def test_get_ws_becomes_a_websocket_and_the_bytes_behind_it_are_its_first_frame(tmp_path: Path) -> None:
    browser = Browser(tmp_path)
    frame = Connection(CLIENT).send(TextMessage("NICK alice\n"))
    browser.codec.on_data(browser.request("GET", "/ws", upgrade_headers()) + frame)
    ((response, _),) = browser.responses()
    assert response.status_code == 101
    headers = dict(response.headers)
    assert headers[b"sec-websocket-accept"] == generate_accept_token(KEY)
    assert all(headers[name.lower()] == value for name, value in HEADERS)
    codec = browser.endpoint.codec
    assert isinstance(codec, WebSocketCodec) and browser.endpoint.app is codec.app
    (session,) = browser.sessions
    assert session.outlet is codec and session.opened == (None, "alice")
    assert session.lines == [b"NICK alice"]
    assert browser.endpoint.deadline is None  # the session sets its own from now on


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([("Sec-WebSocket-Key", KEY.decode()), ("Sec-WebSocket-Version", "13")], 426),  # no Upgrade
        (upgrade_headers(**{"Sec-WebSocket-Version": "8"}), 426),
        (upgrade_headers(**{"Sec-WebSocket-Key": "c2hvcnQ="}), 400),
        (upgrade_headers(Origin="https://evil.example"), 403),
        (upgrade_headers(Origin="null"), 403),
    ],
)
def test_an_upgrade_chatd_does_not_take_is_refused_and_the_connection_stays(
    tmp_path: Path, headers: list[tuple[str, str]], status: int
) -> None:
    browser = Browser(tmp_path)
    assert browser.answer(browser.request("GET", "/ws", headers))[0] == status
    assert browser.endpoint.state is Phase.OPEN and not browser.sessions


@pytest.mark.parametrize("origin", ["https://app.example", "https://chat"])
def test_an_allowed_origin_or_the_servers_own_may_upgrade(tmp_path: Path, origin: str) -> None:
    browser = Browser(tmp_path)
    assert browser.answer(browser.request("GET", "/ws", upgrade_headers(Origin=origin)))[0] == 101


def test_a_websocket_between_messages_keeps_no_frame_buffer(tmp_path: Path) -> None:
    # An idle client's memory decides how many fit (docs/architecture.md,
    # "Memory per connection"): no empty bytearray (56 bytes) waits for a frame.
    browser = Browser(tmp_path)
    browser.codec.on_data(browser.request("GET", "/ws", upgrade_headers()))
    browser.responses()
    codec = browser.endpoint.codec
    assert isinstance(codec, WebSocketCodec)
    frame = Connection(CLIENT).send(TextMessage("NICK alice\n"))
    codec.on_data(frame[:3])  # a frame in two reads: its start waits, then goes
    codec.on_data(frame[3:])
    assert browser.sessions[0].lines == [b"NICK alice"]
    assert [obj for obj in gc.get_referents(codec) if isinstance(obj, bytearray)] == []


def test_a_message_trickled_a_byte_at_a_time_costs_linear_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 65,535-byte text message at max_line_bytes 65536, one byte per read
    (a TLS record each): its partial frame is neither copied whole nor read
    again on each read, only once its head says the frame can be whole.

    (Copying it on each read cost 0.16 s of CPU here, too little beside the
    0.01 s it costs now for a bound with a margin to tell them apart on a
    busy machine; the count of reads does.)"""
    browser = Browser(tmp_path, max_line_bytes=65536)
    browser.codec.on_data(browser.request("GET", "/ws", upgrade_headers()))
    browser.responses()
    codec = browser.endpoint.codec
    assert isinstance(codec, WebSocketCodec)
    reads = []

    def counted(data: bytes, limit: int) -> tuple[list[bytes], int, bool]:
        reads.append(len(data))
        return read_text_frames(data, limit)

    monkeypatch.setattr(websocket, "read_text_frames", counted)
    text = "x" * 65535
    frame = Connection(CLIENT).send(TextMessage(text))
    pieces = [frame[i : i + 1] for i in range(len(frame))]  # sliced beforehand: not measured
    started = time.thread_time()
    for piece in pieces:
        codec.on_data(piece)
    spent = time.thread_time() - started
    assert browser.sessions[0].lines == [text.encode()]
    assert len(reads) <= 4, f"the partial frame was read {len(reads)} times"  # 1, 2, 4 bytes of head, then whole
    assert spent < 0.1, f"{spent:.2f} s of CPU for one {len(frame)}-byte frame fed a byte at a time"
