"""Fan-out, paced, capacity and slow consumer (churn is in churn.py, rooms in
rooms.py; `run_scenario` runs any of them), run inside the load-generator
process against one already-running server. Each returns a flat dict of
parameters and metrics (one JSON line of bench/results.jsonl). What they all
set up alike is in harness.py; the measured phase that fan-out and rooms
share is in phase.py.

Common shape: connect and register every client (bounded concurrency), pass a
barrier (client 0 sends `SYNC-BARRIER`; everyone skips lines until they see
it, so JOIN noise from the set-up never counts), then run, then summarise.

Method, in short (bench/README.md has the long form):
- fan-out: S senders × M messages. A sender keeps at most `marks` batches of
  `batch` messages unacknowledged: each batch ends with a PING (chatd `/ping`,
  IRC `PING`) and the PONG, which the server sends only after it has handled
  the batch, acknowledges it. The seed has no ping, so its senders watch for
  their own echo. On top, all senders pause while the receivers as a whole are
  more than `lag` messages per receiver behind, so no server queue grows
  without bound if the generator falls behind (it then shows in its CPU%).
- paced: every client sends in turn, open loop, at a fixed total rate.
- capacity: idle clients connect and register; handshakes/s and RSS.
- slow: fan-out with one extra client that registers and then never reads.
"""

from __future__ import annotations

import time
from typing import Any

from bench.churn import churn
from bench.engine import Conn, perf_ns
from bench.harness import Spec, barrier, connect_all, fail_result, make_engine, nick, register_in_waves, tls_info
from bench.loop import Engine
from bench.measure import Meter, Proc, percentiles
from bench.phase import measure_phase
from bench.rooms import rooms


def run_scenario(spec: Spec) -> dict[str, Any]:
    """The record of one run of `spec["scenario"]`."""
    runner = {"fanout": fanout, "slow": fanout, "paced": paced, "capacity": capacity, "churn": churn, "rooms": rooms}
    return runner[spec["scenario"]](spec)


# -- fan-out and slow consumer --------------------------------------------------------------


def fanout(spec: Spec, meter: type[Meter] = Meter) -> dict[str, Any]:
    """S senders and N - S receivers in one room; `meter` measures the phase
    (bench/callgrind.py passes one that also counts the server's instructions)."""
    n, s, m = spec["n"], spec["s"], spec["m"]
    samples = spec.get("samples", 5)
    engine = make_engine(spec)
    dialect = engine.dialect
    server = Proc(spec.get("server_pid"))
    sample_from = n - samples  # the last clients: receivers only, unless everyone sends
    conns = [
        Conn(engine, i, nick(i), sender_id=i if i < s else -1, sample=i >= sample_from, privileged=i < s)
        for i in range(n)
    ]
    for conn in conns:
        # One sample also checks every line's format and per-sender order; with
        # the seed, whose streams get corrupted, every client does.
        conn.validate = conn.index == sample_from or dialect.body_at_start
        conn.parse = bool(spec.get("parse_all"))
    nonreader = None
    if spec.get("nonreader"):
        nonreader = Conn(engine, n, nick(n), rcvbuf=spec.get("nonreader_rcvbuf", 4096))
        conns.append(nonreader)
        engine.watch = nonreader.nick.encode()
    t0 = time.monotonic()
    outcome = connect_all(engine, conns, spec.get("concurrency", 50), spec.get("connect_timeout", 120))
    if outcome != "done" or engine.connect_failed:
        return fail_result(spec, engine, "connect", outcome)
    outcome = barrier(engine, conns, 30)
    if outcome != "done":
        return fail_result(spec, engine, "barrier", outcome)
    setup_s = time.monotonic() - t0

    readers = [c for c in conns if c is not nonreader]
    total_msgs = s * m
    for conn in readers:
        own = m if 0 <= conn.sender_id and not dialect.echo else 0
        conn.expected = total_msgs - own
    expected_at_start = sum(c.expected for c in readers)
    engine.fanouts = [len(readers) - (0 if dialect.echo else 1)]
    engine.lag_limit = spec.get("lag", 2000) * len(readers)
    engine.finishers = len(readers)
    engine.records = spec.get("records", "lines")
    engine.readers = readers
    engine.quickack = bool(spec.get("quickack", True))
    engine.pad = b" " + b"x" * spec["pad"] if spec.get("pad") else b""
    if nonreader is not None:
        nonreader.stop_reading()
    senders = [c for c in conns if c.sender_id >= 0]
    for conn in senders:
        conn.to_send = m
        conn.batch = spec.get("batch", 10)
        conn.max_marks = spec.get("marks", 2)
    stall = spec.get("stall", 1.0)
    if dialect.window == "echo":

        def check() -> None:
            for sender in senders:
                sender.check_stall(stall)
            engine.call_at(time.monotonic() + 0.1, check)

        engine.call_at(time.monotonic() + 0.1, check)

    measured = measure_phase(spec, engine, server, senders, readers, meter)
    result: dict[str, Any] = {
        **spec,
        "setup_s": round(setup_s, 2),
        "expected_at_start": expected_at_start,
        **measured,
        "window_stalls": sum(c.stalls for c in senders),
        "tls": tls_info(conns),
    }
    if nonreader is not None:
        result.update(_check_nonreader(engine, nonreader))
    engine.close_all()
    return result


