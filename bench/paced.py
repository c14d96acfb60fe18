"""The paced parts of RESULTS.md, for report.py: latency at a fixed load
(`paced`), and the paced load of issue 25 (`load-*`: server CPU per delivered
line and latency, chatd beside ngircd, and chatd at each write interval);
plus their rows of the targets table, and the latency-under-flood check (the
fan-out runs, chatd against ngircd). Pure formatting: no I/O here."""

from __future__ import annotations

from bench.cells import Record, flags_of, fmt, median, runs_of, spread, table, who

Check = tuple[str, str, str, bool | None]  # name, measured, goal, met (None: no goal)

LOAD = ("load-100x2000", "load-200x5000", "load-1000x500")
FLOOD = ("fanout-lines-50", "fanout-50")  # 50 clients, as fast as the window allows
FLOOD_P99 = 2.0  # issue 25: under flood, p99 at most 2x ngircd's ...
FLOOD_THROUGHPUT = 1.0  # ... while delivering at least as much


def paced_checks(records: list[Record]) -> list[Check]:
    checks: list[Check] = []
    p99 = median(runs_of(records, "paced", "chatd"), "latency.p99_ms")
    if p99 is not None:
        checks.append(("paced: p99 latency", fmt(p99, 1, " ms"), "≤ 50 ms", p99 <= 50))
    for key in LOAD:
        chatd, ngircd = runs_of(records, key, "chatd"), runs_of(records, key, "ngircd")
        if not (chatd and ngircd):
            continue
        ours, theirs = median(chatd, "server_us_per_delivery"), median(ngircd, "server_us_per_delivery")
        if ours is not None and theirs:
            checks.append(
                (
                    f"{key}: server CPU per delivered line, chatd / ngircd",
                    f"{ours / theirs:.2f}× ({fmt(ours, 2)} / {fmt(theirs, 2)} µs)",
                    "≤ 1×",
                    ours <= theirs,
                )
            )
        ours, theirs = median(chatd, "latency.p99_ms"), median(ngircd, "latency.p99_ms")
        if ours is not None and theirs:
            checks.append(
                (
                    f"{key}: p99 latency, chatd / ngircd",
                    f"{ours / theirs:.2f}× ({fmt(ours, 1)} / {fmt(theirs, 1)} ms)",
                    "≤ 1×",
                    ours <= theirs,
                )
            )
    for key in FLOOD:
        chatd, ngircd = runs_of(records, key, "chatd"), runs_of(records, key, "ngircd")
        p99, ref_p99 = median(chatd, "latency.p99_ms"), median(ngircd, "latency.p99_ms")
        rate, ref_rate = median(chatd, "msgs_per_s"), median(ngircd, "msgs_per_s")
        if p99 is None or not ref_p99 or rate is None or not ref_rate:
            continue
        checks.append(
            (
                f"{key} (flood): p99 and delivered msg/s, chatd / ngircd",
                f"p99 {p99 / ref_p99:.2f}× ({fmt(p99, 1)} / {fmt(ref_p99, 1)} ms), msg/s {rate / ref_rate:.2f}×",
                f"p99 ≤ {FLOOD_P99:g}×, msg/s ≥ {FLOOD_THROUGHPUT:g}×",
                p99 <= FLOOD_P99 * ref_p99 and rate >= FLOOD_THROUGHPUT * ref_rate,
            )
        )
    return checks


PACED_HEADER = [
    "target",
    "load",
    "server µs per delivered line",
    "p50 ms",
    "p99 ms",
    "max ms",
    "lost / corrupt",
    "generator late max ms",
    "server CPU%",
    "others' CPU%",
    "flags",
]


def _rows(records: list[Record], targets: list[str], keys: tuple[str, ...]) -> list[list[str]]:
    rows = []
    for key in keys:
        for target in targets:
            group = runs_of(records, key, target)
            if not group:
                continue
            g = group[0]
            rows.append(
                [
                    who(records, target),
                    f"{g.get('n')} clients, {g.get('rate')}/s, {g.get('duration')} s",
                    spread(group, "server_us_per_delivery", 2),
                    spread(group, "latency.p50_ms", 2),
                    spread(group, "latency.p99_ms", 2),
                    spread(group, "latency.max_ms", 2),
                    f"{fmt(median(group, 'lost'))} / {fmt(median(group, 'corrupt'))}",
                    fmt(median(group, "send_late_max_ms"), 1),
                    fmt(median(group, "server_cpu_pct")),
                    fmt(median(group, "other_cpu_pct")),
                    flags_of(group),
                ]
            )
    return rows


def paced_section(records: list[Record], targets: list[str]) -> str:
    rows = _rows(records, targets, ("paced",))
    load = _rows(
        records,
        targets,
        LOAD + tuple(sorted({str(r.get("key")) for r in records if str(r.get("key", "")).startswith("cross-")})),
    )
    if not (rows or load):
        return ""
    out = [
        "## 2. Paced\n\nEvery client sends in turn, open loop, at a fixed total rate; everyone "
        "receives everything. *Server µs per delivered line* is the server's CPU time (all threads, "
        "user and system) over the lines delivered. `chatd-wiN` is chatd with "
        "`server.write_interval_ms: N`.\n"
    ]
    if rows:
        out.append(table(PACED_HEADER, rows) + "\n")
    if load:
        out.append(
            "### 2a. Paced load (issue 25): messages spread out in time, so that a turn has "
            "little to coalesce\n\n" + table(PACED_HEADER, load) + "\n"
        )
    return "\n".join(out)
