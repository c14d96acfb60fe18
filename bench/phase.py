"""The measured phase of the windowed scenarios, fan-out (and slow consumer,
scenarios.py) and rooms (rooms.py): from the first send to the last reader's
last line and the last sender's last acknowledgement, every sender keeping
its window of unacknowledged batches, and the metrics of that phase. Only this phase is measured; the set-up before it
(handshakes, registrations, the barrier) is not.

bench/callgrind.py counts the server's instructions over exactly this phase:
it passes its own `Meter`, which zeroes callgrind's counters when the phase
starts and dumps them when it ends.
"""

from __future__ import annotations

from typing import Any

from bench.engine import Conn, perf_ns
from bench.harness import Spec
from bench.loop import Engine
from bench.measure import Meter, Proc, percentiles


def measure_phase(
    spec: Spec,
    engine: Engine,
    server: Proc,
    senders: list[Conn],
    readers: list[Conn],
    meter: type[Meter] = Meter,
) -> dict[str, Any]:
    """Start every sender's window and run until every reader has had all it
    expects (or the spec's `deadline`, or `idle` seconds without progress).

    The engine and the connections are set up for the phase already (each
    reader's `expected`, each sender's `to_send` and window). Returns the
    phase's metrics: whether every line arrived whole and in order, the
    delivery and intake rates, latencies, acknowledgement round trips, the
    server's RSS, and the CPU of the server, the generator and everything else.
    """
    measuring = meter(server)
    rss_before = server.rss_kib()
    t_start = perf_ns()
    for conn in senders:
        conn.pump()
    outcome = engine.run(
        lambda: engine.finished >= engine.finishers, spec.get("deadline", 120), idle=spec.get("idle", 5.0)
    )
    # A run that did not finish (the seed's) is timed to its last delivery.
    t_end = engine.t_all_finished if outcome == "done" else max(engine.t_last_progress, t_start)
    if t_end <= t_start:
        t_end = perf_ns()
    cpu = measuring.result()
    rss_after = server.rss_kib()
    elapsed = max((t_end - t_start) / 1e9, 1e-9)
    delivered = sum(c.count for c in readers)
    expected = sum(c.expected for c in readers)
    sent = sum(c.sent for c in senders)
    latencies = [v for c in readers if c.latencies is not None for v in c.latencies]
    result: dict[str, Any] = {
        "ok": outcome == "done" and engine.failed_receivers == 0,
        "outcome": outcome,
        "elapsed_s": round(elapsed, 3),
        "delivered": delivered,
        "expected": expected,  # less what dropped senders never sent
        "lost": expected - delivered,
        "corrupt": sum(c.corrupt for c in readers),
        "order_errors": sum(c.order_errors for c in readers if c.validate),
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
        **cpu,
    }
    if engine.dialect.kind == "irc":
        result["flood_exempt_senders"] = sum(1 for c in senders if c.registration.flood_exempt)
    return result
