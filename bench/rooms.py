"""Rooms: N clients in R rooms of N/R (1,000 in 100 rooms of 10), every client
sending to its own room, as fast as the server takes them, run inside the
load-generator process like the scenarios of scenarios.py.

Set-up (not measured): client i registers into room `#r<i // size>`. A chatd
client is put in `#lobby` by the autojoin, then `/join`s its room and
`/part`s `#lobby`; an IRC client `JOIN`s its channel instead of `#bench`. So
every client ends in exactly one room, the same for both servers
(dialects.py's registrations). Then one barrier per room: the room's first
client sends `SYNC-BARRIER` there, and its members skip the set-up's lines
(JOIN, PART) until they see it.

Run: every client is a sender with the fan-out window (batches of `batch`
lines, each closed by a ping, at most `marks` unacknowledged), and a receiver
of its room's lines. One client in each of `samples` rooms, spread over the
range, takes the latency of every line and checks each line's format, each
sender's order, and that every sender it hears is in its room.
"""

from __future__ import annotations

import time
from typing import Any

from bench.engine import Conn, perf_ns
from bench.measure import Meter, Proc, percentiles
from bench.scenarios import Spec, _engine, _fail_result, _nick, _tls_info, barrier, connect_all


def room_name(group: int, rooms: int) -> str:
    return f"#r{group:0{len(str(rooms - 1))}d}"


def rooms(spec: Spec) -> dict[str, Any]:
    n, n_rooms, m = spec["n"], spec["rooms"], spec["m"]
    size = -(-n // n_rooms)  # clients per room; the last room may be smaller
    engine = _engine(spec)
    dialect = engine.dialect
    server = Proc(spec.get("server_pid"))
    samples = min(spec.get("samples", 10), n_rooms)
    sampled = {k * n_rooms // samples for k in range(samples)}
    groups = [i // size for i in range(n)]
    members: dict[int, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    conns = [
        Conn(
            engine,
            i,
            _nick(i),
            sender_id=i,
            privileged=True,
            room=room_name(groups[i], n_rooms),
            group=groups[i],
            sample=groups[i] in sampled and i == members[groups[i]][-1],
        )
        for i in range(n)
    ]
    for conn in conns:
        conn.validate = conn.sample
    t0 = time.monotonic()
    outcome = connect_all(engine, conns, spec.get("concurrency", 50), spec.get("connect_timeout", 120))
    if outcome != "done" or engine.connect_failed:
        return _fail_result(spec, engine, "connect", outcome)
    leaders = [conns[ids[0]] for ids in members.values()]
    outcome = barrier(engine, conns, 60, leaders)
    if outcome != "done":
        return _fail_result(spec, engine, "barrier", outcome)
    setup_s = time.monotonic() - t0

    own = 0 if dialect.echo else m
    for conn in conns:
        conn.expected = len(members[conn.group]) * m - own
        conn.to_send = m
        conn.batch = spec.get("batch", 10)
        conn.max_marks = spec.get("marks", 1)
    expected_at_start = sum(c.expected for c in conns)
    engine.fanouts = [len(members[g]) - (0 if dialect.echo else 1) for g in range(len(members))]
    engine.sent_by_group = [0] * len(members)
    engine.lag_limit = spec.get("lag", 2000) * n
    engine.finishers = n
    engine.records = spec.get("records", "lines")
    engine.readers = conns
    engine.quickack = bool(spec.get("quickack", True))

    meter = Meter(server)
    rss_before = server.rss_kib()
    t_start = perf_ns()
    for conn in conns:
        conn.pump()
    outcome = engine.run(
        lambda: engine.finished >= engine.finishers, spec.get("deadline", 120), idle=spec.get("idle", 5.0)
    )
    t_end = engine.t_all_finished if outcome == "done" else max(engine.t_last_progress, t_start)
    if t_end <= t_start:
        t_end = perf_ns()
    cpu = meter.result()
    rss_after = server.rss_kib()
    elapsed = max((t_end - t_start) / 1e9, 1e-9)
    delivered = sum(c.count for c in conns)
    expected = sum(c.expected for c in conns)
    sent = sum(c.sent for c in conns)
    latencies = [v for c in conns if c.latencies is not None for v in c.latencies]
    result: dict[str, Any] = {
        **spec,
        "ok": outcome == "done" and engine.failed_receivers == 0,
        "outcome": outcome,
        "room_size": size,
        "setup_s": round(setup_s, 2),
        "elapsed_s": round(elapsed, 3),
        "delivered": delivered,
        "expected": expected,  # less what dropped senders never sent
        "expected_at_start": expected_at_start,
        "lost": expected - delivered,
        "corrupt": sum(c.corrupt for c in conns),
        "order_errors": sum(c.order_errors for c in conns if c.validate),
        "wrong_room": _strangers(conns, members),
        "failed_receivers": engine.failed_receivers,
        "failed_senders": engine.failed_senders,
        "unsent": engine.unsent,
        "msgs_per_s": round(delivered / elapsed),
        # Messages the server took in per second: the same unit for a server
        # that echoes a sender's line (chatd) and one that does not (IRC).
        "sent_per_s": round(sent / elapsed),
        "sent": sent,
        "ack_rtt": percentiles(engine.mark_rtts),
        "latency": percentiles(latencies),
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_after,
        "errors": dict(engine.errors.most_common(8)),
        "tls": _tls_info(conns),
        **cpu,
    }
    if dialect.kind == "irc":
        result["flood_exempt_senders"] = sum(1 for c in conns if c.registration.flood_exempt)
    engine.close_all()
    return result


def _strangers(conns: list[Conn], members: dict[int, list[int]]) -> int:
    """Senders a validating client heard that are not in its room."""
    count = 0
    for conn in conns:
        if conn.validate:
            mine = {b"%04d" % i for i in members[conn.group]}
            count += sum(1 for sender in conn.last_seq if sender not in mine)
    return count
