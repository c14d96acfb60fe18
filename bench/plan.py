"""The run plan of `python -m bench`: every scenario key and its spec, full
(`FULL`) and `--quick` (`QUICK`), and the windows, sizes and limits they
share (the senders' `WINDOW`, `LINES`, capacity's, churn's, the seed's).
Data only. Choosing targets and scenarios from the arguments, running them
and writing the results is cli.py's; running a spec is the generator's
(loadgen.py, scenarios.py).
"""

from __future__ import annotations

from typing import Any

from bench import accounts, history

# How the senders drive the server (bench/README.md, "Method"): batches of 10
# lines, each batch ending with a PING; at most 3 batches unacknowledged.
# 3 × (10 × 56 + 10) bytes stays below ngircd's 2048-byte read buffer, which
# it enforces by disconnecting. "packed": a batch's lines in one TLS record
# (as before, comparable with earlier results); "lines": one TLS record and one
# send() per line, as people send.
WINDOW = {"batch": 10, "marks": 3, "records": "packed", "lag": 2000, "samples": 5}
LINES = {**WINDOW, "records": "lines"}
# Slow consumer: 50 clients all chatting with 250-byte lines, so that what the
# non-reader is owed (50 × M × 250 B) is far more than the kernel buffers take
# on loopback (the server's send buffer grows past 1 MiB), and its queue must
# overflow. The window shrinks to stay under ngircd's 2 KiB read buffer.
SLOW = {"scenario": "slow", "n": 50, "s": 50, "pad": 200, **WINDOW, "batch": 2, "marks": 3}

# Capacity: the generator's clients skip certificate checks. The server's work
# is the same, and a check cost the generator (one core, OpenSSL 3.0) a fifth
# of its handshake time, enough to make it the bottleneck. They come from 8
# loopback addresses (local ports), register 1,000 at a time (a storm of
# 20,000 JOINs is more than the generator can read: harness.register_in_waves),
# and RSS is read after 40 s of quiet (chatd gives back an idle
# connection's TLS buffers within about 30 s).
CAPACITY = {"verify": False, "sources": 8, "idle_wait": 40, "register_wave": 1000}
# Issue 25: 20,000 idle clients, or as many as the descriptor limit allows
# (`loadgen.fit_capacity`). Everyone in #lobby is O(N²) JOINs: give it time.
CAPACITY_CLIENTS = 20000
# Churn: 40 clients at a time, in turn garbage, a truncated ClientHello, a
# full session that quits, one that just closes (bench/churn.py); then the
# server's RSS after 10 s of quiet. No certificate checks, as in capacity.
CHURN = {"scenario": "churn", "concurrency": 40, "idle": 10, "timeout": 20, "verify": False}
# Rooms: 1,000 clients in 100 rooms of 10, every client sending to its room
# with the fan-out window, one record per line, as people send (bench/rooms.py).
# 1,000 is chatd's default max_clients: the generator opens no other connection.
ROOMS = {"scenario": "rooms", "n": 1000, "rooms": 100, **LINES, "samples": 10}
# WebSocket (issue 13): chatd's lines one per text message, after ALPN http/1.1 and
# `GET /ws`, as its web client speaks them; fanout-ws is fanout-50 over WebSockets,
# idle-ws the capacity scenario's idle clients (RSS per client) over WebSockets.
WS = {"websocket": True}
# Accounts (issue 21, bench/accounts.py): sign-ins at most 24 at once (under the
# auth queue's 32); a flood of 48 connections (more than the queue holds, so some
# are answered auth_busy) against 300 accounts with wrong passwords and 12 with
# right ones; a /ping every 10 ms. These keys start their own chatd, or none.
ACCOUNTS = {"scenario": "accounts", "concurrency": 24, "flood": 48, "victims": 300, "ping_ms": 10}
OWN_SERVER = ("history-", "accounts")
# Paced load at the rates of issue 25: messages spread out in time, so that a
# turn has little to coalesce; what matters is the server's CPU per delivered
# line and the latency, beside ngircd's. Named load-*, not paced-*, so that
# the targets that run "paced" (the seed, chatd-ioN) do not run these too.
LOAD: list[tuple[str, dict[str, Any]]] = [
    (f"load-{n}x{rate}", {"scenario": "paced", "n": n, "rate": rate, "duration": 10})
    for n, rate in ((100, 2000), (200, 5000), (1000, 500))
]

