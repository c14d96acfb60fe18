"""Runner of the aio bench: `python -m bench.aio_main [--quick] [--targets chatd,ngircd,seed] [--runs 3]`.

For every scenario, target and run: start the target fresh (pinned to CPU 0),
run the load generator in its own process (pinned to CPU 1), stop the target.
Each result is one JSON line appended to bench/results-aio.jsonl; medians over
the runs go to bench/RESULTS-aio.md (bench/aio_report.py).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import aio_report
from bench.aio_targets import REPO, TARGETS, Target, TargetUnavailable, make_pki, two_cpus

HERE = Path(__file__).resolve().parent
JSONL = HERE / "results-aio.jsonl"
FANOUTS = [(50, 10, 2000), (200, 20, 500), (1000, 10, 100)]


def run_loadgen(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    spec = {**spec, "cpu": 1 if two_cpus() else None}
    proc = subprocess.run([sys.executable, "-m", "bench.aio_loadgen", json.dumps(spec)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"loadgen exit {proc.returncode}: {proc.stderr[-600:]}"}
    return json.loads(lines[-1])


def machine_busy_pct(interval: float = 0.5) -> float:
    """CPU use of the whole machine over `interval` s, from /proc/stat (all CPUs)."""
    def snap() -> tuple[int, int]:
        vals = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return idle, sum(vals)
    i0, t0 = snap()
    time.sleep(interval)
    i1, t1 = snap()
    return round(100.0 * (1 - (i1 - i0) / max(1, t1 - t0)), 1)


def wait_for_quiet(limit_s: float = 60.0, busy_max: float = 15.0) -> float:
    """Wait (bounded) until something else on the machine stops using CPU; returns the last reading."""
    deadline = time.monotonic() + limit_s
    busy = machine_busy_pct()
    while busy > busy_max and time.monotonic() < deadline:
        time.sleep(1.0)
        busy = machine_busy_pct()
    return busy


def one_run(name: str, spec: dict[str, Any], pki: dict[str, str], opts: dict[str, Any],
            timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"aio-{name}-") as wd:
        target: Target = TARGETS[name](Path(wd), pki, **opts)
        try:
            target.start()
        except TargetUnavailable as exc:
            return {"target": name, "skipped": str(exc)}
        try:
            full = {**spec, "dialect": target.dialect, "port": target.port, "ca": pki["ca"], "pid": target.pid}
            if name == "seed":
                full["insecure"] = False
            try:
                res = run_loadgen(full, timeout)
            except subprocess.TimeoutExpired:
                res = {"error": f"loadgen timed out after {timeout} s"}
            alive = target.proc is not None and target.proc.poll() is None
            res.update(target=name, target_alive_after=alive)
            if name == "chatd" and opts.get("log_level") == "info":
                log = target.log_tail(10**8)
                res["slow_consumer_events"] = log.count('"slow_consumer"')
                res["disconnect_slow_consumer"] = sum(
                    1 for ln in log.splitlines() if '"disconnect"' in ln and "slow_consumer" in ln)
            if (res.get("stalled") or res.get("lost") or res.get("error")) and name != "seed":
                keep = Path(tempfile.gettempdir()) / "aio-bench-logs"
                keep.mkdir(exist_ok=True)
                kept = keep / f"{name}-{spec['scenario']}-{int(time.time() * 1000)}.log"
                kept.write_text(target.log_tail(10**8))
                res["target_log_kept"] = str(kept)  # outside the tree: the target's log of an odd run
            if name == "chatd":
                log = target.log_tail(10**8)
                res["chatd_errors_logged"] = sum(1 for ln in log.splitlines()
                                                 if '"level": "error"' in ln or '"exception"' in ln)
            return res
        finally:
            target.stop()


def plan(quick: bool, targets: list[str]) -> list[tuple[str, dict[str, Any], dict[str, Any], float]]:
    """(target, loadgen spec, target options, timeout) for one run of everything."""
    jobs = []
    for n, s, m in FANOUTS:
        for t in targets:
            jobs.append((t, {"scenario": "fanout", "n": n, "s": s, "m": m}, {}, 180.0))
    dur = 5 if quick else 20
    for t in targets:
        jobs.append((t, {"scenario": "paced", "n": 100, "rate": 200, "duration_s": dur}, {}, dur + 120.0))
    k = 1000 if quick else 5000
    for t in targets:
        # Bounded in time, reporting how far it got: registering costs O(clients already in the room)
        # (JOIN to everyone; IRC also NAMES), and the seed handshakes in its one accept thread.
        limit = (20 if quick else 30) if t == "seed" else (30 if quick else 45)
        jobs.append((t, {"scenario": "capacity", "k": k, "timeout_s": limit}, {}, limit + 120.0))
    if "chatd" in targets:
        slow_opts = {"send_queue_bytes": 98304, "log_level": "info"}
        # 10 x 3,000 lines of ~230 bytes = 6.9 MB for the slow client: more than the kernel's
        # socket buffers (tcp_wmem max 4 MiB) hold, so chatd's own send queue must overflow
        base = {"n": 50, "s": 10, "m": 3000, "pad": 200}
        jobs.append(("chatd", {"scenario": "slow", "variant": "without", **base}, slow_opts, 180.0))
        jobs.append(("chatd", {"scenario": "slow", "variant": "with", "slow_consumer": True, **base}, slow_opts, 180.0))
    return jobs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.aio_main")
    ap.add_argument("--quick", action="store_true", help="1 run, paced 5 s, capacity 1,000 clients")
    ap.add_argument("--targets", default="chatd,ngircd,seed")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--quiet-wait", type=float, default=30.0,
                    help="wait up to this many s before each run for other CPU users to finish (shared machine)")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-aio.md")
    ap.add_argument("--render", metavar="STARTED",
                    help="only rewrite --out from the results-aio.jsonl lines of the run started at STARTED")
    ap.add_argument("--elapsed", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.render:
        rows = [json.loads(ln) for ln in JSONL.read_text().splitlines() if ln.strip()]
        rows = [r for r in rows if r.get("started") == args.render]
        if not rows:
            ap.error(f"no results with started={args.render} in {JSONL}")
        names = [t for t in TARGETS if any(r.get("target") == t for r in rows)]
        args.out.write_text(aio_report.render(rows, runs=1 + max(r["run"] for r in rows), quick=rows[0]["quick"],
                                              elapsed_s=args.elapsed, targets=names,
                                              started=args.render))
        print(f"wrote {args.out}")
        return 0
    # SIGTERM/SIGHUP unwind like Ctrl-C, so every started target is stopped by one_run's `finally`
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown targets {unknown}; known: {sorted(TARGETS)}")
    runs = args.runs or (1 if args.quick else 3)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results: list[dict[str, Any]] = []
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aio-pki-") as pki_dir:
        pki = make_pki(Path(pki_dir))
        jobs = plan(args.quick, targets)
        for run in range(runs):
            for name, spec, opts, timeout in jobs:
                busy = wait_for_quiet(args.quiet_wait)
                res = one_run(name, spec, pki, opts, timeout)
                res["machine_busy_before_pct"] = busy
                res.update(run=run, started=stamp, quick=args.quick)
                res.setdefault("scenario", spec["scenario"])
                for key in ("variant", "n", "s", "m", "k", "pad"):
                    if key in spec:
                        res.setdefault(key, spec[key])
                results.append(res)
                print(json.dumps(res), flush=True)
                with JSONL.open("a") as fh:
                    fh.write(json.dumps(res) + "\n")
    elapsed = time.monotonic() - t_start
    args.out.write_text(aio_report.render(results, runs=runs, quick=args.quick, elapsed_s=elapsed,
                                          targets=targets, started=stamp))
    print(f"wrote {args.out} ({elapsed:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
