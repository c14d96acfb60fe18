"""The web transport against a real daemon over real TLS (issue 13): the page
and its headers over HTTPS, ALPN choosing HTTP or the line protocol on one
port, and WebSocket clients chatting with line clients through the same
sessions, limits included.
"""

from __future__ import annotations

import signal
import socket
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Daemon, assert_healthy, wait_until, with_io_threads
from tests.support.wsclient import WebSocket, WebSocketClient, WebSocketRefused, https_request, tls_http

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def ws_client(daemon: Daemon, nick: str | None = None) -> WebSocketClient:
    """A WebSocket client of `daemon` (registered as `nick` if given), closed at teardown."""
    if nick is None:
        client = WebSocketClient(daemon.port, daemon.pki.ca)
    else:
        client = WebSocketClient.registered(daemon.port, daemon.pki.ca, nick)
    daemon.clients.append(client)
    return client


def assert_security_headers(headers: dict[str, str]) -> None:
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in headers  # on purpose: docs/operations.md


def closed_by_server(tls: ssl.SSLSocket, timeout: float = 5.0) -> bytes:
    """Read until the server closes; what it sent on the way."""
    tls.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = tls.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return data
        if not chunk:
            return data
        data += chunk


# -- the page -------------------------------------------------------------------------


def test_the_page_with_its_headers_and_validators(daemon: Daemon) -> None:
    status, headers, body = https_request(daemon.port, daemon.pki.ca, "GET", "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert body.startswith(b"<!doctype html>") and int(headers["content-length"]) == len(body)
    assert_security_headers(headers)
    assert headers["cache-control"] == "no-cache"
    etag, modified = headers["etag"], headers["last-modified"]
    assert etag.startswith('"') and etag.endswith('"')

    # The same file by name, and HEAD: the same validators, no body.
    assert https_request(daemon.port, daemon.pki.ca, "GET", "/index.html?v=2")[2] == body
    status, head, empty = https_request(daemon.port, daemon.pki.ca, "HEAD", "/")
    assert (status, empty, head["etag"], head["content-length"]) == (200, b"", etag, str(len(body)))

    for condition in (
        ("If-None-Match", etag),
        ("If-None-Match", f'"other", W/{etag}'),
        ("If-None-Match", "*"),
        ("If-Modified-Since", modified),
    ):
        status, headers, body304 = https_request(daemon.port, daemon.pki.ca, "GET", "/", headers=[condition])
        assert (status, body304, headers["etag"]) == (304, b"", etag), condition
        assert_security_headers(headers)
    status, _, _ = https_request(daemon.port, daemon.pki.ca, "GET", "/", headers=[("If-None-Match", '"other"')])
    assert status == 200


def test_unknown_paths_and_methods(daemon: Daemon) -> None:
    for target in ("/nope", "/../chatd.yaml", "/static/index.html", "//etc/passwd"):
        status, headers, _ = https_request(daemon.port, daemon.pki.ca, "GET", target)
        assert status == 404, target
        assert_security_headers(headers)
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = https_request(daemon.port, daemon.pki.ca, method, "/")
        assert (status, headers["allow"]) == (405, "GET, HEAD"), method
        assert_security_headers(headers)
    assert daemon.find_events("http_request", method="GET", path="/nope", status=404)


def test_keep_alive_and_pipelining(daemon: Daemon) -> None:
    with tls_http(daemon.port, daemon.pki.ca) as tls:
        for _ in range(3):
            assert https_request(daemon.port, daemon.pki.ca, sock=tls)[0] == 200
        # Two requests in one write: two responses, in order.
        request = f"GET /nope HTTP/1.1\r\nHost: localhost:{daemon.port}\r\n\r\n"
        tls.sendall((request + request.replace("/nope", "/")).encode())
        data = b""
        while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"</html>\n"):
            data += tls.recv(65536)
        assert data.index(b"HTTP/1.1 404") < data.index(b"HTTP/1.1 200")


# -- one port: ALPN decides -------------------------------------------------------------


