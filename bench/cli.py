"""`python -m bench` (what `make bench` runs): start each target, run every
scenario against it with the load generator, write bench/results.jsonl (one
raw JSON line per run) and bench/RESULTS.md (medians).

Each (scenario, target, run) gets a fresh server. Runs are interleaved
(scenario by scenario, target by target, then the next run) so that a slow
drift of the machine hits every target alike. Before each run the runner
waits, within limits, for the machine to be quiet: other people's jobs on
the same two CPUs would otherwise land in the numbers (each run records how
much CPU everything else used while it ran).
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import accounts, history, report
from bench.clustertarget import TARGETS  # targets.py's, chatd-irc and chatd-cluster
from bench.loadgen import fit_capacity
from bench.plan import FULL, OWN_SERVER, QUICK, SEED_LIMITS
from bench.servers import REPO, WORK, Certs, Running, Target, TargetUnavailable, cpu_count, dev_certs, pinned
from bench.targets import ChatdBeforeTarget

DEFAULT_TARGETS = "chatd,chatd-before,ngircd,seed,floor,chatd-io1,chatd-io2,chatd-io4,chatd-nohistory,chatd-nometrics,chatd-noaccounts,chatd-irc,chatd-cluster,chatd-cluster-rp2,chatd-cluster3"

BENCH = Path(__file__).resolve().parent
LOCK = Path("/tmp/chatd-bench.lock")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run, smaller parameters (~3 min)")
    parser.add_argument("--runs", type=int, help="runs per scenario and target (default 3, quick 1)")
    parser.add_argument(
        "--targets",
        default=DEFAULT_TARGETS,
        help=f"comma-separated, of {', '.join(TARGETS)} (default {DEFAULT_TARGETS})",
    )
    parser.add_argument("--scenarios", default="", help="comma-separated prefixes, e.g. fanout,paced (default: all)")
    parser.add_argument(
        "--slow-runs", type=int, help="runs of the slow-consumer pair, whose p99 varies most (default 5, quick 1)"
    )
    parser.add_argument(
        "--capacity-runs",
        type=int,
        help="runs of the (long) capacity scenario for all but chatd and the floor (default 1)",
    )
    parser.add_argument("--churn-runs", type=int, default=1, help="runs of the churn scenario (default 1)")
    parser.add_argument("--churn-seconds", type=float, help="how long the churn lasts (default 60, quick 15)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="seconds to wait for a quiet machine before each run (default 60)",
    )
    parser.add_argument("--out", type=Path, default=BENCH, help="where RESULTS.md and results.jsonl go")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="the git revision chatd-before runs (default: main without issue-11: "
        "their merge-base, or main just before it merged issue-11)",
    )
    parser.add_argument("--report-only", action="store_true", help="rewrite RESULTS.md from results.jsonl")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    results_path = args.out / "results.jsonl"
    if args.report_only:
        records = [json.loads(line) for line in results_path.read_text().splitlines() if line.strip()]
        (args.out / "RESULTS.md").write_text(report.render(records[0]["machine"], records))
        return 0

    plan = [
        (key, spec)
        for key, spec in (QUICK if args.quick else FULL)
        if not args.scenarios or any(key.startswith(p) for p in args.scenarios.split(","))
    ]
    if args.churn_seconds:
        plan = [(key, {**spec, "duration": args.churn_seconds} if key == "churn" else spec) for key, spec in plan]
    notes: list[str] = []
    plan = [(key, fit_capacity(key, spec, notes)) for key, spec in plan]
    WORK.mkdir(exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    certs = dev_certs()
    targets: list[Target] = []
    for name in args.targets.split(","):
        target = TARGETS[name.strip()](certs)
        if isinstance(target, ChatdBeforeTarget):
            target.revision = args.baseline
        try:
            target.check()
        except TargetUnavailable as exc:
            notes.append(f"{name}: skipped ({exc})")
            _say(f"skipping {name}: {exc}")
            continue
        targets.append(target)
    machine = _machine(targets, runs, args, notes)
    records: list[dict[str, Any]] = []
    results_path.write_text("")
    started = time.monotonic()
    slow_runs = args.slow_runs or (1 if args.quick else max(runs, 5))
    for run in range(1, max(runs, slow_runs) + 1):
        for key, spec in plan:
            if run > (slow_runs if key.startswith("slow") else runs):
                continue
            for target in targets:
                if not target.runs(key, spec) or (key.startswith(OWN_SERVER) and target.name != "chatd"):
                    continue
                if key == "capacity" and target.name not in ("chatd", "floor") and run > (args.capacity_runs or 1):
                    continue
                if key == "churn" and run > args.churn_runs:
                    continue
                record = _one_run(target, key, spec, run, certs, args.quiet_wait)
                record["machine"] = machine
                records.append(record)
                with results_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                _say(_summary(record))
    machine["duration_s"] = round(time.monotonic() - started)
    for record in records:
        record["machine"] = machine
    results_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    (args.out / "RESULTS.md").write_text(report.render(machine, records))
    _say(f"wrote {args.out / 'RESULTS.md'} and {results_path} in {machine['duration_s']} s")
    return 0


def _one_run(
    target: Target, key: str, spec: dict[str, Any], run: int, certs: Certs, quiet_wait: float
) -> dict[str, Any]:
    spec = dict(spec)
    if target.name == "seed":
        spec.update(SEED_LIMITS)
    record: dict[str, Any] = {"key": key, "target": target.name, "run": run}
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # never two of these benches at once on one machine
        record["quiet_before_pct"] = _wait_quiet(quiet_wait)
        if key.startswith(OWN_SERVER):  # it starts its own chatd (in a directory of its own), or none
            measure = accounts.measure if key.startswith(accounts.KEY) else history.measure
            record.update({"ok": True, **measure(key, spec)})
            return record
        workdir = Path(tempfile.mkdtemp(prefix=f"{key}-{target.name}-", dir=WORK))
        try:
            running = target.start(workdir, spec)
        except (RuntimeError, OSError) as exc:
            record.update(ok=False, error=f"start failed: {exc}"[:2000])
            return record
        try:
            record.update(_generate(running, target, spec, certs))
        finally:
            record["server_alive_at_end"] = running.process.poll() is None
            record["server_exit"] = running.stop()
            record.update(getattr(running, "closing", {}))  # a cluster's Redis figures (bench/clustertarget.py)
            record.update(_log_evidence(target, running))
    if record.get("ok") and not os.environ.get("BENCH_KEEP_WORK"):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        record["workdir"] = str(workdir)
    return record


def _generate(running: Running, target: Target, spec: dict[str, Any], certs: Certs) -> dict[str, Any]:
    full = {
        **spec,
        "dialect": target.dialect,
        "host": "127.0.0.1",
        "port": running.port,
        "ca": str(certs.ca),
        "server_pid": running.pid,
    }
    if getattr(running, "ports", None):  # the nodes of a cluster (bench/clustertarget.py)
        full["ports"] = running.ports
    limit = float(spec.get("deadline", 120)) + float(spec.get("connect_timeout", 120)) + 120
    if spec["scenario"] == "churn":
        limit = float(spec["duration"]) + float(spec["idle"]) + 3 * float(spec["timeout"]) + 60
    cmd = [sys.executable, "-m", "bench.loadgen", json.dumps(full)]
    if target.placement == "pinned":
        cmd = pinned(cmd, 1)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"generator timed out after {limit:.0f}s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"ok": False, "error": f"generator exit {done.returncode}: {done.stderr[-1500:]}"}
    result = json.loads(lines[-1])
    for noise in ("host", "port", "ca", "server_pid"):
        result.pop(noise, None)
    result.update(running.notes)
    return result


def _log_evidence(target: Target, running: Running) -> dict[str, Any]:
    """What the server's own log says about the run (drops, crashes)."""
    try:
        text = running.log.read_text(errors="replace")
    except OSError:
        return {}
    if target.family == "chatd":
        # Events, not mentions: each drop also ends in a `disconnect` whose
        # reason is slow_consumer.
        return {
            "log_slow_consumer": text.count('"event": "slow_consumer"'),
            "log_tracebacks": text.count('"exception"'),
            "log_tls_handshake_failed": text.count('"event": "tls_handshake_failed"'),
            "log_accept_failed": text.count('"event": "accept_failed"'),
            "log_lines": text.count("\n"),
        }
    if target.name == "ngircd":
        return {
            "log_write_buffer_exhausted": text.count("Write buffer space exhausted"),
            "log_read_buffer_exhausted": text.count("Receive buffer space exhausted"),
        }
    return {"log_tracebacks": text.count("Traceback")}


