"""The message-throughput parts of RESULTS.md, for report.py: the fan-out
tables, chatd against `chatd-before` (the baseline revision) on the same
fan-out runs, and the rooms scenario; plus their rows of the targets table.
Pure formatting: no I/O here."""

from __future__ import annotations

import statistics

from bench.cells import Record, flags_of, fmt, median, runs_of, saturated, spread, table, who

FANOUT_LINES = ("fanout-lines-50", "fanout-lines-200")
FANOUT_PACKED = ("fanout-50", "fanout-200", "fanout-1000")
BEFORE = "chatd-before"
BEFORE_GOAL = 0.9  # "fan-out in one room stays within 10% of today's"
NOMETRICS = "chatd-nometrics"
METRICS_GOAL = 0.97  # issue 14: "fan-out with metrics on stays at least 0.97x metrics off"

Check = tuple[str, str, str, bool | None]  # name, measured, goal, met (None: no goal)


def before_ratio(records: list[Record], key: str, other: str = BEFORE) -> tuple[float, str] | None:
    """chatd / chatd-before (or chatd / `other`) for one fan-out scenario: the
    median of the ratios of runs that went back to back (same run number), and
    their range; the ratio of the medians if no run pairs up. Pairing cancels
    the drift of a shared machine, which moves single runs by up to ±30% in a
    few minutes."""
    now = {r["run"]: r["msgs_per_s"] for r in runs_of(records, key, "chatd") if r.get("msgs_per_s")}
    then = {r["run"]: r["msgs_per_s"] for r in runs_of(records, key, other) if r.get("msgs_per_s")}
    pairs = [now[run] / then[run] for run in sorted(now.keys() & then.keys())]
    if len(pairs) > 1:
        ratio = statistics.median(pairs)
        return ratio, f"{ratio:.2f}× (runs {min(pairs):.2f}–{max(pairs):.2f})"
    if pairs:
        return pairs[0], f"{pairs[0]:.2f}×"
    a, b = median(runs_of(records, key, "chatd"), "msgs_per_s"), median(runs_of(records, key, other), "msgs_per_s")
    if a is None or not b:
        return None
    return a / b, f"{a / b:.2f}× (of medians)"


def fanout_checks(records: list[Record]) -> list[Check]:
    """chatd against ngircd, and against chatd-before, in every fan-out run."""
    checks: list[Check] = []
    for key in FANOUT_LINES + FANOUT_PACKED:
        chatd = median(runs_of(records, key, "chatd"), "msgs_per_s")
        ngircd = median(runs_of(records, key, "ngircd"), "msgs_per_s")
        if chatd is not None and ngircd:
            bound = " (ngircd: generator-bound)" if saturated(runs_of(records, key, "ngircd")) else ""
            checks.append(
                (
                    f"{key}: chatd / ngircd delivered msg/s",
                    f"{chatd / ngircd:.2f}× ({fmt(chatd)} / {fmt(ngircd)}){bound}",
                    "≥ 0.5×",
                    chatd / ngircd >= 0.5,
                )
            )
        before = median(runs_of(records, key, BEFORE), "msgs_per_s")
        paired = before_ratio(records, key)
        if chatd is not None and before and paired:
            # Single runs differ by up to ±30% here: say when the pair is suspect.
            flags = flags_of(runs_of(records, key, "chatd") + runs_of(records, key, BEFORE))
            checks.append(
                (
                    f"{key}: chatd / chatd-before delivered msg/s",
                    f"{paired[1]}, medians "
                    f"{fmt(chatd)} / {fmt(before)}" + (f" (runs flagged: {flags})" if flags else ""),
                    f"≥ {BEFORE_GOAL}×",
                    paired[0] >= BEFORE_GOAL,
                )
            )
        off = runs_of(records, key, NOMETRICS)
        paired = before_ratio(records, key, NOMETRICS)
        if chatd is not None and off and paired:
            flags = flags_of(runs_of(records, key, "chatd") + off)
            checks.append(
                (
                    f"{key}: chatd (metrics on, scraped) / chatd-nometrics delivered msg/s",
                    f"{paired[1]}, medians {fmt(chatd)} / {fmt(median(off, 'msgs_per_s'))}"
                    + (f" (runs flagged: {flags})" if flags else ""),
                    f"≥ {METRICS_GOAL}×",
                    paired[0] >= METRICS_GOAL,
                )
            )
        lost_clients = median(runs_of(records, key, "chatd"), "failed_receivers")
        if lost_clients:
            checks.append((f"{key}: chatd clients dropped", fmt(lost_clients), "none", False))
    return checks


