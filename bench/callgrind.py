"""Instructions per delivered line: chatd's fan-out counted by callgrind.

`python -m bench.callgrind` runs chatd (this checkout, or a git revision's
tree as `chatd-before` gets it) under `valgrind --tool=callgrind`, with the
bench's config (config/chatd.yaml as `bench.targets.chatd_config` changes
it; one I/O thread, pinned to CPU 0), and drives it with the bench's own
fan-out scenario (`bench.scenarios.fanout`, in this process, pinned to
CPU 1). Instruction counts do not depend on what else the machine runs,
which wall-clock throughput on a shared machine does.

Only the measured phase is counted: the scenario's `Meter` marks it (from
the first send to the last receiver's last line, bench/phase.py), and the
one this module hands `fanout()`, `_Phase`, zeroes callgrind's counters when
it starts (`callgrind_control -z`) and dumps them when it ends
(`callgrind_control -d`). Set-up (handshakes, registrations, the JOIN
storm) and shutdown are outside. Each M of `--m` is one fresh server; with
two Ms, the difference (I(M2) - I(M1)) / (deliveries(M2) - deliveries(M1))
cancels what the phase costs whatever its length (the first and last
batches). bench/INSTRUCTIONS.md has the method, the commands and what they
measured.

`--scenario paced` counts the paced scenario instead (`bench.scenarios.paced`:
every client sends in turn at a fixed total rate, everyone receives
everything), one fresh server per duration of `--durations`, the difference
taken likewise: what a delivery costs when messages are spread out in time
and a turn has nothing to coalesce. The rate must be one the server sustains
under valgrind (about 50x slower), so a write interval (`--write-interval-ms`)
is scaled with it: 100 ms at 40 msg/s puts as many lines in a flush as 2 ms
at 2,000 msg/s. `--clients irc`: either with IRC clients on the IRC listener.

Everything runs ~50x slower under valgrind, so the timeouts that the
bench's scenarios take from the spec are lifted here, and the server's
handshake, registration and write timeouts too (none is on the fan-out
path); the bench's defaults are not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from bench import baseline, scenarios
from bench.loadgen import raise_nofile
from bench.measure import Meter, Proc
from bench.plan import LINES, WINDOW
from bench.servers import REPO, WORK, Certs, dev_certs, listening_event, pinned, raise_child_nofile
from bench.targets import chatd_config

# What the scenario may wait for under valgrind (the bench's defaults are
# 120 s and 5 s; the barrier's 30 s stays, and suffices at N=1000), and
# fewer handshakes in flight (50 by default), so that none waits long.
SLOW_SPEC = {"connect_timeout": 3600, "deadline": 7200, "idle": 300, "concurrency": 20}
# Server timeouts that a 50x slower server would otherwise trip during set-up.
SLOW_LIMITS = {"handshake_timeout": 600, "register_timeout": 3600, "write_timeout": 600}
# Functions whose calls and cost are reported (OpenSSL, libc, CPython). AES-GCM
# itself runs in assembly without symbols, inside SSL_write_ex's cost.
FUNCTIONS = (
    "SSL_write_ex",
    "BIO_write",
    "SSL_read_ex",
    "send",
    "recv",
    "epoll_wait",
    "__memcpy_avx_unaligned_erms",
    "stringlib_bytes_join",
    "lock_PyThread_acquire_lock",
    "gc_collect_main",
)


class _Phase(Meter):
    """The scenario's meter, which also zeroes callgrind's counters when the
    measured phase starts and dumps them when it ends."""

    pid = 0

    def __init__(self, server: Proc) -> None:
        _control("-z", self.pid)
        super().__init__(server)

    def result(self, prefix: str = "") -> dict[str, float]:
        result = super().result(prefix)
        _control("-d", self.pid)
        return result


def _control(option: str, pid: int) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True, timeout=120)


def _tree(revision: str) -> tuple[Path, str, str]:
    """The chatd tree to run, its generator dialect, and a label."""
    if revision == "this":
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "chatd"], capture_output=True, text=True
        ).stdout.strip()
        return REPO, "chatd", f"this checkout ({commit}{', chatd/ modified' if dirty else ''})"
    base = baseline.extract(REPO, WORK, revision)
    return base.tree, base.dialect, f"{base.commit[:7]} (protocol v{base.protocol})"


def run_one(
    revision: str,
    spec: dict[str, Any],
    certs: Certs,
    out: Path,
    write_interval_ms: float | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One fresh chatd under callgrind, one fan-out (or paced) run; the record."""
    tree, dialect, label = _tree(revision)
    workdir = Path(tempfile.mkdtemp(prefix="callgrind-", dir=out))
    source = yaml.safe_load((tree / "config" / "chatd.yaml").read_text())
    if "write_interval_ms" not in source["server"]:
        write_interval_ms = None  # a tree from before the write interval
    config, changes = chatd_config(
        certs, spec, io_threads=1, source=tree / "config" / "chatd.yaml", write_interval_ms=write_interval_ms
    )
    config["limits"].update(SLOW_LIMITS)
    for key, value in (settings or {}).items():
        *sections, name = key.split(".")
        if sections and sections[0] not in config:
            continue  # a tree from before the section has nothing to change
        section = config
        for part in sections:
            section = section.setdefault(part, {})
        section[name] = changes[key] = value
    (workdir / "chatd.yaml").write_text(yaml.safe_dump(config))
    log = workdir / "chatd.log"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--cache-sim=no",
        f"--callgrind-out-file={workdir}/callgrind.out",
        sys.executable,
        "-m",
        "chatd",
        "--config",
        str(workdir / "chatd.yaml"),
    ]
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": str(tree) + (os.pathsep + path if path else "")}
    with log.open("ab") as sink:
        process = subprocess.Popen(
            pinned(cmd, 0),
            stdout=sink,
            stderr=sink,
            stdin=subprocess.DEVNULL,
            cwd=tree,
            env=env,
            preexec_fn=raise_child_nofile,
        )
    try:
        event = listening_event(process, log, "chatd under valgrind", 300)
        if spec.get("dialect") == "irc":  # IRC clients, on the IRC listener (logged before `listening`)
            event = listening_event(process, log, "chatd under valgrind", 10, "irc_listening")
        _Phase.pid = process.pid
        full = {
            **spec,
            "dialect": spec.get("dialect", dialect),
            "host": "127.0.0.1",
            "port": int(event["port"]),
            "ca": str(certs.ca),
            "server_pid": process.pid,
        }
        started = time.monotonic()
        run = scenarios.paced if spec["scenario"] == "paced" else scenarios.fanout
        result = run(full, meter=_Phase)
        wall = time.monotonic() - started
    finally:
        process.terminate()
        process.wait(300)
    dump = workdir / "callgrind.out.1"
    record: dict[str, Any] = {
        "tree": label,
        "revision": revision,
        "records": spec.get("records"),
        "dialect": spec.get("dialect", dialect),
        **{k: spec[k] for k in ("scenario", "n", "s", "m", "batch", "marks", "rate", "duration") if k in spec},
        "pad": spec.get("pad", 0),
        "config_changes": {**changes, **SLOW_LIMITS, "io_threads": 1},
        "write_interval_ms": config["server"].get("write_interval_ms"),  # None: a tree without it
        "ok": result.get("ok"),
        "outcome": result.get("outcome"),
        "delivered": result.get("delivered"),
        "expected": result.get("expected"),
        "lost": result.get("lost"),
        "wall_s": round(wall, 1),
        "phase_s": result.get("elapsed_s"),
        "server_cpu_pct": result.get("server_cpu_pct"),
        "callgrind_file": str(dump),
        "server_log": str(log),
    }
    if dump.exists():
        total, functions = parse_callgrind(dump)
        record["instructions"] = total
        record["functions"] = {name: functions[name] for name in FUNCTIONS if name in functions}
        if result.get("delivered"):
            record["per_line"] = round(total / result["delivered"], 1)
    return record


