"""The sections of RESULTS.md for the scenarios that have no module of their
own: capacity (and its checks for the targets table), the slow consumer,
churn, io_threads and the seed's runs. Pure formatting: no I/O here.

The page itself (the machine table, the targets table, the flags) is
report.py's; fan-out and rooms are throughput.py's, WebSocket
wsresults.py's, paced paced.py's, accounts accounts.py's, history
history.py's.
"""

from __future__ import annotations

from bench.cells import (
    Record,
    flags_of,
    fmt,
    get_path,
    median,
    mib,
    runs_of,
    spread,
    table,
    who,
)
from bench.throughput import (
    FANOUT_LINES,
)


def capacity_checks(records: list[Record]) -> list[tuple[str, str, str, bool | None]]:
    """Issue 25's: RSS per idle client at 20,000 (≤ 20 KiB), server CPU per TLS
    handshake (≤ ngircd's in the same run), and connects/s beside ngircd's."""
    cap, ref = runs_of(records, "capacity", "chatd"), runs_of(records, "capacity", "ngircd")
    if not cap:
        return []
    rss = median(cap, "rss_kib_per_client")
    ref_rss = median(ref, "rss_kib_per_client")
    cpu_ms, ref_ms = median(cap, "server_cpu_ms_per_handshake"), median(ref, "server_cpu_ms_per_handshake")
    hs, ref_hs = median(cap, "handshakes_per_s"), median(ref, "handshakes_per_s")
    per_core = f" ({fmt(1000 / cpu_ms)}/s per busy core)" if cpu_ms else ""
    return [
        (
            f"capacity: RSS per idle client at {fmt(median(cap, 'clients'))}",
            fmt(rss, 1, " KiB") + (f" (ngircd {fmt(ref_rss, 1, ' KiB')})" if ref_rss is not None else ""),
            "≤ 20 KiB",
            None if rss is None else rss <= 20,
        ),
        (
            "capacity: server CPU per TLS handshake",
            fmt(cpu_ms, 2, " ms") + per_core + (f" (ngircd {fmt(ref_ms, 2, ' ms')})" if ref_ms is not None else ""),
            "≤ ngircd's",
            None if cpu_ms is None or ref_ms is None else cpu_ms <= ref_ms,
        ),
        (
            "capacity: TLS connects/s",
            fmt(hs, 0, "/s") + (f" (ngircd {fmt(ref_hs, 0, '/s')})" if ref_hs is not None else ""),
            "≥ 1,000/s",
            None if hs is None else hs >= 1000,
        ),
    ]


def capacity_section(records: list[Record], targets: list[str]) -> str:
    rows = []
    for target in targets:
        group = runs_of(records, "capacity", target)
        if not group:
            continue
        rows.append(
            [
                who(records, target),
                f"{fmt(median(group, 'registered'))} / {fmt(median(group, 'clients'))}",
                spread(group, "handshakes_per_s"),
                spread(group, "server_cpu_ms_per_handshake", 2),
                spread(group, "handshake_latency.p99_ms"),
                spread(group, "registrations_per_s"),
                spread(group, "rss_kib_per_client_drained", 1),
                spread(group, "rss_kib_per_client", 1),
                spread(group, "rss_kib_total_per_client", 1),
                fmt(median(group, "rss_kib_after") and median(group, "rss_kib_after") / 1024, 1),
                f"{fmt(median(group, 'handshake_gen_cpu_pct'))} / {fmt(median(group, 'handshake_server_cpu_pct'))}",
                flags_of(group, "handshake_gen_cpu_pct", "handshake_other_cpu_pct"),
            ]
        )
    if not rows:
        return ""
    return (
        "## 3. Capacity\n\nPhase 1: clients connect and complete the TLS handshake, ≤ 100 in "
        "flight, and wait. Phase 2: all of them register at once (IRC clients also `JOIN #bench`, "
        "the equivalent of chatd's one room), which costs the server a JOIN to everyone already "
        "there. Then RSS (`VmRSS`) once the JOIN traffic has drained, and again after everybody has been idle for "
        "`idle_wait` seconds (40: chatd gives back an idle connection's TLS buffers within about 30 s). The seed cannot hold a handshaken client "
        "(its accept loop blocks on the nickname), so its clients register at once and both rates "
        "are one number. `floor` is bench/floor_server.py, the least a Python TLS server does "
        "per connection (handshakes only; README). Server CPU ms per handshake does not depend on "
        "the generator: 1000 ÷ it is the rate one busy server core sustains.\n\n"
        + table(
            [
                "target",
                "registered",
                "TLS handshakes/s",
                "server CPU ms per handshake",
                "handshake p99 ms",
                "registrations/s",
                "RSS KiB per client (Δ), JOINs drained",
                "RSS KiB per client (Δ), idle",
                "RSS KiB per client (total)",
                "RSS MiB at end",
                "gen / server CPU% (handshakes)",
                "flags",
            ],
            rows,
        )
        + "\n"
    )