def rooms_checks(records: list[Record]) -> list[Check]:
    """The rooms scenario has no goal of its own: chatd beside ngircd, and nothing lost."""
    group = runs_of(records, "rooms", "chatd")
    if not group:
        return []
    chatd = median(group, "msgs_per_s")
    ngircd = median(runs_of(records, "rooms", "ngircd"), "msgs_per_s")
    checks: list[Check] = []
    if chatd and ngircd:
        checks.append(
            (
                "rooms: chatd / ngircd delivered msg/s",
                f"{chatd / ngircd:.2f}× ({fmt(chatd)} / {fmt(ngircd)})",
                "– (compared, no goal set)",
                None,
            )
        )
    faults = sum(
        int(r.get("lost") or 0)
        + int(r.get("corrupt") or 0)
        + int(r.get("wrong_room") or 0)
        + int(r.get("failed_receivers") or 0)
        for r in group
    )
    checks.append(
        (
            "rooms: chatd lines lost, corrupt or in the wrong room, clients dropped",
            f"{faults} in {len(group)} runs",
            "none",
            faults == 0,
        )
    )
    return checks


def _fanout_rows(records: list[Record], targets: list[str], keys: tuple[str, ...]) -> list[list[str]]:
    rows = []
    for key in keys:
        for target in targets:
            group = runs_of(records, key, target)
            if not group:
                continue
            g = group[0]
            slow = median(group, "log_slow_consumer")
            rows.append(
                [
                    f"N={g.get('n')} S={g.get('s')} M={g.get('m')}",
                    who(records, target),
                    spread(group, "msgs_per_s"),
                    spread(group, "latency.p50_ms", 1),
                    spread(group, "latency.p99_ms", 1),
                    f"{fmt(median(group, 'lost'))} / {fmt(median(group, 'corrupt'))}",
                    f"{fmt(median(group, 'failed_receivers'))}" + (f" ({fmt(slow)} slow_consumer)" if slow else ""),
                    fmt(median(group, "unsent")),
                    fmt(median(group, "gen_cpu_pct")),
                    fmt(median(group, "server_cpu_pct")),
                    fmt(median(group, "other_cpu_pct")),
                    flags_of(group),
                ]
            )
    return rows


FANOUT_HEADER = [
    "config",
    "target",
    "delivered msg/s",
    "p50 ms",
    "p99 ms",
    "lost / corrupt",
    "clients dropped",
    "unsent",
    "gen CPU%",
    "server CPU%",
    "others' CPU%",
    "flags",
]


def fanout_section(records: list[Record], targets: list[str]) -> str:
    lines_rows = _fanout_rows(records, targets, FANOUT_LINES)
    packed_rows = _fanout_rows(records, targets, FANOUT_PACKED)
    if not (lines_rows or packed_rows):
        return ""
    out = [
        "## 1. Fan-out\n\nS senders × M messages to a room of N, as fast as the server takes them: "
        "batches of 10 lines, each closed by a PING, ≤ 3 batches unacknowledged per sender. Delivered "
        "msg/s counts every line every receiver got; latency is send → receive on 5 sample receivers "
        "and, in a closed loop, is mostly time queued inside the window (see `paced` for latency at a "
        "fixed load). *Clients dropped*: receivers the server closed (chatd logs why); *unsent*: "
        "messages dropped senders never sent, taken off everyone's expectations; *lost*: lines owed "
        "to receivers, dropped ones included, that never arrived.\n"
    ]
    if lines_rows:
        out.append(
            "### 1a. As people send: one TLS record, and one send(), per line\n\n"
            + table(FANOUT_HEADER, lines_rows)
            + "\n"
        )
    if packed_rows:
        out.append(
            "### 1b. Packed: 10 lines per TLS record (as in earlier runs; amortises the server's "
            "per-read work as no interactive client does)\n\n" + table(FANOUT_HEADER, packed_rows) + "\n"
        )
    before = _before_table(records)
    if before:
        out.append(before)
    return "\n".join(out)


