"""chatd/metrics.py and chatd/metrics_http.py without a daemon: the collector's
names, types and labels, stats sources, and the listener's answers and limits."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from chatd import metrics, metrics_http
from chatd.metrics_http import Handler, MetricsServer
from chatd.stats import DISCONNECT_REASONS, StoreStats
from tests.conftest import fake_snapshot as snapshot
from tests.conftest import http_exchange, http_get
from tests.conftest import render_metrics as render

REPO = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def types(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def test_every_figure_becomes_a_metric() -> None:
    found = samples(render(snapshot()))
    assert found["chatd_clients", (("state", "registering"),)] == 2
    assert found["chatd_connections_accepted_total", ()] == 10
    assert found["chatd_connections_refused_total", (("reason", "server_full"),)] == 1
    assert found["chatd_disconnects_total", (("reason", "quit"),)] == 5
    assert found["chatd_tls_handshake_failures_total", ()] == 2
    assert found["chatd_lines_received_total", ()] == 100
    assert found["chatd_lines_delivered_total", ()] == 300
    assert found["chatd_received_bytes_total", ()] == 5000
    assert found["chatd_sent_bytes_total", ()] == 15000
    assert found["chatd_messages_received_total", ()] == 90
    assert found["chatd_rate_limited_lines_total", ()] == 4
    assert found["chatd_slow_consumers_total", ()] == 1
    assert found["chatd_rooms", ()] == 3 and found["chatd_room_members", ()] == 7
    assert found["chatd_send_queue_bytes", ()] == 2048
    assert found["chatd_send_queue_largest_bytes", ()] == 1024
    assert found["chatd_io_worker_lag_seconds", (("worker", "chatd-io-1"),)] == 3.5
    assert found["chatd_io_worker_up", (("worker", "chatd-io-0"),)] == 1
    assert found["chatd_io_worker_up", (("worker", "chatd-io-1"),)] == 0
    assert found["chatd_config_reloads_total", (("result", "failure"),)] == 1
    assert found["chatd_tls_cert_expiry_timestamp_seconds", ()] == 1_900_000_000
    assert any(name == "chatd_build_info" for name, _ in found)
    assert found["process_open_fds", ()] > 0


def test_counters_are_counters_and_end_in_total() -> None:
    text = render(snapshot())
    for name, kind in types(text).items():
        if name.startswith("chatd_"):
            assert (kind == "counter") == name.endswith("_total"), (name, kind)


def test_an_unknown_certificate_expiry_is_left_out() -> None:
    assert "chatd_tls_cert_expiry_timestamp_seconds" not in render(snapshot(cert_expiry=None))


def test_a_stats_source_gives_counters_and_gauges() -> None:
    text = render(snapshot())
    kinds = types(text)
    assert kinds["chatd_history_rows_written_total"] == "counter"
    assert kinds["chatd_history_write_failures_total"] == "counter"
    assert kinds["chatd_history_write_lag_seconds"] == "gauge"
    assert kinds["chatd_history_dropped_total"] == "counter"
    assert kinds["chatd_history_waiting_events"] == "gauge"
    assert "# HELP chatd_history_rows_written_total Events written to the history store." in text
    found = samples(text)
    assert found["chatd_history_write_lag_seconds", ()] == 0.25


def test_a_source_key_that_cannot_be_a_metric_name_is_left_out() -> None:
    text = render(snapshot(sources={"search": {"queries_total": 3.0, "Bad-Key": 1.0, "": 2.0}}))
    assert "chatd_search_queries_total 3.0" in text
    assert "# HELP chatd_search_queries_total queries_total as reported by chatd's search component." in text
    assert "Bad" not in text


def test_every_protocol_reason_code_has_its_series() -> None:
    doc = (REPO / "docs" / "protocol.md").read_text()
    section = doc.split("\n## Reason codes\n", 1)[1].split("\n## ", 1)[0]
    codes = re.findall(r"^\| `([a-z_]+)` \|", section, re.M)
    assert codes and set(codes) <= set(DISCONNECT_REASONS)


# -- the handler: one request head in, one response out ---------------------------------------


def handler(accepting: bool = True) -> Handler:
    return Handler(lambda: b"chatd_rooms 1\n", metrics.CONTENT_TYPE, lambda: accepting)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x", 200),
        (b"GET /metrics?name[]=chatd_rooms HTTP/1.0", 200),
        (b"GET /healthz HTTP/1.1", 200),
        (b"GET / HTTP/1.1", 404),
        (b"GET /metricsx HTTP/1.1", 404),
        (b"POST /metrics HTTP/1.1", 405),
        (b"HEAD /healthz HTTP/1.1", 405),
        (b"PUT /nothing HTTP/1.1", 404),
        (b"GET /metrics", 400),
        (b"GET /metrics HTTP/2.0", 400),
        (b"GET  /metrics HTTP/1.1", 400),
        (b"\x16\x03\x01\x00\xa5\x01\x00", 400),
        (b"", 400),
    ],
)
def test_answers(head: bytes, status: int) -> None:
    answer = handler().answer(head)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert b"\r\nConnection: close\r\n" in answer


def test_metrics_answer() -> None:
    answer = handler().answer(b"GET /metrics HTTP/1.1")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert body == b"chatd_rooms 1\n"
    assert b"\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n" in head
    assert b"\r\nContent-Length: 14\r\n" in head


def test_healthz_is_503_once_chatd_stops_accepting() -> None:
    assert handler(accepting=False).answer(b"GET /healthz HTTP/1.1").startswith(b"HTTP/1.1 503 ")
    assert handler(accepting=False).answer(b"GET /metrics HTTP/1.1").startswith(b"HTTP/1.1 200 ")


def test_405_says_what_is_allowed() -> None:
    assert b"\r\nAllow: GET\r\n" in handler().answer(b"DELETE /metrics HTTP/1.1")


@pytest.mark.parametrize(
    "head",
    [
        b"GET /metrics HTTP/1.1x",  # not a version
        b"GET /metrics HTTP/1.1\r\nno colon here",
        b"GET /metrics HTTP/1.1\r\nX-A : b",  # whitespace before the colon (RFC 9112, 5.1)
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b",
        b"GET /metrics HTTP/1.1\r\nX-A: b\x00c",
        b"GET /met\x7frics HTTP/1.1",
    ],
)
def test_a_malformed_head_is_400_as_h11_reads_it(head: bytes) -> None:
    assert handler().answer(head).startswith(b"HTTP/1.1 400 ")


def test_a_head_request_gets_no_body() -> None:
    assert handler().answer(b"HEAD /healthz HTTP/1.1\r\nHost: x").endswith(b"\r\n\r\n")


# -- the listener ------------------------------------------------------------------------------


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[MetricsServer]:
    monkeypatch.setattr(metrics_http, "HEAD_TIMEOUT", 0.3)
    monkeypatch.setattr(metrics_http, "REQUEST_TIMEOUT", 0.5)
    monkeypatch.setattr(metrics_http, "MAX_CONNECTIONS", 3)
    server = MetricsServer(("127.0.0.1", 0), handler())
    server.start()
    yield server
    server.stop()
    assert not [t for t in threading.enumerate() if t.name == "chatd-metrics"]


def test_serves_and_closes(listener: MetricsServer) -> None:
    status, headers, body = http_get(listener.address, "/metrics")
    assert (status, body) == (200, b"chatd_rooms 1\n")
    assert headers["connection"] == "close"


def test_a_head_in_many_pieces(listener: MetricsServer) -> None:
    with socket.create_connection(listener.address, timeout=5) as sock:
        for piece in (b"GET /hea", b"lthz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(0.01)  # separate segments; not for synchronisation
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


def test_a_stalled_request_is_closed_at_its_deadline(listener: MetricsServer) -> None:
    with socket.create_connection(listener.address, timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        assert sock.recv(4096) == b""  # closed without an answer


def test_an_oversized_head_is_refused(listener: MetricsServer) -> None:
    reply = http_exchange(listener.address, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")


@pytest.fixture
def crowded(monkeypatch: pytest.MonkeyPatch) -> Iterator[MetricsServer]:
    """Three connections at once, and deadlines no test here reaches."""
    for name in ("HEAD_TIMEOUT", "REQUEST_TIMEOUT", "LINGER"):
        monkeypatch.setattr(metrics_http, name, 60.0)
    monkeypatch.setattr(metrics_http, "MAX_CONNECTIONS", 3)
    server = MetricsServer(("127.0.0.1", 0), handler())
    server.start()
    yield server
    server.stop()


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)  # an answer, or b"" for the end: either way, not waiting
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(5)
    return False


def test_past_the_cap_the_oldest_silent_peer_makes_room(crowded: MetricsServer) -> None:
    # Issue 19: at the cap the listener stopped accepting, so silent peers, 16 at a
    # time, held every scrape in the backlog until their deadlines ran out.
    with capture_logs() as logs:
        held = [socket.create_connection(crowded.address, timeout=5) for _ in range(3)]
        try:
            assert http_get(crowded.address, "/healthz")[0] == 200  # now, not after a deadline
            assert held[0].recv(4096) == b""  # the oldest silent one went for the newcomer
            assert _still_open(held[1]) and _still_open(held[2])
        finally:
            for sock in held:
                sock.close()
    assert [e["stage"] for e in logs if e["event"] == "metrics_request_evicted"] == ["reading"]


def test_a_peer_being_answered_is_not_pushed_out_by_silent_ones(crowded: MetricsServer) -> None:
    with capture_logs() as logs, socket.create_connection(crowded.address, timeout=5) as answered:
        answered.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        reply = b""
        while not reply.endswith(b"ok\n"):
            reply += answered.recv(4096)  # and it does not hang up: the listener lingers
        older = socket.create_connection(crowded.address, timeout=5)
        newer = socket.create_connection(crowded.address, timeout=5)
        with older, newer, socket.create_connection(crowded.address, timeout=5):
            assert older.recv(4096) == b""  # the oldest silent one made room, not `answered`
            assert _still_open(newer)
    assert [e["stage"] for e in logs if e["event"] == "metrics_request_evicted"] == ["reading"]


def test_silent_peers_are_closed_at_their_deadline(listener: MetricsServer) -> None:
    with capture_logs() as logs:
        held = [socket.create_connection(listener.address, timeout=5) for _ in range(2)]
        for sock in held:
            assert sock.recv(4096) == b""
            sock.close()
    assert [e["stage"] for e in logs if e["event"] == "metrics_request_timed_out"] == ["reading", "reading"]


def test_a_trickling_peer_cannot_extend_its_deadline(listener: MetricsServer) -> None:
    with capture_logs() as logs, socket.create_connection(listener.address, timeout=5) as sock:
        try:
            for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
                sock.send(bytes([byte]))
                time.sleep(0.01)  # a trickle, not a synchronisation: the deadline cuts it
            raise AssertionError("a trickle of 1000 bytes was never cut off")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed at its deadline, with the trickle unread: a reset
    assert [e["stage"] for e in logs if e["event"] == "metrics_request_timed_out"] == ["reading"]


def test_many_scrapes_in_a_row(listener: MetricsServer) -> None:
    for _ in range(50):
        assert http_get(listener.address, "/metrics")[0] == 200


def test_a_port_in_use_is_an_oserror() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = MetricsServer(busy.getsockname(), handler())
        with pytest.raises(OSError):
            server.start()


def test_a_crashing_collector_costs_one_request() -> None:
    calls: list[int] = []

    def flaky() -> bytes:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return b"ok 1\n"

    server = MetricsServer(("127.0.0.1", 0), Handler(flaky, metrics.CONTENT_TYPE, lambda: True))
    server.start()
    try:
        assert http_exchange(server.address, b"GET /metrics HTTP/1.1\r\n\r\n") == b""  # no answer
        assert http_get(server.address, "/metrics")[2] == b"ok 1\n"
    finally:
        server.stop()


def test_store_stats_name_the_history_stores_counters() -> None:
    class Store:
        def stats(self) -> dict[str, int]:
            return {"written": 7, "waiting": 2, "dropped": 1, "write_failures": 3, "last_id": 99}

    assert StoreStats(Store()).stats() == {
        "rows_written_total": 7,
        "write_failures_total": 3,
        "dropped_total": 1,
        "waiting_events": 2,
    }
    text = render(snapshot(sources={"history": StoreStats(Store()).stats()}))
    assert "chatd_history_rows_written_total 7.0" in text and "last_id" not in text
