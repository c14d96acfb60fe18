"""The history measurements of `make bench` (issue 12) and their report:
fan-out with history on (`chatd`) against off (`chatd-nohistory`) in the same
run, the store's write rate (bench/store.py) and what a join's backlog costs
the server (bench/backlog.py)."""

from __future__ import annotations

from typing import Any, Final

from bench import backlog, store
from bench.cells import Record, flags_of, fmt, median, runs_of, spread, table
from bench.throughput import FANOUT_LINES, FANOUT_PACKED, Check, before_ratio

NOHISTORY: Final = "chatd-nohistory"
ON_OFF_GOAL: Final = 0.8  # "fan-out with history on is at least 0.8x history off in the same run"
STORE_GOAL: Final = 20_000  # "the store sustains at least 20,000 stored messages per second"
BACKLOG_GOAL_MS: Final = 5.0  # "backlog on join (50 events) costs under 5 ms of server time"
STORE, BACKLOG = "history-store", "history-backlog"


def measure(key: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One run of a history measurement (no target to start: it starts its own)."""
    if key == STORE:
        return store.measure(spec["events"], spec["rooms"], 0.0)
    return backlog.measure(spec["joins"], spec["text_bytes"])


def history_checks(records: list[Record]) -> list[Check]:
    checks: list[Check] = []
    for key in FANOUT_LINES + FANOUT_PACKED:
        off = runs_of(records, key, NOHISTORY)
        paired = before_ratio(records, key, NOHISTORY)
        if off and paired:
            flags = flags_of(runs_of(records, key, "chatd") + off)
            checks.append(
                (
                    f"{key}: chatd (history on) / chatd-nohistory delivered msg/s",
                    f"{paired[1]}, medians {fmt(median(runs_of(records, key, 'chatd'), 'msgs_per_s'))}"
                    f" / {fmt(median(off, 'msgs_per_s'))}" + (f" (runs flagged: {flags})" if flags else ""),
                    f"≥ {ON_OFF_GOAL}×",
                    paired[0] >= ON_OFF_GOAL,
                )
            )
    written = median(runs_of(records, STORE, "chatd"), "written_per_s")
    if written is not None:
        events = fmt(median(runs_of(records, STORE, "chatd"), "events"))
        checks.append(
            (
                f"history store: events written per second (a burst of {events})",
                fmt(written),
                f"≥ {STORE_GOAL:,}",
                written >= STORE_GOAL,
            )
        )
    cost = median(runs_of(records, BACKLOG, "chatd"), "backlog_ms_per_join")
    if cost is not None:
        checks.append(
            (
                "history: server CPU a join's 50-event backlog adds",
                fmt(cost, 3, " ms"),
                f"< {BACKLOG_GOAL_MS:g} ms",
                cost < BACKLOG_GOAL_MS,
            )
        )
    return checks


def history_section(records: list[Record]) -> str:
    stores, joins = runs_of(records, STORE, "chatd"), runs_of(records, BACKLOG, "chatd")
    if not stores and not joins:
        return ""
    out = [
        "## 9. History\n\nFan-out with history on against off is in the targets table (pairs of "
        "runs, `chatd` against `chatd-nohistory`, both with config/chatd.yaml's values). "
        "*Store*: bench/store.py appends 200,000 events (50,000 with `--quick`) of 100 bytes over 100 rooms as fast as one "
        "thread can, into a fresh database with the default history settings, and waits for the "
        "writer's last commit. *Backlog*: bench/backlog.py has a client join and part a room "
        "holding 50 events, then an empty room, 2,000 times each, and takes the server's CPU "
        "time per join (from /proc).\n"
    ]
    if stores:
        out.append(
            table(
                [
                    "store",
                    "written/s",
                    "append CPU µs (I/O thread)",
                    "drain after last append s",
                    "bytes on disk per event",
                    "dropped",
                ],
                [
                    [
                        "SQLite, WAL",
                        spread(stores, "written_per_s"),
                        spread(stores, "append_cpu_us", 2),
                        spread(stores, "drain_after_last_append_s", 2),
                        fmt(median(stores, "db_bytes_per_event")),
                        fmt(median(stores, "dropped")),
                    ]
                ],
            )
            + "\n"
        )
    if joins:
        out.append(
            table(
                [
                    "joins",
                    "server ms per join, empty room",
                    "with 50-event backlog",
                    "backlog's cost ms",
                    "lines per join",
                ],
                [
                    [
                        fmt(median(joins, "joins")),
                        spread(joins, "server_ms_per_join_empty", 3),
                        spread(joins, "server_ms_per_join_with_backlog", 3),
                        spread(joins, "backlog_ms_per_join", 3),
                        fmt(median(joins, "backlog_lines")),
                    ]
                ],
            )
            + "\n"
        )
    return "\n".join(out)