# Issue 24: a room of 50 dealt over three nodes of a cluster (target
# chatd-cluster3), 1,000 messages/s from the first node's clients, latency
# at 7 of the other nodes' (bench/scenarios.py, `paced` with `ports`).
CROSS = ("cross-50x1000", {"scenario": "paced", "n": 50, "rate": 1000, "duration": 10, "samples": 5})

FULL: list[tuple[str, dict[str, Any]]] = [
    ("fanout-50", {"scenario": "fanout", "n": 50, "s": 10, "m": 2000, **WINDOW}),
    ("fanout-200", {"scenario": "fanout", "n": 200, "s": 20, "m": 500, **WINDOW}),
    ("fanout-1000", {"scenario": "fanout", "n": 1000, "s": 10, "m": 100, **WINDOW}),
    ("fanout-lines-50", {"scenario": "fanout", "n": 50, "s": 10, "m": 2000, **LINES}),
    ("fanout-lines-200", {"scenario": "fanout", "n": 200, "s": 20, "m": 500, **LINES}),
    ("paced", {"scenario": "paced", "n": 100, "rate": 200, "duration": 20}),
    *LOAD,
    CROSS,
    (
        "capacity",
        {"scenario": "capacity", "clients": CAPACITY_CLIENTS, "concurrency": 100, "deadline": 3000, **CAPACITY},
    ),
    ("churn", {**CHURN, "duration": 60}),
    ("slow-without", {**SLOW, "m": 2000}),
    ("slow-with", {**SLOW, "m": 2000, "nonreader": True}),
    ("rooms", {**ROOMS, "m": 200}),
    ("fanout-ws", {"scenario": "fanout", "n": 50, "s": 10, "m": 2000, **WINDOW, **WS}),
    (
        "idle-ws",
        {"scenario": "capacity", "clients": CAPACITY_CLIENTS, "concurrency": 100, "deadline": 3000, **CAPACITY, **WS},
    ),
    (history.STORE, {"scenario": history.STORE, "events": 200_000, "rooms": 100}),
    (history.BACKLOG, {"scenario": history.BACKLOG, "joins": 2000, "text_bytes": 100}),
    (accounts.KEY, {**ACCOUNTS, "logins": 800, "phases": 3, "phase_s": 6}),
    (accounts.SHARED, {**ACCOUNTS, "parts": ["flood"], "placement": "shared", "phases": 3, "phase_s": 6}),
]
QUICK: list[tuple[str, dict[str, Any]]] = [
    ("fanout-50", {"scenario": "fanout", "n": 50, "s": 10, "m": 500, **WINDOW}),
    ("fanout-200", {"scenario": "fanout", "n": 200, "s": 20, "m": 100, **WINDOW}),
    ("fanout-1000", {"scenario": "fanout", "n": 1000, "s": 10, "m": 20, **WINDOW}),
    ("fanout-lines-50", {"scenario": "fanout", "n": 50, "s": 10, "m": 500, **LINES}),
    ("fanout-lines-200", {"scenario": "fanout", "n": 200, "s": 20, "m": 100, **LINES}),
    ("paced", {"scenario": "paced", "n": 100, "rate": 200, "duration": 5}),
    *[(key, {**spec, "duration": 5}) for key, spec in LOAD],
    (CROSS[0], {**CROSS[1], "duration": 5}),
    ("capacity", {"scenario": "capacity", "clients": 1000, "concurrency": 100, "deadline": 60, **CAPACITY}),
    ("churn", {**CHURN, "duration": 15, "idle": 5}),
    ("slow-without", {**SLOW, "m": 600}),
    ("slow-with", {**SLOW, "m": 600, "nonreader": True}),
    ("rooms", {**ROOMS, "m": 100}),
    ("fanout-ws", {"scenario": "fanout", "n": 50, "s": 10, "m": 500, **WINDOW, **WS}),
    ("idle-ws", {"scenario": "capacity", "clients": 1000, "concurrency": 100, "deadline": 60, **CAPACITY, **WS}),
    (history.STORE, {"scenario": history.STORE, "events": 50_000, "rooms": 100}),
    (history.BACKLOG, {"scenario": history.BACKLOG, "joins": 300, "text_bytes": 100}),
    (accounts.KEY, {**ACCOUNTS, "logins": 200, "phases": 2, "phase_s": 4}),
    (accounts.SHARED, {**ACCOUNTS, "parts": ["flood"], "placement": "shared", "phases": 2, "phase_s": 4}),
]
# The seed corrupts or stalls early; don't wait long for what will not come.
SEED_LIMITS = {"deadline": 30, "idle": 3.0, "connect_timeout": 60}
