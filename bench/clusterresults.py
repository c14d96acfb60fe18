"""Issue 24's checks in RESULTS.md's targets table, for report.py: what a
one-node cluster (`chatd-cluster`) costs beside `chatd` in the same run, and
the cross-node latency of three nodes (`chatd-cluster3`, key `cross-*`).
Pure formatting: no I/O here.

* fan-out: messages/s of the one-node cluster over chatd's (≥ 0.8× at
  fanout-50, ≥ 0.9× at fanout-200); and of two nodes sharing the port
  (`chatd-cluster-rp2`, server.reuse_port) over one, reported: both are
  pinned with Redis to the server's CPU, the generator to the other;
* CPU per event added: (cluster − chatd) server CPU per delivered line
  times the lines each message is delivered as (n, echo included), at the
  paced loads: what one message costs the node beyond what it costs chatd
  (≤ 10 µs);
* cross-node p99 (≤ 20 ms), beside chatd's own p99 at the same load and
  in the same run, pinned: how much of it is the machine and the generator;
* Redis memory per retained log entry (≤ 250 B), read when each run stops.
"""

from __future__ import annotations

from bench.cells import Record, fmt, median, runs_of

Check = tuple[str, str, str, bool | None]  # name, measured, goal, met (None: no goal)

ONE = "chatd-cluster"
THREE = "chatd-cluster3"
TWO_ON_ONE_PORT = "chatd-cluster-rp2"
FANOUT = (("fanout-50", 0.8), ("fanout-200", 0.9))
EVENT_US = 10.0
CROSS_P99_MS = 20.0
ENTRY_BYTES = 250.0


def cluster_checks(records: list[Record]) -> list[Check]:
    checks: list[Check] = []
    for key, goal in FANOUT:
        ours, theirs = (
            median(runs_of(records, key, ONE), "msgs_per_s"),
            median(runs_of(records, key, "chatd"), "msgs_per_s"),
        )
        if ours is not None and theirs:
            checks.append(
                (
                    f"{key}: msg/s, one-node cluster / chatd",
                    f"{ours / theirs:.2f}×",
                    f"≥ {goal:g}×",
                    ours >= goal * theirs,
                )
            )
        pair = median(runs_of(records, key, TWO_ON_ONE_PORT), "msgs_per_s")
        if pair is not None and ours:
            checks.append(
                (
                    f"{key}: msg/s, two nodes on one port (reuse_port) / one node",
                    f"{pair / ours:.2f}× (all on one CPU: this 2-CPU machine cannot show scale-out)",
                    "reported",
                    None,
                )
            )
    keys = sorted({str(r.get("key")) for r in records if str(r.get("key", "")).startswith(("load-", "paced"))})
    for key in keys:
        cluster, chatd = runs_of(records, key, ONE), runs_of(records, key, "chatd")
        ours, theirs = median(cluster, "server_us_per_delivery"), median(chatd, "server_us_per_delivery")
        if ours is None or theirs is None or not cluster:
            continue
        added = (ours - theirs) * int(cluster[0].get("n") or 0)
        checks.append(
            (
                f"{key}: server CPU per message added by a one-node cluster",
                f"{fmt(added, 1, ' µs')} ({fmt(ours, 2)} − {fmt(theirs, 2)} µs per line × {cluster[0].get('n')})",
                f"≤ {EVENT_US:g} µs",
                added <= EVENT_US,
            )
        )
    per_entry = median([r for r in records if r.get("target") in (ONE, THREE)], "redis_bytes_per_entry")
    if per_entry is not None:
        checks.append(
            (
                "Redis memory per retained log entry (the bench's ~56-byte lines)",
                fmt(per_entry, 1, " B"),
                f"≤ {ENTRY_BYTES:g} B",
                per_entry <= ENTRY_BYTES,
            )
        )
    for key in sorted({str(r.get("key")) for r in records if str(r.get("key", "")).startswith("cross-")}):
        p99 = median(runs_of(records, key, THREE), "latency.p99_ms")
        if p99 is None:
            continue
        alone = median(runs_of(records, key, "chatd"), "latency.p99_ms")
        reference = f"; chatd alone at this load: {fmt(alone, 1, ' ms')}" if alone is not None else ""
        checks.append(
            (
                f"{key}: cross-node p99, three nodes",
                f"{fmt(p99, 1, ' ms')}{reference}",
                f"≤ {CROSS_P99_MS:g} ms",
                p99 <= CROSS_P99_MS,
            )
        )
    return checks
