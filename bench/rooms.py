"""Rooms: N clients in R rooms of N/R (1,000 in 100 rooms of 10), every client
sending to its own room, as fast as the server takes them, run inside the
load-generator process like the scenarios of scenarios.py, with the same
measured phase as fan-out (phase.py).

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

from bench.engine import Conn
from bench.harness import Spec, barrier, connect_all, fail_result, make_engine, nick, tls_info
from bench.measure import Proc
from bench.phase import measure_phase


def room_name(group: int, rooms: int) -> str:
    return f"#r{group:0{len(str(rooms - 1))}d}"


def rooms(spec: Spec) -> dict[str, Any]:
    n, n_rooms, m = spec["n"], spec["rooms"], spec["m"]
    size = -(-n // n_rooms)  # clients per room; the last room may be smaller
    engine = make_engine(spec)
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
            nick(i),
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
        return fail_result(spec, engine, "connect", outcome)
    leaders = [conns[ids[0]] for ids in members.values()]
    outcome = barrier(engine, conns, 60, leaders)
    if outcome != "done":
        return fail_result(spec, engine, "barrier", outcome)
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

    measured = measure_phase(spec, engine, server, conns, conns)
    result: dict[str, Any] = {
        **spec,
        "room_size": size,
        "setup_s": round(setup_s, 2),
        "expected_at_start": expected_at_start,
        **measured,
        "wrong_room": _strangers(conns, members),
        "tls": tls_info(conns),
    }
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