def parse_callgrind(path: Path) -> tuple[int, dict[str, dict[str, int]]]:
    """The total Ir of a callgrind dump, and for each function its exclusive
    Ir, how often it was called and the inclusive Ir of those calls."""
    names: dict[str, str] = {}
    stats: dict[str, dict[str, int]] = defaultdict(lambda: {"self": 0, "calls": 0, "inclusive": 0})
    total = 0
    current = ""
    callee = ""
    pending_calls: int | None = None  # the next cost line is a call's (inclusive) cost
    name_re = re.compile(r"^\((\d+)\)(?: (.*))?$")

    def resolve(spec: str) -> str:
        match = name_re.match(spec)
        if not match:
            return spec
        ident, name = match.groups()
        if name is not None:
            names[ident] = name
        return names.get(ident, ident)

    with path.open() as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line:
                continue
            head = line[0]
            if head.isdigit() or head in "+-*":
                fields = line.split()
                cost = int(fields[1]) if len(fields) > 1 else 0
                if pending_calls is not None:
                    # calls=0: a call that was in progress when the counters were zeroed.
                    stats[callee]["calls"] += pending_calls
                    stats[callee]["inclusive"] += cost
                    pending_calls = None
                else:
                    stats[current]["self"] += cost
                continue
            if line.startswith("fn="):
                current = resolve(line[3:])
            elif line.startswith("cfn="):
                callee = resolve(line[4:])
            elif line.startswith("calls="):
                pending_calls = int(line[6:].split()[0])
            elif line.startswith("totals:"):  # every thread's (`summary:` may be one thread's)
                total = int(line.split()[1])
    return total, dict(stats)


