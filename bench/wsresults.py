"""The WebSocket parts of RESULTS.md (issue 13), for report.py: fan-out to
WebSocket clients against the same fan-out to line clients, and an idle
WebSocket client's memory; plus their rows of the targets table. Pure
formatting: no I/O here. The line clients' fan-out tables are
throughput.py's; the WebSocket client itself is bench/websocket.py.
"""

from __future__ import annotations

import statistics

from bench.cells import Record, flags_of, fmt, median, runs_of, spread, table, who
from bench.throughput import Check

WS_FANOUT, WS_LINES_FANOUT, WS_IDLE = "fanout-ws", "fanout-50", "idle-ws"
WS_FANOUT_GOAL = 0.5  # "fan-out to 50 browsers-worth of clients at least 0.5× line-protocol fan-out"
WS_IDLE_GOAL_KIB = 20  # issue 25: "≤ 20 KiB RSS per idle client at 20,000, line and WebSocket clients alike"


def websocket_checks(records: list[Record]) -> list[Check]:
    """fanout-ws against fanout-50 (the same N, S, M and window, line clients) in
    the same run, paired by run number as chatd-before is; idle-ws's RSS per client."""
    checks: list[Check] = []
    ws = {r["run"]: r["msgs_per_s"] for r in runs_of(records, WS_FANOUT, "chatd") if r.get("msgs_per_s")}
    lines = {r["run"]: r["msgs_per_s"] for r in runs_of(records, WS_LINES_FANOUT, "chatd") if r.get("msgs_per_s")}
    pairs = [ws[run] / lines[run] for run in sorted(ws.keys() & lines.keys())]
    if pairs:
        ratio = statistics.median(pairs)
        spread_text = f" (runs {min(pairs):.2f}–{max(pairs):.2f})" if len(pairs) > 1 else ""
        flags = flags_of(runs_of(records, WS_FANOUT, "chatd") + runs_of(records, WS_LINES_FANOUT, "chatd"))
        checks.append(
            (
                f"{WS_FANOUT}: WebSocket / line clients delivered msg/s (N=50)",
                f"{ratio:.2f}×{spread_text}, medians {fmt(median(runs_of(records, WS_FANOUT, 'chatd'), 'msgs_per_s'))}"
                f" / {fmt(median(runs_of(records, WS_LINES_FANOUT, 'chatd'), 'msgs_per_s'))}"
                + (f" (runs flagged: {flags})" if flags else ""),
                f"≥ {WS_FANOUT_GOAL}×",
                ratio >= WS_FANOUT_GOAL,
            )
        )
    idle = runs_of(records, WS_IDLE, "chatd")
    if idle:
        rss = median(idle, "rss_kib_per_client")
        checks.append(
            (
                f"{WS_IDLE}: RSS per idle WebSocket client at {fmt(median(idle, 'clients'))}",
                fmt(rss, 1, " KiB"),
                f"≤ {WS_IDLE_GOAL_KIB} KiB",
                None if rss is None else rss <= WS_IDLE_GOAL_KIB,
            )
        )
    return checks


def _cpu_us_per_delivery(group: list[Record]) -> float | None:
    values = [
        r["server_cpu_pct"] / 100 * r["elapsed_s"] / r["delivered"] * 1e6
        for r in group
        if r.get("server_cpu_pct") is not None and r.get("elapsed_s") and r.get("delivered")
    ]
    return statistics.median(values) if values else None


def websocket_section(records: list[Record], targets: list[str]) -> str:
    rows = []
    for target in targets:
        for key, clients in ((WS_LINES_FANOUT, "line"), (WS_FANOUT, "WebSocket")):
            group = runs_of(records, key, target)
            if not group or not runs_of(records, WS_FANOUT, target):
                continue
            rows.append(
                [
                    f"{key} ({clients})",
                    who(records, target),
                    spread(group, "msgs_per_s"),
                    fmt(_cpu_us_per_delivery(group), 2),
                    spread(group, "latency.p50_ms", 1),
                    spread(group, "latency.p99_ms", 1),
                    f"{fmt(median(group, 'lost'))} / {fmt(median(group, 'corrupt'))}",
                    fmt(median(group, "failed_receivers")),
                    fmt(median(group, "gen_cpu_pct")),
                    fmt(median(group, "server_cpu_pct")),
                    fmt(median(group, "other_cpu_pct")),
                    flags_of(group),
                ]
            )
    idle_rows = []
    for target in targets:
        group = runs_of(records, WS_IDLE, target)
        if group:
            idle_rows.append(
                [
                    who(records, target),
                    f"{fmt(median(group, 'registered'))} / {fmt(median(group, 'clients'))}",
                    spread(group, "handshakes_per_s"),
                    spread(group, "server_cpu_ms_per_handshake", 2),
                    spread(group, "rss_kib_per_client", 1),
                    spread(group, "rss_kib_total_per_client", 1),
                    flags_of(group, "handshake_gen_cpu_pct", "handshake_other_cpu_pct"),
                ]
            )
    if not rows and not idle_rows:
        return ""
    out = [
        "## 8. WebSocket\n\nchatd's lines over WebSockets, as its web client speaks them: a TLS handshake "
        "with ALPN `http/1.1`, `GET /ws`, then one line per text message each way (the generator "
        "frames and masks what it sends with wsproto, and reads the server's frames with a header "
        "walk of its own, bench/websocket.py). `fanout-ws` is `fanout-50` (N=50, S=10, packed "
        "window) with WebSocket clients, in the same run; *server µs per delivery* is the server's "
        "CPU time over the lines delivered. `idle-ws` is the capacity scenario's idle clients, "
        "connected through the upgrade (its *handshakes/s* include it).\n"
    ]
    if rows:
        out.append(
            table(
                [
                    "scenario",
                    "target",
                    "delivered msg/s",
                    "server µs per delivery",
                    "p50 ms",
                    "p99 ms",
                    "lost / corrupt",
                    "clients dropped",
                    "gen CPU%",
                    "server CPU%",
                    "others' CPU%",
                    "flags",
                ],
                rows,
            )
            + "\n"
        )
    if idle_rows:
        out.append(
            table(
                [
                    "target",
                    "registered",
                    "handshakes + upgrades/s",
                    "server CPU ms per connect",
                    "RSS KiB per client (Δ)",
                    "RSS KiB per client (total)",
                    "flags",
                ],
                idle_rows,
            )
            + "\n"
        )
    return "\n".join(out)