def _before_table(records: list[Record]) -> str:
    rows = []
    for key in FANOUT_LINES + FANOUT_PACKED:
        now, then = runs_of(records, key, "chatd"), runs_of(records, key, BEFORE)
        if not (now and then):
            continue
        g = now[0]
        paired = before_ratio(records, key)
        rows.append(
            [
                f"N={g.get('n')} S={g.get('s')} M={g.get('m')}",
                "per line" if g.get("records") == "lines" else "packed",
                spread(now, "msgs_per_s"),
                spread(then, "msgs_per_s"),
                "–" if paired is None else paired[1],
                "–" if paired is None else ("yes" if paired[0] >= BEFORE_GOAL else "**no**"),
                f"{spread(now, 'latency.p99_ms', 1)} / {spread(then, 'latency.p99_ms', 1)}",
                f"{fmt(median(now, 'server_cpu_pct'))} / {fmt(median(then, 'server_cpu_pct'))}",
                f"{fmt(median(now, 'gen_cpu_pct'))} / {fmt(median(then, 'gen_cpu_pct'))}",
                flags_of(now + then),
            ]
        )
    if not rows:
        return ""
    revision = next(
        (str(r.get("baseline"))[:7] for r in records if r.get("target") == BEFORE and r.get("baseline")), "?"
    )
    return (
        f"### 1c. Before and after rooms: chatd against chatd-before ({revision})\n\n"
        "The same fan-out runs, interleaved: `chatd-before` is chatd at the baseline revision "
        "(by default today's main without the rooms work; the machine table says which), with its own config/chatd.yaml and its own "
        "protocol (v1: no `HELLO`, `MSG <nick> <text>`); both pinned, with the io_threads of their "
        "rows in 1a and 1b. The goal: "
        "chatd's delivered msg/s ≥ "
        f"{BEFORE_GOAL}× the baseline's, as the median of the ratios of runs that went back to back "
        "(runs drift on a shared machine; a pair shares the drift).\n\n"
        + table(
            [
                "config",
                "records",
                "chatd msg/s",
                "chatd-before msg/s",
                "ratio",
                f"≥ {BEFORE_GOAL}×",
                "p99 ms chatd / before",
                "server CPU% chatd / before",
                "gen CPU% chatd / before",
                "flags",
            ],
            rows,
        )
        + "\n"
    )


def rooms_section(records: list[Record], targets: list[str]) -> str:
    rows = []
    for target in targets:
        group = runs_of(records, "rooms", target)
        if not group:
            continue
        g = group[0]
        rows.append(
            [
                f"{g.get('n')} clients, {g.get('rooms')} rooms of {g.get('room_size')}, M={g.get('m')}",
                who(records, target),
                spread(group, "msgs_per_s"),
                spread(group, "sent_per_s"),
                spread(group, "latency.p50_ms", 1),
                spread(group, "latency.p99_ms", 1),
                f"{fmt(median(group, 'lost'))} / {fmt(median(group, 'corrupt'))} / {fmt(median(group, 'wrong_room'))}",
                fmt(median(group, "failed_receivers")),
                fmt(median(group, "setup_s"), 1),
                fmt(median(group, "gen_cpu_pct")),
                fmt(median(group, "server_cpu_pct")),
                fmt(median(group, "other_cpu_pct")),
                flags_of(group),
            ]
        )
    if not rows:
        return ""
    return (
        "## 7. Rooms\n\nEvery client in one room of its own (chatd: the autojoin's `#lobby`, then "
        "`/join #rNN` and `/part #lobby`; IRC: `JOIN #rNN`), every client sending M lines to its "
        "room with the fan-out window (batches of 10, each closed by a PING, ≤ 3 unacknowledged), "
        "one TLS record per line. *Delivered* counts every line at every member; chatd echoes a "
        "line to its sender and IRC does not, so a chatd message makes 10 deliveries and an IRC one "
        "9: *sent msg/s*, the lines the server took in per second, compares the two servers' work "
        "line for line. Latency: send → receive at one client in each of 10 rooms, which also check "
        "every line's format, each sender's order and that every sender is in their room "
        "(*wrong room*). Set-up (connect, register, move to the room) is not measured.\n\n"
        + table(
            [
                "config",
                "target",
                "delivered msg/s",
                "sent msg/s",
                "p50 ms",
                "p99 ms",
                "lost / corrupt / wrong room",
                "clients dropped",
                "set-up s",
                "gen CPU%",
                "server CPU%",
                "others' CPU%",
                "flags",
            ],
            rows,
        )
        + "\n"
    )
