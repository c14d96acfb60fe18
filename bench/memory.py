"""Where an idle client's memory goes: `python -m bench.memory --clients 2000
[--websocket] [--probe DEPTH] [--settle 35]`.

Starts chatd as the bench does (config/chatd.yaml, `chatd_config` with
`max_clients` lifted for the count), connects and registers `--clients`
clients from this process (the bench's engine; `--websocket` through
`GET /ws`), waits until the registrations' JOIN traffic has drained and
then `--settle` seconds more (so that the server's idle-time work, such as
giving back TLS buffers, has run), and reads `/proc/<pid>/smaps_rollup`
before and after. RSS per client is the difference over the clients.

With `--probe 0` the server runs under bench/memprobe.py, and the report
adds glibc's figures per client (`in_use`: what malloc handed out, OpenSSL's
allocations and Python's larger objects; `free`: what its heaps hold
unused, much of it already given back by `malloc_trim`) and pymalloc's
(`py_arenas`: its arenas, `py_allocated`: the small objects in them,
`py_available` and `py_unused_pools`: what they hold free). With `--probe 1` tracemalloc runs too, and the report adds what
Python allocated per client (`traced`), by the line that allocated it.
tracemalloc costs memory of its own, so RSS comes from a run without it. Not part of `make bench`; the capacity scenario
(bench/scenarios.py) is what `make bench` reports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import yaml

from bench.engine import Conn
from bench.harness import handshake_then_register, make_engine, nick
from bench.loadgen import raise_nofile
from bench.servers import (
    FD_RESERVE,
    REPO,
    WORK,
    Scraper,
    cpu_count,
    dev_certs,
    listening_event,
    pinned,
    raise_child_nofile,
)
from bench.targets import chatd_config


def rollup(pid: int) -> dict[str, int]:
    """`/proc/<pid>/smaps_rollup` in KiB, by field (Rss, Pss, Anonymous, ...)."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields


class Server:
    """chatd in `workdir`, from `tree`, under memprobe with `probe` (tracemalloc's depth) unless None."""

    def __init__(self, tree: Path, workdir: Path, clients: int, probe: int | None) -> None:
        certs = dev_certs()
        config, _changes = chatd_config(
            certs, {"scenario": "capacity", "clients": clients}, source=tree / "config" / "chatd.yaml"
        )
        path = workdir / "chatd.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = workdir / "chatd.log"
        self.snaps = workdir / "snaps"
        self.snaps.mkdir()
        module = ["-m", "bench.memprobe", str(self.snaps)] if probe is not None else ["-m", "chatd"]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(tree), str(REPO)]),
            "BENCH_TRACE_DEPTH": str(probe or 0),
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                pinned([sys.executable, *module, "--config", str(path)], 0),
                stdout=out,
                stderr=out,
                stdin=subprocess.PIPE if probe is not None else subprocess.DEVNULL,
                cwd=tree,
                env=env,
                preexec_fn=raise_child_nofile,
            )
        self.port = int(listening_event(self.process, self.log, "chatd", 30)["port"])
        self.metrics_port = int(listening_event(self.process, self.log, "chatd", 30, "metrics_listening")["port"])
        self.probed = probe is not None

    def snapshot(self, name: str) -> tuple[tracemalloc.Snapshot | None, dict[str, int]] | None:
        if not self.probed:
            return None
        assert self.process.stdin is not None
        self.process.stdin.write(name.encode() + b"\n")
        self.process.stdin.flush()
        done = self.snaps / f"{name}.done"
        deadline = time.monotonic() + 600
        while not done.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"no snapshot {name} from the server")
            time.sleep(0.2)
        info = json.loads((self.snaps / f"{name}.json").read_text())
        snap = self.snaps / f"{name}.snap"
        return (tracemalloc.Snapshot.load(str(snap)) if snap.exists() else None), info

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def idle_clients(port: int, clients: int, websocket: bool, settle: float) -> tuple[Any, list[Conn]]:
    """`clients` registered clients, their JOIN traffic drained, then `settle` s more."""
    spec = {"host": "127.0.0.1", "port": port, "dialect": "chatd", "verify": False, "websocket": websocket}
    engine = make_engine(spec)
    conns = [Conn(engine, i, nick(i)) for i in range(clients)]

    def drain(buf: bytearray | bytes, n: int) -> None:
        engine.received_total += buf.count(b"\n", 0, n)

    def idle(conn: Conn) -> None:
        conn.feed = drain

    # Registering all at once costs O(N²) JOINs: 20,000 took 20 minutes on a busy 2-core machine.
    outcome = handshake_then_register(engine, conns, 100, 300 + clients**2 / 100_000, idle)
    if outcome != "done" or engine.registered < clients:
        raise RuntimeError(f"registered {engine.registered} of {clients} ({outcome}; {dict(engine.errors)})")
    engine.run(lambda: False, 120, idle=1.0)
    engine.run(lambda: False, settle)
    return engine, conns


