"""Where chatd's CPU goes during a run of the bench: its I/O workers sampled.

`python -m bench.profile [--scenario load-100x2000] [--write-interval-ms MS]`
starts chatd (this checkout, the bench's config as `bench.targets.chatd_config`
makes it, pinned to CPU 0), runs one scenario of the bench (`bench.plan`'s FULL
list) with the load generator pinned to CPU 1, and meanwhile samples the
server's `chatd-io-N` threads:

- `--profiler py-spy` (the default; `pip install py-spy`): py-spy samples
  the running server from outside, so chatd runs at its own speed. A sample
  is a stack; the report gives, per source line, the share of the worker's
  busy samples spent there (C calls such as OpenSSL's count on the line that
  makes them), and per function the share spent inside it (callees
  included). Each share times the server's CPU per delivered line is that
  line's microseconds per delivery.
- `--profiler cprofile`: cProfile in each worker thread, on the thread's CPU
  clock. It adds a fixed cost to every Python call, enough to slow chatd
  several times over (so a paced scenario needs a lower `--rate`, or its
  turns coalesce as a saturated server's do) and to weigh small functions
  too heavily.

Samples cover the whole run, set-up included (handshakes show up under their
own functions). The raw data stays in bench/.work/profile/. `--clients irc`
runs the scenario with IRC clients on chatd's IRC listener.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.plan import FULL
from bench.servers import REPO, WORK, dev_certs, listening_event, pinned, raise_child_nofile
from bench.targets import chatd_config

PY_SPY_RATE = 1000  # samples per second


def _serve(config: str, out: str) -> int:
    """The server's side under cProfile: chatd with every I/O worker profiled."""
    from chatd import cli
    from chatd.transport import worker

    run = worker.Worker._run

    def profiled(self: worker.Worker) -> None:
        # The thread's CPU time, not the wall clock: on a shared machine a
        # descheduled thread would charge the wait to whatever it was in.
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        try:
            run(self)
        finally:
            profile.disable()
            profile.dump_stats(f"{out}.{self.name}")

    worker.Worker._run = profiled  # type: ignore[method-assign]
    return cli.main(["--config", config])


