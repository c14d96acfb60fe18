"""Medians and table cells from the per-run records, for report.py: a value at
a dotted path, the median and spread over runs, a target's label, the flags a
group of runs earns, a Markdown table. Pure functions, no I/O."""

from __future__ import annotations

import statistics
from typing import Any

Record = dict[str, Any]
GEN_SATURATED = 90.0  # generator CPU% at which its numbers are only lower bounds
NOISY = 20.0  # CPU% used by other processes during a run that makes it suspect


def get_path(record: Record, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def values_at(records: list[Record], path: str) -> list[float]:
    return [v for v in (get_path(r, path) for r in records) if isinstance(v, (int, float))]


def median(records: list[Record], path: str) -> float | None:
    values = values_at(records, path)
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "–"
    if digits == 0:
        return f"{value:,.0f}{unit}"
    return f"{value:,.{digits}f}{unit}"


def spread(records: list[Record], path: str, digits: int = 0) -> str:
    values = values_at(records, path)
    if not values:
        return "–"
    med = fmt(statistics.median(values), digits)
    if len(values) == 1:
        return med
    return f"{med} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def runs_of(records: list[Record], key: str, target: str) -> list[Record]:
    return [r for r in records if r.get("key") == key and r.get("target") == target and "error" not in r]


def targets_in(records: list[Record]) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r["target"] not in seen:
            seen.append(r["target"])
    return seen


def saturated(group: list[Record]) -> bool:
    return any((r.get("gen_cpu_pct") or 0) >= GEN_SATURATED for r in group)


def mib(kib: float | None) -> str:
    return fmt(None if kib is None else kib / 1024, 0 if kib is not None and kib >= 100 * 1024 else 1)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def flags_of(group: list[Record], cpu_key: str = "gen_cpu_pct", other_key: str = "other_cpu_pct") -> str:
    flags = []
    if any((r.get(cpu_key) or 0) >= GEN_SATURATED for r in group):
        flags.append("gen≥90%")
    if any((r.get(other_key) or 0) >= NOISY for r in group):
        flags.append("noisy")
    if any(not r.get("ok") for r in group):
        flags.append("incomplete")
    return " ".join(flags)


def who(records: list[Record], target: str) -> str:
    """The target, and for chatd how many I/O threads it ran and where."""
    group = [r for r in records if r.get("target") == target and "error" not in r]
    io = median(group, "io_threads")
    placement = next((r.get("placement") for r in group if r.get("placement")), "pinned")
    if io is None:
        return target if placement == "pinned" else f"{target} (shared)"
    return f"{target} (io {io:.0f}, {placement})"