def _check_nonreader(engine: Engine, conn: Conn) -> dict[str, Any]:
    """Was the client that never read disconnected? Read what is left to find out."""
    if conn.state != "open":
        return {"nonreader_dropped": True, "nonreader_bye": None, "others_saw_leave": engine.watch_hits}
    tail = bytearray()

    def keep_tail(buf: bytearray | bytes, n: int) -> None:
        tail.extend(buf[:n])
        del tail[:-512]

    conn.feed = keep_tail
    conn.resume_reading()
    engine.run(lambda: conn.state != "open", 5.0)
    bye = None
    for line in bytes(tail).split(b"\n"):
        if line.startswith((b"BYE ", b"ERROR ")):
            bye = line.decode(errors="replace").strip()
    return {
        "nonreader_dropped": conn.state != "open",
        "nonreader_bye": bye,
        "nonreader_error": conn.error,
        "others_saw_leave": engine.watch_hits,
    }


# -- paced ----------------------------------------------------------------------------------


def paced(spec: Spec, meter: type[Meter] = Meter) -> dict[str, Any]:
    """Every client sends in turn, open loop, `rate` messages per second in
    all for `duration` seconds; `meter` measures from the first send to the
    last delivery (bench/callgrind.py passes one that counts instructions)."""
    n, rate, duration = spec["n"], spec["rate"], spec["duration"]
    samples = spec.get("samples", 5)
    engine = make_engine(spec)
    dialect = engine.dialect
    server = Proc(spec.get("server_pid"))
    ports = spec.get("ports") or [spec.get("port")]  # several: the nodes of a cluster, clients dealt round
    home = [i % len(ports) for i in range(n)]
    # With several nodes, the first node's clients send and the others' are
    # sampled: every latency is a cross-node one.
    cross = len(ports) > 1
    sampled = [(home[i] != 0 if cross else True) and i >= n - (2 * samples if cross else samples) for i in range(n)]
    conns = [Conn(engine, i, nick(i), sender_id=i, sample=sampled[i]) for i in range(n)]
    for conn in conns:
        conn.validate = conn.sample or dialect.body_at_start
        if cross:
            conn.address = (spec["host"], int(ports[home[conn.index]]))
    senders = [conn for conn in conns if home[conn.index] == 0] if cross else conns
    outcome = connect_all(engine, conns, spec.get("concurrency", 50), spec.get("connect_timeout", 120))
    if outcome != "done" or engine.connect_failed:
        return fail_result(spec, engine, "connect", outcome)
    if barrier(engine, conns, 30) != "done":
        return fail_result(spec, engine, "barrier", "timeout")
    total = int(rate * duration)
    count = len(senders)
    per_sender = [total // count + (1 if i < total % count else 0) for i in range(count)]
    sent_by = {conn.index: per_sender[j] for j, conn in enumerate(senders)}
    for conn in conns:
        conn.expected = total - (0 if dialect.echo else sent_by.get(conn.index, 0))
    engine.fanouts = [n - (0 if dialect.echo else 1)]
    engine.finishers = n
    interval = 1.0 / rate
    start = time.monotonic() + 0.05
    state = {"i": 0, "late_max": 0.0}

    def tick() -> None:
        now = time.monotonic()
        i = state["i"]
        while i < total and start + i * interval <= now:
            conn = senders[i % count]
            state["late_max"] = max(state["late_max"], now - (start + i * interval))
            if conn.state == "open":
                conn.write(dialect.message(perf_ns(), conn.sender_id, conn.sent))
                conn.sent += 1
                engine.expected_sent += engine.fanouts[0]
            i += 1
        state["i"] = i
        if i < total:
            engine.call_at(start + i * interval, tick)

    engine.call_at(start, tick)
    measuring = meter(server)
    cpu0 = server.cpu()
    t_start = perf_ns()
    outcome = engine.run(lambda: engine.finished >= engine.finishers, duration + spec.get("drain", 10))
    server_cpu_s = server.cpu() - cpu0
    cpu = measuring.result()
    elapsed = (perf_ns() - t_start) / 1e9
    delivered = sum(c.count for c in conns)
    expected = sum(c.expected for c in conns)
    latencies = [v for c in conns if c.latencies is not None for v in c.latencies]
    result = {
        **spec,
        "ok": outcome == "done" and engine.failed_receivers == 0,
        "outcome": outcome,
        "elapsed_s": round(elapsed, 3),
        "sent": state["i"],
        "delivered": delivered,
        "expected": expected,
        "lost": expected - delivered,
        "corrupt": sum(c.corrupt for c in conns),
        "order_errors": sum(c.order_errors for c in conns if c.validate),
        "failed_receivers": engine.failed_receivers,
        "send_late_max_ms": round(state["late_max"] * 1000, 2),
        "latency": percentiles(latencies),
        # What a delivery cost the server, whatever else the machine ran: its
        # CPU time (all threads, from /proc) over the lines delivered.
        "server_cpu_s": round(server_cpu_s, 3),
        "server_us_per_delivery": round(1e6 * server_cpu_s / delivered, 3) if delivered else None,
        "errors": dict(engine.errors.most_common(8)),
        "tls": tls_info(conns),
        **cpu,
    }
    engine.close_all()
    return result


# -- capacity -------------------------------------------------------------------------------


def capacity(spec: Spec) -> dict[str, Any]:
    """Two phases. Handshakes: every client connects and completes TLS, at most
    `concurrency` at a time, and waits. Registrations: all of them register at
    once (a reconnect storm), which costs the server the JOIN fan-out. Then the
    server's RSS with all clients idle. The seed cannot take part in phase one
    (its accept loop blocks on each client's nickname), so its clients register
    right after their handshake and both rates are the same number."""
    clients = spec["clients"]
    engine = make_engine(spec)
    server = Proc(spec.get("server_pid"))
    two_phase = engine.dialect.kind != "seed"
    conns = [Conn(engine, i, nick(i)) for i in range(clients)]
    sources = spec.get("sources", 0)
    for conn in conns:
        conn.hold = two_phase
        if sources:  # 127.0.0.1 .. 127.0.0.<sources>: local ports never run short
            conn.source = f"127.0.0.{1 + conn.index % sources}"

    def drain(buf: bytearray | bytes, n: int) -> None:
        engine.received_total += buf.count(b"\n", 0, n)

    def idle(conn: Conn) -> None:
        conn.feed = drain

    deadline = time.monotonic() + spec.get("deadline", 120)
    rss_before = server.rss_kib()
    meter = Meter(server)
    t0 = perf_ns()
    queue = list(reversed(conns))
    state = {"in_progress": 0}

    def start_more(_: Conn | None = None) -> None:
        if _ is not None:
            state["in_progress"] -= 1
        while queue and state["in_progress"] < spec.get("concurrency", 100):
            state["in_progress"] += 1
            queue.pop().connect()

    def closed(conn: Conn) -> None:
        if conn.t_handshake == 0 or not two_phase:
            start_more(conn)

    engine.on_handshake = start_more if two_phase else (lambda conn: None)
    engine.on_registered = (
        (lambda conn: (idle(conn), None)[1]) if two_phase else (lambda conn: (idle(conn), start_more(conn))[1])
    )
    engine.on_closed = closed
    start_more()
    if two_phase:
        outcome = engine.run(lambda: engine.handshaken + engine.connect_failed >= clients, deadline - time.monotonic())
    else:
        outcome = engine.run(lambda: engine.registered + engine.connect_failed >= clients, deadline - time.monotonic())
    t_hs = max((c.t_handshake for c in conns if c.t_handshake), default=t0)
    handshaken = sum(1 for c in conns if c.t_handshake)
    phase1 = meter.result("handshake_")
    rss_handshaken = server.rss_kib()
    t1 = perf_ns() if two_phase else t0
    if two_phase and outcome == "done":
        meter = Meter(server)
        t1 = perf_ns()
        outcome = register_in_waves(engine, conns, spec.get("register_wave") or clients, deadline)
    phase2 = meter.result("register_")
    ok = [c for c in conns if c.registration.done]
    t_reg = max((c.t_registered for c in ok), default=t1)
    # Let the JOIN/NAMES traffic of the last registrations drain, then keep
    # everyone idle for `idle_wait` seconds before measuring: what an idle client
    # costs once the server has had time to notice (chatd gives back an idle
    # connection's TLS buffers within about 30 s; docs/architecture.md).
    engine.run(lambda: False, spec.get("settle_max", 30), idle=1.0)
    time.sleep(0.2)
    rss_drained = server.rss_kib()
    engine.run(lambda: False, spec.get("idle_wait", 0))
    rss_after = server.rss_kib()
    still_open = sum(1 for c in ok if c.state == "open")
    hs_times = [c.t_handshake - c.t_connect for c in conns if c.t_handshake]
    result = {
        **spec,
        "ok": outcome == "done" and len(ok) == clients and still_open == clients,
        "outcome": outcome,
        "two_phase": two_phase,
        "handshaken": handshaken,
        "registered": len(ok),
        "still_open": still_open,
        "connect_failed": engine.connect_failed,
        "handshakes_per_s": round(handshaken / max((t_hs - t0) / 1e9, 1e-9)),
        "handshake_phase_s": round((t_hs - t0) / 1e9, 3),
        "registrations_per_s": round(len(ok) / max((t_reg - t1) / 1e9, 1e-9)),
        "register_phase_s": round((t_reg - t1) / 1e9, 3),
        "handshake_latency": percentiles(hs_times),
        # Independent of the generator's speed: what one handshake cost the server,
        # hence the rate one fully busy core would sustain.
        "server_cpu_ms_per_handshake": round(
            10 * phase1["handshake_server_cpu_pct"] * (t_hs - t0) / 1e9 / max(handshaken, 1), 3
        ),
        "rss_kib_before": rss_before,
        "rss_kib_handshaken": rss_handshaken,
        "rss_kib_drained": rss_drained,
        "rss_kib_after": rss_after,
        "rss_kib_per_client": round((rss_after - rss_before) / max(still_open, 1), 1),
        "rss_kib_per_client_drained": round((rss_drained - rss_before) / max(still_open, 1), 1),
        "rss_kib_total_per_client": round(rss_after / max(still_open, 1), 1),
        "lines_drained": engine.received_total,
        "errors": dict(engine.errors.most_common(8)),
        "tls": tls_info(conns),
        **phase1,
        **phase2,
    }
    engine.close_all()
    return result
