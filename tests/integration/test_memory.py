"""What an idle client costs the daemon in memory (issue 25): 1,000 registered
clients, line clients and WebSocket clients, all in #lobby, then idle; the
daemon's RSS (`/proc/<pid>/smaps_rollup`) must come down to a bound per
client once its idle sweep has given back what idle connections need not
hold (docs/architecture.md, "Memory per connection"). The bound is generous
(the bench measures the real figure, at 20,000 clients); it is what this
test checks that the mechanisms work at all.

The clients are the bench's engine (one epoll loop, non-blocking TLS), as in
test_bench_smoke.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bench.engine import Conn
from bench.harness import handshake_then_register, make_engine, nick
from tests.conftest import wait_until

CLIENTS = 1000
# KiB of RSS per idle client, at most. Before issue 25: 40.2 (line) and 45.9
# (WebSocket) at 1,000 clients here; after: about 21.
BOUND_KIB = 25.0


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                return int(line.split()[1])
    raise AssertionError("no Rss in smaps_rollup")


@pytest.mark.parametrize("websocket", [False, True], ids=["lines", "websocket"])
def test_idle_clients_cost_little_memory(start_daemon: Callable[..., Any], websocket: bool) -> None:
    daemon = start_daemon(limits={"max_clients": CLIENTS + 10}, log={"format": "json", "level": "info"})
    before = _rss_kib(daemon.pid)
    engine = make_engine(
        {"host": "127.0.0.1", "port": daemon.port, "dialect": "chatd", "ca": str(daemon.pki.ca), "websocket": websocket}
    )
    conns = [Conn(engine, i, nick(i)) for i in range(CLIENTS)]

    def drain(buf: bytearray | bytes, n: int) -> None:
        pass  # the JOINs of those who came later: read and dropped

    def idle(conn: Conn) -> None:
        conn.feed = drain

    try:
        assert handshake_then_register(engine, conns, 100, 300, idle) == "done", dict(engine.errors)
        assert engine.registered == CLIENTS

        kib = [0.0]

        def small_enough() -> bool:
            engine.run(lambda: False, 0.5)  # keep reading: the clients stay connected and drained
            kib[0] = (_rss_kib(daemon.pid) - before) / CLIENTS
            return kib[0] <= BOUND_KIB

        # The sweep visits every connection once per 10 s and frees what was idle
        # for a whole round, then trims the heap: within 30 s, on a busy machine too.
        try:
            wait_until(small_enough, 60, f"RSS per idle client ≤ {BOUND_KIB} KiB")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it stayed at {kib[0]:.1f} KiB") from None
        assert all(conn.state == "open" for conn in conns)
    finally:
        engine.close_all()