def slow_section(records: list[Record], targets: list[str]) -> str:
    rows = []
    for target in targets:
        without, with_ = runs_of(records, "slow-without", target), runs_of(records, "slow-with", target)
        if not (without or with_):
            continue
        t0, t1 = median(without, "msgs_per_s"), median(with_, "msgs_per_s")
        l0, l1 = median(without, "latency.p99_ms"), median(with_, "latency.p99_ms")
        dropped = sum(1 for r in with_ if r.get("nonreader_dropped"))
        how = sorted({str(r.get("nonreader_bye") or r.get("nonreader_error") or "?") for r in with_})
        log = median(with_, "log_slow_consumer")
        if log is None:
            log = median(with_, "log_write_buffer_exhausted")
        rows.append(
            [
                who(records, target),
                spread(without, "msgs_per_s"),
                spread(with_, "msgs_per_s"),
                "–" if not (t0 and t1) else f"{100 * (t1 / t0 - 1):+.0f}%",
                fmt(l0, 1),
                fmt(l1, 1),
                "–" if not (l0 and l1) else f"{100 * (l1 / l0 - 1):+.0f}%",
                f"{dropped} of {len(with_)}",
                "; ".join(how)[:80],
                fmt(log),
                flags_of(without + with_),
            ]
        )
    if not rows:
        return ""
    return (
        "## 4. Slow consumer\n\n50 clients all chatting (50 × M lines, same window as fan-out), "
        "once without and once with a 51st client that registers, shrinks its receive buffer to "
        "4 KiB and never reads again. chatd runs with the default `send_queue_bytes` (96 KiB). "
        "“server log” counts chatd's `slow_consumer` events or ngircd's “Write buffer space "
        "exhausted”.\n\n"
        + table(
            [
                "target",
                "msg/s without",
                "msg/s with",
                "Δ",
                "p99 ms without",
                "p99 ms with",
                "Δ p99",
                "non-reader dropped",
                "how it ended",
                "server log",
                "flags",
            ],
            rows,
        )
        + "\n"
    )


def churn_section(records: list[Record], targets: list[str]) -> str:
    rows = []
    kinds: list[str] = []
    for r in records:
        for kind in r.get("kinds") or {}:
            if kind not in kinds:
                kinds.append(kind)
    for target in targets:
        group = runs_of(records, "churn", target)
        if not group:
            continue
        g = group[0]
        cells = []
        for kind in kinds:
            done = median(group, f"kinds.{kind}.completed")
            p99 = median(group, f"kinds.{kind}.time.p99_ms")
            cells.append(f"{fmt(done)} (p99 {fmt(p99)} ms)")
        failed = sum(int(get_path(r, f"kinds.{k}.failed") or 0) for r in group for k in kinds)
        timeouts = sum(int(get_path(r, f"kinds.{k}.timeouts") or 0) for r in group for k in kinds)
        rows.append(
            [
                who(records, target),
                f"{g.get('concurrency')} at once, {fmt(g.get('duration'))} s",
                spread(group, "connects_per_s"),
                *cells,
                f"{failed} / {timeouts}",
                " / ".join(mib(median(group, f"rss_kib_{k}")) for k in ("start", "peak", "end", "idle")),
                " / ".join(fmt(median(group, f"fds_{k}")) for k in ("start", "end", "idle")),
                "yes" if all(r.get("serves_after") for r in group) else "**no**",
                f"{fmt(median(group, 'gen_cpu_pct'))} / {fmt(median(group, 'server_cpu_pct'))}",
                flags_of(group),
            ]
        )
    if not rows:
        return ""
    return (
        "## 5. Churn\n\nA bounded number of clients connect again and again for the duration, each "
        "time as the next kind in turn: `garbage` (200 random bytes instead of a ClientHello, then "
        "close), `truncated` (half a ClientHello, then close), `quit` (TLS, nickname, one line to the "
        "room, quit; IRC: NICK/USER, JOIN, PRIVMSG, QUIT), `drop` (TLS, nickname, close without "
        "quit). The first two half-close and count when the server has closed. Per kind: "
        "connections completed, and p99 of connect → done. RSS (`VmRSS`) at the start, its peak, "
        "at the end of the churn and after 10 s with nobody connected; the server's open "
        "descriptors likewise; then whether a newcomer still registers.\n\n"
        + table(
            [
                "target",
                "load",
                "connects/s",
                *kinds,
                "failed / timed out",
                "RSS MiB start / peak / end / idle",
                "descriptors start / end / idle",
                "newcomer served after",
                "gen / server CPU%",
                "flags",
            ],
            rows,
        )
        + "\n"
    )