def test_alpn_chooses_http_or_the_line_protocol(daemon: Daemon) -> None:
    # A browser offers h2 first: http/1.1 is selected.
    with tls_http(daemon.port, daemon.pki.ca, alpn=["h2", "http/1.1"]) as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert https_request(daemon.port, daemon.pki.ca, sock=tls)[0] == 200
    # No ALPN: the line protocol, as `openssl s_client` and chatctl get it.
    line = daemon.client()
    assert line.sock.selected_alpn_protocol() is None
    line.expect_greeting()
    # ALPN offered, but not http/1.1: refused in the handshake (RFC 7301, 3.2).
    for offer in (["h2"], ["chatd", "spdy/3"]):
        with pytest.raises(ssl.SSLError, match=r"NO_APPLICATION_PROTOCOL|no application protocol"):
            tls_http(daemon.port, daemon.pki.ca, alpn=offer)
    event = daemon.wait_for_event("tls_handshake_failed", error="no_application_protocol")
    assert event["peer"].startswith("127.0.0.1:")
    assert_healthy(daemon)


def test_web_disabled_means_no_alpn_and_lines_for_everyone(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(web={"enabled": False})
    with tls_http(daemon.port, daemon.pki.ca, alpn=["h2", "http/1.1"]) as tls:
        assert tls.selected_alpn_protocol() is None
        assert tls.recv(4096).startswith(b"HELLO 5 ")
    with tls_http(daemon.port, daemon.pki.ca, alpn=["h2"]) as tls:  # nothing to refuse for
        assert tls.recv(4096).startswith(b"HELLO 5 ")


# -- WebSocket clients chat with line clients ---------------------------------------------------


@with_io_threads(1, 2)
def test_websocket_and_line_clients_chat_in_two_rooms(start_daemon: Callable[..., Daemon], io_threads: int) -> None:
    daemon = start_daemon(server={"io_threads": io_threads})
    alice = ws_client(daemon, "alice")
    assert alice.autojoin[-1] == "CURRENT #lobby"
    bob = daemon.client("bob")
    alice.expect("JOIN #lobby bob")

    alice.send("hello from a browser")
    for client in (alice, bob):
        assert client.readline() == "MSG #lobby alice hello from a browser"
        assert set(client.last_tags) == {"id", "time"}
    bob.send("hello from a terminal")
    for client in (alice, bob):
        assert client.readline() == "MSG #lobby bob hello from a terminal"

    alice.join("#two")
    bob.join("#two")
    alice.expect("JOIN #two bob")
    alice.send("/me waves")  # to the current room, #two
    assert bob.readline() == "ACTION #two alice waves"
    assert alice.readline() == "ACTION #two alice waves"
    bob.send("/msg #lobby still here")
    assert bob.readline() == "MSG #lobby bob still here"
    assert alice.readline() == "MSG #lobby bob still here"
    bob.send("/msg alice psst")
    assert alice.readline() == "DM bob alice psst"
    assert bob.readline() == "DM bob alice psst"

    # History: a newcomer over WebSocket gets #lobby's backlog on joining, and pages it.
    carol = ws_client(daemon, "carol")
    backlog = [line for _, line in carol.backlog["#lobby"]]
    assert backlog == [
        "MSG #lobby alice hello from a browser",
        "MSG #lobby bob hello from a terminal",
        "MSG #lobby bob still here",
    ]
    carol.send("/history #lobby 2")
    assert [carol.readline() for _ in range(3)] == [
        "MSG #lobby bob hello from a terminal",
        "MSG #lobby bob still here",
        "HISTORY #lobby 2 more",
    ]
    assert carol.last_tags == {}
    assert daemon.find_events("websocket_opened")

    # Leaving: a closed WebSocket is a lost connection, told to those who shared a room.
    alice.websocket.send_close(1001)
    assert bob.expect_eventually("LEAVE alice") == "LEAVE alice connection_lost"
    assert daemon.wait_for_event("websocket_closed", code=1001, by_client=True)
    assert_healthy(daemon)


def test_messages_are_lines_limits_and_strikes(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"max_line_bytes": 256, "max_strikes": 4})
    alice = ws_client(daemon, "alice")
    ws = alice.websocket

    ws.send_text("ends with a newline\n")
    assert alice.readline() == "MSG #lobby alice ends with a newline"
    ws.send_text("ends with crlf\r\n")
    assert alice.readline() == "MSG #lobby alice ends with crlf"
    # One message is one line: a newline inside is a control character.
    ws.send_text("two\nlines")
    assert alice.readline().startswith("ERR bad_encoding ")
    # Too long: refused and dropped, as a long line is; the connection lives on.
    ws.send_text("x" * 300)
    assert alice.readline().startswith("ERR line_too_long ")
    ws.send_text("y" * 255 + "\n")  # 256 bytes with its newline: the limit, as for a line
    assert alice.readline() == "MSG #lobby alice " + "y" * 255
    ws.send_text("z" * 256)  # 256 without a newline: one too many
    assert alice.readline().startswith("ERR line_too_long ")
    # A ping is answered, whatever the session does.
    ws.ping(b"are you there")
    assert alice.sync() == []
    assert ws.pongs.popleft() == b"are you there"
    # The fourth strike.
    ws.send_text("\x00")
    assert alice.readline().startswith("ERR bad_encoding ")
    assert alice.expect_closed() == ["BYE too_many_errors"]
    assert ws.closed_with is not None and ws.closed_with.code == 1000
    assert_healthy(daemon)