def python_by_line(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, clients: int) -> list[dict[str, Any]]:
    rows = []
    for stat in after.compare_to(before, "lineno")[:40]:
        frame = stat.traceback[0]
        where = f"{os.path.relpath(frame.filename, REPO) if frame.filename.startswith(str(REPO)) else frame.filename}:{frame.lineno}"
        rows.append({"where": where, "bytes_per_client": round(stat.size_diff / clients), "blocks": stat.count_diff})
    return rows


def measure(
    tree: Path, clients: int, websocket: bool, probe: int | None, settle: float, scrape: bool
) -> dict[str, Any]:
    WORK.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="memory-", dir=WORK))
    server = Server(tree, workdir, clients, probe)
    scraper = Scraper(server.metrics_port, {}) if scrape else None  # as `make bench` does, every second
    try:
        time.sleep(1.0)  # the metrics listener and the history store settle in
        first = rollup(server.process.pid)
        snap0 = server.snapshot("before")
        engine, conns = idle_clients(server.port, clients, websocket, settle)
        last = rollup(server.process.pid)
        snap1 = server.snapshot("after")
        open_now = sum(1 for c in conns if c.state == "open")
        result: dict[str, Any] = {
            "tree": str(tree),
            "clients": clients,
            "still_open": open_now,
            "websocket": websocket,
            "probe": probe,
            "scraped": scrape,
            "rss_kib_before": first["Rss"],
            "rss_kib_after": last["Rss"],
            "per_client_kib": {
                k: round((last[k] - first[k]) / clients, 2) for k in ("Rss", "Anonymous", "Private_Dirty")
            },
        }
        if snap0 is not None and snap1 is not None:
            (s0, i0), (s1, i1) = snap0, snap1
            for key in (
                "traced",
                "in_use",
                "arena",
                "free",
                "py_arenas",
                "py_allocated",
                "py_available",
                "py_unused_pools",
            ):
                if key in i0:
                    result[f"{key}_bytes_per_client"] = round((i1[key] - i0[key]) / clients)
            if s0 is not None and s1 is not None:
                result["python_by_line"] = python_by_line(s0, s1, clients)
        engine.close_all()
        return result
    finally:
        if scraper is not None:
            scraper.stop()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--websocket", action="store_true")
    parser.add_argument(
        "--probe",
        type=int,
        metavar="DEPTH",
        help="run the server under bench/memprobe.py: glibc's figures, and with DEPTH > 0 "
        "tracemalloc's (frames kept per allocation) as well",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=35.0,
        help="seconds idle before measuring (default 35: the idle sweep's two rounds and a trim)",
    )
    parser.add_argument("--scrape", action="store_true", help="ask /metrics every second meanwhile, as make bench does")
    parser.add_argument("--tree", type=Path, default=REPO, help="the chatd tree to run (default this checkout)")
    args = parser.parse_args(argv)
    limit = raise_nofile()
    if args.clients > limit - FD_RESERVE:
        parser.error(f"--clients {args.clients}: this process may open {limit} descriptors (ulimit -Hn)")
    if cpu_count() >= 2:
        os.sched_setaffinity(0, {1})  # the server is pinned to CPU 0
    result = measure(args.tree.resolve(), args.clients, args.websocket, args.probe, args.settle, args.scrape)
    print(json.dumps(result))
    print(f"RSS per client: {result['per_client_kib']} KiB", file=sys.stderr)
    figures = {k[: -len("_bytes_per_client")]: v for k, v in result.items() if k.endswith("_bytes_per_client")}
    if figures:
        print(f"bytes per client: {figures}", file=sys.stderr)
    if "python_by_line" in result:
        for row in result["python_by_line"][:25]:
            print(f"  {row['bytes_per_client']:>7} B  {row['blocks']:>8}  {row['where']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