def _difference(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [r for r in records if r.get("instructions") and r.get("ok")]
    if len(done) < 2:
        return None
    length = "duration" if done[0].get("scenario") == "paced" else "m"
    low, high = min(done, key=lambda r: r[length]), max(done, key=lambda r: r[length])
    lines = high["delivered"] - low["delivered"]
    if lines <= 0:
        return None
    diff: dict[str, Any] = {
        "tree": low["tree"],
        "scenario": low.get("scenario"),
        "dialect": low.get("dialect"),
        "records": low["records"],
        "n": low["n"],
        "s": low.get("s"),
        "rate": low.get("rate"),
        "write_interval_ms": low.get("write_interval_ms"),
        "pad": low["pad"],
        length: [low[length], high[length]],
        "extra_deliveries": lines,
        "per_line": round((high["instructions"] - low["instructions"]) / lines, 1),
    }
    for name in FUNCTIONS:
        a, b = low["functions"].get(name), high["functions"].get(name)
        if a and b:
            diff[name] = {
                "calls_per_line": round((b["calls"] - a["calls"]) / lines, 4),
                "inclusive_per_line": round((b["inclusive"] - a["inclusive"]) / lines, 1),
                "self_per_line": round((b["self"] - a["self"]) / lines, 1),
            }
    return diff


def _specs(args: argparse.Namespace, window: dict[str, Any]) -> list[dict[str, Any]]:
    """One spec per fresh server: per M of `--m`, or per duration of `--durations`."""
    if args.scenario == "paced":
        return [
            {"scenario": "paced", "n": args.n, "rate": args.rate, "duration": float(d), "drain": 600, **SLOW_SPEC}
            for d in args.durations.split(",")
        ]
    specs = []
    for m in (int(v) for v in args.m.split(",")):
        spec = {"scenario": "fanout", "n": args.n, "s": args.s, "m": m, **window, **SLOW_SPEC}
        if args.pad:
            spec["pad"] = args.pad
        specs.append(spec)
    return specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callgrind", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trees", default="this", help="comma-separated: `this` (this checkout) or git revisions (default: this)"
    )
    parser.add_argument(
        "--records",
        choices=("packed", "lines"),
        default="packed",
        help="how senders write a batch: as fanout-N (packed) or fanout-lines-N (lines)",
    )
    parser.add_argument("--clients", choices=("native", "irc"), default="native", help="irc: on the IRC listener")
    parser.add_argument("--n", type=int, default=1000, help="clients in the room (default 1000)")
    parser.add_argument("--s", type=int, default=10, help="senders among them (default 10)")
    parser.add_argument("--m", default="100,300", help="messages per sender, one fresh server each (default 100,300)")
    parser.add_argument(
        "--pad",
        type=int,
        default=0,
        help="lengthen every message by 1+PAD bytes (` xxx…`), e.g. 6 makes v1's lines as long as v2's",
    )
    parser.add_argument(
        "--scenario",
        choices=("fanout", "paced"),
        default="fanout",
        help="fanout (as fast as the window allows) or paced (a fixed total rate; --rate, --durations)",
    )
    parser.add_argument("--rate", type=float, default=40, help="paced: messages per second in all (default 40)")
    parser.add_argument(
        "--durations", default="5,15", help="paced: seconds of sending, one fresh server each (default 5,15)"
    )
    parser.add_argument(
        "--write-interval-ms",
        type=float,
        help="server.write_interval_ms for the trees that have it (default: the tree's config/chatd.yaml)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a config value for every tree (YAML), e.g. history.enabled=false; repeatable",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=WORK / "callgrind",
        help="where the callgrind files and server logs go (default bench/.work/callgrind)",
    )
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            print(f"bench.callgrind: {tool} not found (apt-get install valgrind)", file=sys.stderr)
            return 2
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, {1})  # the generator's CPU, as in the bench (the server gets 0)
    raise_nofile()
    args.out.mkdir(parents=True, exist_ok=True)
    certs = dev_certs()
    window = WINDOW if args.records == "packed" else LINES
    settings = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    per_line: dict[str, float] = {}
    for revision in args.trees.split(","):
        records = []
        for spec in _specs(args, window):
            spec = {**spec, "dialect": "irc"} if args.clients == "irc" else spec
            record = run_one(revision.strip(), spec, certs, args.out, args.write_interval_ms, settings)
            records.append(record)
            print(json.dumps(record), flush=True)
        diff = _difference(records)
        if diff:
            per_line[diff["tree"]] = diff["per_line"]
            print(json.dumps({"difference": diff}), flush=True)
    if len(per_line) == 2:
        (a, ia), (b, ib) = per_line.items()
        print(json.dumps({"ratio": {f"{a} / {b}": round(ia / ib, 4)}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
