"""Measuring the processes around a run: the server's CPU time and RSS from
/proc, the generator's own CPU time, everything else's CPU time, and latency
percentiles."""

from __future__ import annotations

import os
import time


class Proc:
    """CPU time and RSS of the server process, from /proc."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu(self) -> float:
        if not self.pid:
            return 0.0
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime, all threads

    def rss_kib(self) -> int:
        if not self.pid:
            return 0
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0


def _busy_seconds() -> float:
    """CPU time spent by everything on the machine (all CPUs), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Over one phase: wall time, this process's CPU, the server's CPU, and the
    CPU used by anything else on the machine (other people's jobs skew a run)."""

    def __init__(self, server: Proc) -> None:
        self.server = server
        self.wall0 = time.monotonic()
        self.cpu0 = time.process_time()
        self.srv0 = server.cpu()
        self.busy0 = _busy_seconds()

    def result(self, prefix: str = "") -> dict[str, float]:
        wall = max(time.monotonic() - self.wall0, 1e-9)
        gen = time.process_time() - self.cpu0
        srv = self.server.cpu() - self.srv0
        other = max(0.0, _busy_seconds() - self.busy0 - gen - srv)
        return {
            f"{prefix}gen_cpu_pct": round(100 * gen / wall, 1),
            f"{prefix}server_cpu_pct": round(100 * srv / wall, 1),
            f"{prefix}other_cpu_pct": round(100 * other / wall, 1),
        }


def percentiles(values_ns: list[int]) -> dict[str, float | int]:
    if not values_ns:
        return {"n": 0}
    values = sorted(values_ns)
    n = len(values)

    def pick(q: float) -> float:
        return round(values[min(n - 1, int(q * n))] / 1e6, 3)

    return {
        "n": n,
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "max_ms": round(values[-1] / 1e6, 3),
        "mean_ms": round(sum(values) / n / 1e6, 3),
    }