def _busy_fraction(seconds: float) -> float:
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
        return sum(values) - values[3] - values[4], sum(values)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def _wait_quiet(limit: float, threshold: float = 0.10) -> float:
    """Wait up to `limit` s for the whole machine to be < 10% busy; return the last reading (%)."""
    deadline = time.monotonic() + limit
    busy = _busy_fraction(0.5)
    if busy >= threshold:
        _say(f"machine {busy:.0%} busy (someone else's job?); waiting up to {limit:.0f}s")
    while busy >= threshold and time.monotonic() < deadline:
        busy = _busy_fraction(1.0)
    return round(100 * busy, 1)


def _machine(targets: list[Target], runs: int, args: argparse.Namespace, notes: list[str]) -> dict[str, Any]:
    import platform
    import ssl

    model = ""
    try:
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = match.group(1).strip() if match else ""
    except OSError:
        pass
    mem = ""
    try:
        match = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
        mem = f"{int(match.group(1)) // 1024} MiB" if match else ""
    except OSError:
        pass
    debian = Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").exists() else ""
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cpus": cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "os": f"Debian {debian}" if debian else platform.platform(),
        "python": sys.version.split()[0],
        "openssl": ssl.OPENSSL_VERSION,
        "targets": {t.name: t.version() for t in targets},
        "pinning": (
            "server on CPU 0, generator on CPU 1 (taskset); chatd-ioN: neither pinned"
            if cpu_count() >= 2
            else "none (1 CPU)"
        ),
        "runs": runs,
        "quick": args.quick,
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "notes": notes,
    }