def io_section(records: list[Record], targets: list[str]) -> str:
    """The io_threads comparison in one table (the figures for docs/architecture.md)."""
    variants = [t for t in targets if t.startswith("chatd-io")]
    if not variants:
        return ""
    rows = []
    for target in variants + [t for t in ("chatd", "ngircd") if t in targets]:
        cells = [who(records, target)]
        for key in FANOUT_LINES:
            group = runs_of(records, key, target)
            cells += [
                spread(group, "msgs_per_s"),
                f"{fmt(median(group, 'server_cpu_pct'))} / {fmt(median(group, 'gen_cpu_pct'))}",
                fmt(median(group, "failed_receivers")),
            ]
        paced = runs_of(records, "paced", target)
        cap = runs_of(records, "capacity", target)
        churn = runs_of(records, "churn", target)
        cells += [
            spread(paced, "latency.p99_ms", 2),
            spread(cap, "handshakes_per_s"),
            spread(cap, "server_cpu_ms_per_handshake", 2),
            fmt(median(cap, "handshake_server_cpu_pct")),
            fmt(median(churn, "connects_per_s")),
            mib(median(churn, "rss_kib_peak")),
        ]
        rows.append(cells)
    header = ["target"]
    for key in FANOUT_LINES:
        n = key.rsplit("-", 1)[1]
        header += [f"fan-out N={n} msg/s", f"N={n} server / gen CPU%", f"N={n} dropped"]
    header += [
        "paced p99 ms",
        "connects/s",
        "server CPU ms per connect",
        "server CPU% (connects)",
        "churn connects/s",
        "churn RSS peak MiB",
    ]
    return (
        "## 6. io_threads on this machine\n\nchatd with config/chatd.yaml's values and io_threads "
        '1, 2 or 4, the server and the generator both free to use every CPU ("shared"; the '
        "generator takes its share, so a server that could use a second core only gets what the "
        "generator leaves). Server CPU% above 100 means it used more than one core. `chatd` "
        "(its default io_threads, pinned to CPU 0) and ngircd, both pinned, are there for "
        "reference. Fan-out is the one-record-per-line kind (1a).\n\n" + table(header, rows) + "\n"
    )


def _planned(group: list[Record]) -> float | None:
    """Deliveries planned at the start: `expected` no longer counts what dropped
    senders never sent (since `expected_at_start` was recorded)."""
    at_start = median(group, "expected_at_start")
    return at_start if at_start is not None else median(group, "expected")


def seed_section(records: list[Record]) -> str:
    rows = []
    keys: list[str] = []
    for r in records:
        if r.get("target") == "seed" and r["key"] not in keys:
            keys.append(r["key"])
    for key in keys:
        group = [r for r in records if r["key"] == key and r["target"] == "seed"]
        ref = runs_of(records, key, "chatd")
        ref_text = "–"
        if ref and median(ref, "expected"):
            ref_text = f"{fmt(median(ref, 'delivered'))} of {fmt(_planned(ref))}"
        errors: dict[str, int] = {}
        for r in group:
            for name, count in (r.get("errors") or {}).items():
                errors[name] = errors.get(name, 0) + count
        rows.append(
            [
                key,
                f"{fmt(median(group, 'delivered'))} of {fmt(_planned(group))}",
                fmt(median(group, "corrupt")),
                fmt(median(group, "order_errors")),
                fmt(median(group, "failed_receivers")),
                "; ".join(f"{k} ×{v}" for k, v in sorted(errors.items(), key=lambda kv: -kv[1]))[:160] or "–",
                ref_text,
            ]
        )
    if not rows:
        return ""
    return (
        "## 8. The seed's design, side by side\n\nThe seed server writes to each TLS socket from "
        "several threads at once (a reader thread plus every sender's broadcast), which OpenSSL "
        "does not allow. Counted, not crashed on: every seed client checks every line.\n\n"
        + table(
            [
                "scenario",
                "seed: delivered of expected",
                "corrupt lines",
                "order errors",
                "clients lost",
                "client-side errors (all runs)",
                "chatd: delivered of expected",
            ],
            rows,
        )
        + "\n"
    )