def _run(spec: dict[str, Any], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    certs = dev_certs()
    config, _changes = chatd_config(certs, spec, io_threads=1, write_interval_ms=args.write_interval_ms)
    (workdir / "chatd.yaml").write_text(yaml.safe_dump(config))
    log = workdir / "chatd.log"
    if args.profiler == "cprofile":
        cmd = [sys.executable, "-m", "bench.profile", "--serve", str(workdir / "chatd.yaml"), str(workdir / "profile")]
    else:
        cmd = [sys.executable, "-m", "chatd", "--config", str(workdir / "chatd.yaml")]
    with log.open("ab") as sink:
        server = subprocess.Popen(
            pinned(cmd, 0), stdout=sink, stderr=sink, stdin=subprocess.DEVNULL, cwd=REPO, preexec_fn=raise_child_nofile
        )
    sampler = None
    try:
        port = int(listening_event(server, log, "chatd", 30)["port"])
        if args.clients == "irc":  # logged before `listening`
            port = int(listening_event(server, log, "chatd", 5, "irc_listening")["port"])
        if args.profiler == "py-spy":
            sampler = subprocess.Popen(
                [
                    *(args.py_spy, "record", "--pid", str(server.pid), "--rate", str(PY_SPY_RATE)),
                    *("--format", "raw", "--threads", "--nonblocking", "--output", str(workdir / "samples.txt")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        dialect = "irc" if args.clients == "irc" else "chatd"
        full = {**spec, "dialect": dialect, "host": "127.0.0.1", "port": port, "ca": str(certs.ca)}
        full["server_pid"] = server.pid
        done = subprocess.run(
            pinned([sys.executable, "-m", "bench.loadgen", json.dumps(full)], 1),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=900,
        )
        result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    finally:
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            sampler.wait(60)
        server.terminate()
        server.wait(60)
    return result


def _frame(frame: str) -> tuple[str, str]:
    """`Worker._turn (chatd/transport/worker.py:275)` -> the function, and it at its line."""
    name, _, where = frame.rpartition(" (")
    path, _, line = where.rstrip(")").rpartition(":")
    return f"{name} ({path})", f"{name} ({path}:{line})"


def _report_samples(path: Path, per_delivery_us: float, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    total = 0
    for raw in path.read_text().splitlines():
        stack, _, count_text = raw.rpartition(" ")
        frames = stack.split(";")
        if not frames[0].split(": ", 1)[-1].startswith("chatd-io-"):
            continue
        count = int(count_text)
        total += count
        parsed = [_frame(f) for f in frames[1:]] or [("(no Python frame)", "(no Python frame)")]
        own[parsed[-1][1]] += count
        for function in {function for function, _ in parsed}:
            inside[function] += count
    if not total:
        print(f"{path}: no samples of a chatd-io thread")
        return
    print(f"\n{path}: {total:,} busy samples of the I/O worker")
    for title, counter in (("at this line (calls it makes included)", own), ("inside this function", inside)):
        print(f"\n{'share':>6} {'µs/delivery':>11}  {title}")
        for where, count in counter.most_common(top):
            share = count / total
            print(f"{100 * share:5.1f}% {share * per_delivery_us:11.3f}  {where}")


def _report_cprofile(path: Path, delivered: int, top: int) -> None:
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\n{path}: {total:.2f} s of the thread's CPU, {1e6 * total / delivered:.2f} µs per delivery (profiled)")
    print(f"{'µs/delivery':>11} {'share':>6} {'calls/delivery':>14}  function (own time)")
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
    for (file, line, name), (_cc, calls, own, _cum, _callers) in rows[:top]:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"{1e6 * own / delivered:11.3f} {100 * own / total:5.1f}% {calls / delivered:14.3f}  {name} ({where})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="load-100x2000", help="a key of the bench's FULL list")
    parser.add_argument("--duration", type=float, help="seconds of sending, for a paced scenario")
    parser.add_argument("--rate", type=float, help="messages per second in all, for a paced scenario")
    parser.add_argument("--write-interval-ms", type=float, help="server.write_interval_ms (default: the file's)")
    parser.add_argument("--profiler", choices=("py-spy", "cprofile"), default="py-spy")
    parser.add_argument("--clients", choices=("native", "irc"), default="native", help="irc: on the IRC listener")
    parser.add_argument("--top", type=int, default=30, help="lines and functions to print (default 30)")
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(*args.serve)
    args.py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if args.profiler == "py-spy" and not Path(args.py_spy).exists():
        print("bench.profile: py-spy not found (pip install py-spy, or --profiler cprofile)", file=sys.stderr)
        return 2
    spec = dict(dict(FULL)[args.scenario])
    spec.update({key: value for key in ("duration", "rate") if (value := getattr(args, key))})
    (WORK / "profile").mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{args.scenario}-", dir=WORK / "profile"))
    result = _run(spec, args, workdir)
    delivered = result.get("delivered") or 1
    latency = result.get("latency", {})
    print(
        f"{args.scenario} {json.dumps({k: spec[k] for k in ('n', 'rate', 'duration') if k in spec})}: "
        f"delivered {delivered:,}, server CPU {result.get('server_cpu_s')} s, "
        f"{result.get('server_us_per_delivery')} µs per delivery, "
        f"p50/p99 {latency.get('p50_ms')}/{latency.get('p99_ms')} ms, write interval "
        f"{args.write_interval_ms if args.write_interval_ms is not None else 'default'} ms"
    )
    if args.profiler == "py-spy":
        _report_samples(workdir / "samples.txt", result.get("server_us_per_delivery") or 0.0, args.top)
    for path in sorted(workdir.glob("profile.*")):
        _report_cprofile(path, delivered, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