def _summary(record: dict[str, Any]) -> str:
    head = f"run {record['run']} {record['key']:<13} {record['target']:<7}"
    if "error" in record:
        return f"{head} ERROR {record['error'][:200]}"
    parts = [f"ok={record.get('ok')}"]
    for key in (
        "msgs_per_s",
        "sent_per_s",
        "handshakes_per_s",
        "registrations_per_s",
        "rss_kib_per_client",
        "written_per_s",
        "append_cpu_us",
        "backlog_ms_per_join",
        "logins_per_s",
        "ping_p99_ratio",
        "resume_per_s",
        "io_threads",
        "failed_receivers",
        "unsent",
        "log_slow_consumer",
        "connects_per_s",
        "failed",
        "rss_kib_start",
        "rss_kib_peak",
        "rss_kib_end",
        "rss_kib_idle",
    ):
        if key in record:
            parts.append(f"{key}={record[key]}")
    for kind, k in (record.get("kinds") or {}).items():
        parts.append(f"{kind}={k['per_s']}/s(fail {k['failed']}, timeout {k['timeouts']})")
    if "latency" in record and record["latency"].get("n"):
        parts.append(f"p50={record['latency']['p50_ms']}ms p99={record['latency']['p99_ms']}ms")
    for key in (
        "lost",
        "corrupt",
        "wrong_room",
        "gen_cpu_pct",
        "server_cpu_pct",
        "other_cpu_pct",
        "handshake_gen_cpu_pct",
        "nonreader_dropped",
    ):
        if key in record:
            parts.append(f"{key}={record[key]}")
    return f"{head} " + " ".join(parts)


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)
