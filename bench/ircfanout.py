"""Issue 23's fan-out with IRC clients on chatd: the `chatd-irc` target (chatd
as the `chatd` target runs it, its clients IRC clients on its IRC listener,
driven by the same IRC generator as ngircd) and its checks in RESULTS.md
("IRC fan-out ≥ 0.8× chatd's native fan-out", beside ngircd).

`TARGETS` is bench/targets.py's table with `chatd-irc` added: the runner
(bench/cli.py) takes its targets from here, so that targets.py need not
know this module. The tables of RESULTS.md show chatd-irc's runs like any
target's; what is here is the ratios.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import targets
from bench.cells import Record, flags_of, fmt, median, runs_of, saturated
from bench.servers import Certs, Running, Target, listening_event
from bench.targets import ChatdTarget
from bench.throughput import FANOUT_LINES, FANOUT_PACKED, Check

NAME = "chatd-irc"
GOAL = 0.8  # issue 23: "IRC fan-out ≥ 0.8× chatd's native fan-out"


class ChatdIrcTarget(ChatdTarget):
    """chatd with config/chatd.yaml's values (its IRC listener is on there; the
    bench moves it to a free port, as it does the chat port), spoken to over
    IRC on that listener: NICK/USER, JOIN #bench, PRIVMSG #bench, PING. The
    fan-out scenarios only (not fanout-ws: these clients speak no WebSocket)."""

    dialect = "irc"

    def __init__(self, certs: Certs) -> None:
        super().__init__(certs, name=NAME, keys=("fanout",))
        self.websocket = False

    def start(self, workdir: Path, spec: dict[str, Any]) -> Running:
        running = super().start(workdir, spec)
        try:
            event = listening_event(running.process, running.log, self.name, 20, "irc_listening")
        except RuntimeError:
            running.stop()
            raise
        running.port = int(event["port"])  # where the generator connects: the IRC listener
        running.notes["listener"] = "irc"
        return running


TARGETS: dict[str, Callable[[Certs], Target]] = {**targets.TARGETS, NAME: ChatdIrcTarget}


def _paired(records: list[Record], key: str, over: str) -> tuple[float, str] | None:
    """chatd-irc / `over` delivered msg/s: the median of the ratios of runs that
    went back to back (same run number) and their range, else of the medians."""
    irc = {r["run"]: r["msgs_per_s"] for r in runs_of(records, key, NAME) if r.get("msgs_per_s")}
    other = {r["run"]: r["msgs_per_s"] for r in runs_of(records, key, over) if r.get("msgs_per_s")}
    ratios = [irc[run] / other[run] for run in sorted(irc.keys() & other.keys())]
    if len(ratios) > 1:
        ratio = statistics.median(ratios)
        return ratio, f"{ratio:.2f}× (runs {min(ratios):.2f}–{max(ratios):.2f})"
    if ratios:
        return ratios[0], f"{ratios[0]:.2f}×"
    return None


def _cpu_per_line(group: list[Record]) -> float | None:
    """The server's CPU µs per delivered line (its CPU% over the measured phase
    ÷ delivered msg/s): what a delivery costs, whoever bounded the rate."""
    cpu, rate = median(group, "server_cpu_pct"), median(group, "msgs_per_s")
    return None if cpu is None or not rate else cpu / 100 / rate * 1e6


def irc_checks(records: list[Record]) -> list[Check]:
    """chatd-irc against chatd (the goal) and against ngircd (compared), per fan-out scenario."""
    checks: list[Check] = []
    for key in FANOUT_LINES + FANOUT_PACKED:
        group = runs_of(records, key, NAME)
        if not group:
            continue
        for over, goal in (("chatd", GOAL), ("ngircd", None)):
            paired = _paired(records, key, over)
            if paired is None:
                continue
            others = runs_of(records, key, over)
            cpu = _cpu_per_line(group), _cpu_per_line(others)
            flags = flags_of(group + others)
            bound = f" ({over}: generator-bound)" if over == "ngircd" and saturated(others) else ""
            checks.append(
                (
                    f"{key}: chatd-irc (IRC clients) / {over} delivered msg/s",
                    f"{paired[1]}, medians {fmt(median(group, 'msgs_per_s'))} / {fmt(median(others, 'msgs_per_s'))}"
                    f"; server CPU per line {fmt(cpu[0], 2)} / {fmt(cpu[1], 2)} µs{bound}"
                    + (f" (runs flagged: {flags})" if flags else ""),
                    f"≥ {goal}×" if goal else "– (IRC clients on both, same generator, same run)",
                    paired[0] >= goal if goal else None,
                )
            )
    return checks
