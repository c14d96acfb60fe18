"""Runner of the aio bench: `python -m bench.aio_main [--quick] [--targets chatd,ngircd,seed] [--runs 3]`.

For every scenario, target and run: start the target fresh (pinned to CPU 0),
run the load generator in its own process (pinned to CPU 1), stop the target.
Each result is one JSON line appended to bench/results-aio.jsonl; medians over
the runs go to bench/RESULTS-aio.md (bench/aio_report.py).
"""

from __future__ import annotations

import argparse
import json
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
        jobs.append((t, {"scenario": "capacity", "k": k, "timeout_s": 120}, {}, 240.0))
    if "chatd" in targets:
        slow_opts = {"send_queue_bytes": 98304, "log_level": "info"}
        base = {"n": 50, "s": 10, "m": 1000}
        jobs.append(("chatd", {"scenario": "slow", "variant": "without", **base}, slow_opts, 180.0))
        jobs.append(("chatd", {"scenario": "slow", "variant": "with", "slow_consumer": True, **base}, slow_opts, 180.0))
    return jobs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.aio_main")
    ap.add_argument("--quick", action="store_true", help="1 run, paced 5 s, capacity 1,000 clients")
    ap.add_argument("--targets", default="chatd,ngircd,seed")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS-aio.md")
    args = ap.parse_args(argv)
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
                res = one_run(name, spec, pki, opts, timeout)
                res.update(run=run, started=stamp, quick=args.quick)
                res.setdefault("scenario", spec["scenario"])
                for key in ("variant", "n", "s", "m", "k"):
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