def test_a_binary_message_ends_the_websocket(daemon: Daemon) -> None:
    alice = ws_client(daemon, "alice")
    bob = daemon.client("bob")
    alice.expect("JOIN #lobby bob")
    alice.websocket.send_bytes(b"binary")
    assert alice.expect_closed() == []
    assert alice.websocket.closed_with is not None and alice.websocket.closed_with.code == 1003
    assert bob.readline() == "LEAVE alice connection_lost"
    assert_healthy(daemon)


def test_shutdown_says_bye_then_going_away(daemon: Daemon) -> None:
    alice = ws_client(daemon, "alice")
    daemon.signal(signal.SIGTERM)
    assert alice.expect_closed() == ["BYE shutdown"]
    assert alice.websocket.closed_with is not None and alice.websocket.closed_with.code == 1001
    assert daemon.process is not None and daemon.process.wait(15) == 0


# -- the upgrade's rules ------------------------------------------------------------------------


def _open(daemon: Daemon, origin: str | None, host: str | None = None) -> WebSocket:
    tls = tls_http(daemon.port, daemon.pki.ca)
    return WebSocket(tls, host or f"localhost:{daemon.port}", origin)


def test_origins_allowed_and_refused(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(web={"allowed_origins": ["https://chat.example.org"]})
    port = daemon.port
    for origin in (
        f"https://localhost:{port}",
        f"HTTPS://LOCALHOST:{port}",
        "https://chat.example.org",
        "https://chat.example.org:443",
        None,
    ):
        ws = _open(daemon, origin)  # None: a program, not a browser; see docs/protocol.md
        assert ws.recv(4096).startswith(b"HELLO 5 "), origin
        ws.close()
    for origin in (
        "https://evil.example",
        f"http://localhost:{port}",
        f"https://localhost:{port + 1}",
        "https://chat.example.org:8443",
        "null",
        "not an origin",
    ):
        with pytest.raises(WebSocketRefused) as refused:
            _open(daemon, origin)
        assert refused.value.status == 403, origin
        assert_security_headers({k.decode().lower(): v.decode() for k, v in refused.value.headers.items()})
    assert daemon.find_events("websocket_refused", origin="https://evil.example")
    # Reloaded: the list applies to the next upgrade.
    daemon.config["web"] = {"allowed_origins": ["https://evil.example"]}
    daemon.write_config()
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_event("config_reloaded")
    _open(daemon, "https://evil.example").close()
    with pytest.raises(WebSocketRefused):
        _open(daemon, "https://chat.example.org")
    assert_healthy(daemon)


def test_not_a_websocket_request(daemon: Daemon) -> None:
    status, headers, _ = https_request(daemon.port, daemon.pki.ca, "GET", "/ws")
    assert (status, headers["upgrade"]) == (426, "websocket")
    upgrade = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]
    status, headers, _ = https_request(
        daemon.port, daemon.pki.ca, "GET", "/ws", headers=[*upgrade, ("Sec-WebSocket-Version", "8")]
    )
    assert (status, headers["sec-websocket-version"]) == (426, "13")
    status, _, _ = https_request(
        daemon.port,
        daemon.pki.ca,
        "GET",
        "/ws",
        headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")],
    )
    assert status == 400


# -- limits and hostile clients -----------------------------------------------------------------


def test_hostile_http_clients_are_closed_and_others_carry_on(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"handshake_timeout": 1.0})
    bob = daemon.client("bob")
    host = f"Host: localhost:{daemon.port}\r\n"

    # A head over 8 KiB, and one with too many header lines: 431, then closed.
    for head in (
        f"GET / HTTP/1.1\r\n{host}X-Big: {'a' * 9000}\r\n\r\n",
        f"GET / HTTP/1.1\r\n{host}" + "".join(f"X-{i}: {i}\r\n" for i in range(70)) + "\r\n",
    ):
        with tls_http(daemon.port, daemon.pki.ca) as tls:
            tls.sendall(head.encode())
            assert closed_by_server(tls).startswith(b"HTTP/1.1 431 ")
    # A body (chatd takes none): 413, then closed.
    with tls_http(daemon.port, daemon.pki.ca) as tls:
        tls.sendall(f"POST / HTTP/1.1\r\n{host}Content-Length: 5\r\n\r\nhello".encode())
        assert closed_by_server(tls).startswith(b"HTTP/1.1 413 ")
    # Garbage after the handshake: 400, then closed.
    with tls_http(daemon.port, daemon.pki.ca) as tls:
        tls.sendall(b"\x00\xff garbage \r\n\r\n")
        assert closed_by_server(tls).startswith(b"HTTP/1.1 400 ")
    # A head that never ends: 408 after handshake_timeout, then closed.
    with tls_http(daemon.port, daemon.pki.ca) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\n{host}X-Slow: ".encode())
        assert closed_by_server(tls).startswith(b"HTTP/1.1 408 ")
    # An idle keep-alive connection: closed after handshake_timeout, without a word.
    with tls_http(daemon.port, daemon.pki.ca) as tls:
        assert https_request(daemon.port, daemon.pki.ca, sock=tls)[0] == 200
        assert closed_by_server(tls) == b""
    for status in (431, 413, 400, 408):
        assert daemon.wait_for_event("http_error", status=status), status
    # The log line may follow the close the client saw: wait for it.
    assert daemon.wait_for_event("disconnect", reason="http_idle")
    bob.send("/ping still fine")
    assert bob.readline() == "PONG still fine"
    assert_healthy(daemon)


def test_a_websocket_that_never_registers_times_out(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"register_timeout": 1.0})
    client = ws_client(daemon)
    client.expect_greeting()
    assert client.expect_closed() == ["BYE register_timeout"]


def test_per_ip_limits_count_browsers_too(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"max_clients_per_ip": 1})
    alice = ws_client(daemon, "alice")
    status, headers, body = https_request(daemon.port, daemon.pki.ca, "GET", "/")
    assert (status, headers["retry-after"]) == (503, "60"), body
    with pytest.raises(WebSocketRefused) as refused:
        _open(daemon, None)
    assert refused.value.status == 503
    alice.send("/ping")
    assert alice.readline() == "PONG"
    assert daemon.find_events("rejected", reason="too_many_connections")


@with_io_threads(1, 2)
def test_a_websocket_that_stops_reading_is_a_slow_consumer(
    start_daemon: Callable[..., Daemon], io_threads: int
) -> None:
    daemon = start_daemon(
        server={"io_threads": io_threads}, limits={"send_queue_bytes": 64 * 1024, "max_line_bytes": 8192}
    )
    sleeper = ws_client(daemon, "sleeper")
    sleeper.websocket.tls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    talker = daemon.client("talker")
    talker.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sleeper.expect("JOIN #lobby talker")
    long_text = "x" * 8000
    n = 0
    others = []  # what the talker got besides its own lines: the sleeper's LEAVE, at some point
    while not daemon.find_events("slow_consumer", nick="sleeper"):
        assert n < 1000, "the sleeper never overflowed"
        talker.send(f"{n} {long_text}")
        while not (line := talker.readline(timeout=10)).startswith("MSG #lobby talker "):
            others.append(line)
        n += 1
    # Reading again: whole messages (frames never cut), then the BYE, then the close frame.
    lines = sleeper.expect_closed(timeout=10)
    assert lines[-1] == "BYE slow_consumer"
    for k, line in enumerate(lines[:-1]):
        assert line == f"MSG #lobby talker {k} {long_text}", (k, line[:40])
    assert sleeper.websocket.closed_with is not None and sleeper.websocket.closed_with.code == 1000
    if not others:
        others.append(talker.expect_eventually("LEAVE sleeper"))
    assert others == ["LEAVE sleeper slow_consumer"]
    assert_healthy(daemon)


def test_many_websockets_fan_out(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(server={"io_threads": 2})
    clients = [ws_client(daemon, f"w{i}") for i in range(10)]
    line = daemon.client("line")
    for i, client in enumerate(clients):
        client.send(f"from {i}")
    expected = {f"MSG #lobby w{i} from {i}" for i in range(10)}

    def messages(client: Any) -> set[str]:
        seen = set()
        while len(seen) < 10:
            text = client.readline()
            if text.startswith("MSG "):
                seen.add(text)
        return seen

    assert messages(line) == expected
    for client in clients:
        assert messages(client) == expected
    wait_until(lambda: len(daemon.find_events("websocket_opened")) == 10, 5, "10 websockets logged")
