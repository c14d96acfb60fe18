"""The cluster engine's costs on this machine (issue 24), outside `make bench`.

    .venv/bin/python -m bench.cluster_engine [--fsync always|everysec] [--n 20000]

Starts a private redis-server (Unix socket, append-only, the fsync policy
asked for; tests/support/redisserver.py) and measures, with 50 nicknames in #lobby
and 60-byte lines:

* client CPU per append, pipelined: the calling thread's CPU time
  (`time.thread_time`) to encode, send, read and decode N appends sent in
  batches of 1, 10 and 100 calls per write; and Redis's own CPU per append
  (/proc/<pid>/stat);
* the same through `Writer` (submit from one thread, the writer thread
  sends): the whole process's CPU per append;
* reader CPU per entry: `LogReader` over the N entries (XREAD COUNT 1000);
* wake-up latency: one process appends one line every 2 ms (500/s), another
  process's `LogReader` blocked in XREAD receives it; send to receipt
  (CLOCK_MONOTONIC is shared by processes), p50 and p99;
* Redis memory per retained entry: `MEMORY USAGE` of the log / `XLEN`, for
  texts of 20, 60 and 120 bytes.

Numbers from a 2-core machine shared with other work are for ordering and
budgets, not promises; run it twice.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from chatd.cluster.link import PARSER, Link
from chatd.cluster.reader import LogReader
from chatd.cluster.scripts import Calls, Incarnation, Span, load_scripts, pack
from chatd.cluster.writer import Writer
from tests.support.redisserver import RedisServer

PREFIX = "bench:"
NICKS = 50
TEXT = b"x" * 60


def _redis_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _setup(url: str) -> tuple[Link, Calls, Incarnation]:
    calls = Calls(PREFIX, 10_000_000, load_scripts())
    link = Link(url, name="bench", timeout=30, scripts=calls.scripts.values())
    link.execute([pack(b"FLUSHALL")])
    me = Incarnation("chat-a", link.run(calls.register("chat-a", 600_000, None, ["#lobby"])))
    for conn in range(1, NICKS + 1):
        link.run(calls.claim(me, conn, f"user{conn}"))
        link.run(calls.join(me, conn, f"user{conn}", "#lobby", True, 100, 10))
    return link, calls, me


def append_cpu(server: RedisServer, n: int) -> None:
    link, calls, me = _setup(server.url)
    assert server.process is not None
    print(f"client CPU per append (redis-py {PARSER} parser, pre-encoded EVALSHA, 60 B texts)")
    for batch in (1, 10, 100):
        count = n // 10 if batch == 1 else n
        cpu, redis_cpu, wall = time.thread_time(), _redis_cpu(server.process.pid), time.perf_counter()
        for start in range(0, count, batch):
            made = [
                calls.say(me, (start + i) % NICKS + 1, f"user{(start + i) % NICKS + 1}", "msg", "#lobby", [TEXT])
                for i in range(batch)
            ]
            for call, reply in zip(made, link.execute([c.command for c in made]), strict=True):
                call.decode(reply)
        cpu, redis_cpu = time.thread_time() - cpu, _redis_cpu(server.process.pid) - redis_cpu
        wall = time.perf_counter() - wall
        print(
            f"  {batch:>3} per write: client {cpu / count * 1e6:6.1f} us, redis-server {redis_cpu / count * 1e6:6.1f} us"
            f" per append; {count / wall:8.0f} appends/s ({count} appends)"
        )
    link.close()


def writer_cpu(server: RedisServer, n: int) -> None:
    link, calls, me = _setup(server.url)
    link.close()
    writer = Writer(Link(server.url, name="writer", timeout=30, scripts=calls.scripts.values()))
    thread = threading.Thread(target=writer.run, name="bench-writer")
    thread.start()
    done = threading.Semaphore(0)
    outcomes: list[object] = []

    def record(outcome: object) -> None:
        outcomes.append(outcome)
        done.release()

    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, n, 100):  # bursts, as I/O workers hand over the lines of their reads
        for i in range(100):
            conn = (start + i) % NICKS + 1
            while not writer.submit(calls.say(me, conn, f"user{conn}", "msg", "#lobby", [TEXT]), record):
                time.sleep(0.001)
        for _ in range(100):
            done.acquire()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    writer.stop()
    thread.join()
    assert all(isinstance(o, Span) for o in outcomes)
    print(f"Writer (submit + writer thread): {cpu / n * 1e6:.1f} us process CPU per append, {n / wall:.0f} appends/s")


def reader_cpu(server: RedisServer) -> None:
    calls = Calls(PREFIX, 10_000_000)
    link = Link(server.url, name="reader", timeout=30)
    head = int(link.execute([pack(b"GET", (PREFIX + "ids").encode())])[0])  # type: ignore[call-overload]
    reader = LogReader(link, PREFIX + "log", PREFIX + "ids", 0, block_ms=100)
    count, cpu = 0, time.thread_time()
    for batch in reader.batches():
        count += len(batch)
        if reader.position >= head:
            break
    cpu = time.thread_time() - cpu
    print(f"LogReader: {cpu / count * 1e6:.2f} us CPU per entry read and decoded ({count} entries)")
    link.close()
    del calls


_RECEIVER = """
import sys, time
from chatd.cluster.link import Link
from chatd.cluster.reader import LogReader
url, prefix, position, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
reader = LogReader(Link(url, name="receiver", timeout=30), prefix + "log", prefix + "ids", position, block_ms=1000)
print("ready", flush=True)
got = []
for batch in reader.batches():
    now = time.monotonic_ns()
    got.extend(now - int(entry.text) for entry in batch)
    if len(got) >= count:
        break
print("samples", " ".join(map(str, got)), flush=True)
"""


def _expect(stream: IO[str], word: str) -> str:
    """The receiver's next line that starts with `word` (its log lines go to stdout too)."""
    for line in stream:
        if line.startswith(word):
            return line
    raise RuntimeError(f"the receiver ended before saying {word!r}")


def latency(server: RedisServer, n: int = 2500) -> None:
    link, calls, me = _setup(server.url)
    position = link.run(calls.heartbeat(me, 600_000))
    receiver = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER, server.url, PREFIX, str(position), str(n)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    _expect(receiver.stdout, "ready")
    time.sleep(0.5)  # let it block in XREAD
    acks = []
    next_at = time.monotonic()
    for i in range(n):
        next_at += 0.002
        time.sleep(max(0.0, next_at - time.monotonic()))
        sent = time.monotonic_ns()
        link.run(calls.say(me, i % NICKS + 1, f"user{i % NICKS + 1}", "msg", "#lobby", [b"%d" % sent]))
        acks.append(time.monotonic_ns() - sent)
    samples = sorted(int(x) for x in _expect(receiver.stdout, "samples").split()[1:])
    receiver.wait(30)

    def pct(values: list[int], p: float) -> float:
        return values[min(len(values) - 1, int(len(values) * p))] / 1e6

    acks.sort()
    print(
        f"append -> XREAD wake-up in another process, 500/s paced, {len(samples)} lines: "
        f"p50 {pct(samples, 0.5):.2f} ms, p99 {pct(samples, 0.99):.2f} ms, max {samples[-1] / 1e6:.1f} ms; "
        f"the sender's reply: p50 {pct(acks, 0.5):.2f} ms, p99 {pct(acks, 0.99):.2f} ms"
    )
    link.close()


def memory(server: RedisServer) -> None:
    link, calls, me = _setup(server.url)
    log = (PREFIX + "log").encode()
    print("Redis memory per retained entry (MEMORY USAGE / XLEN, 20,000 entries)")
    for size in (20, 60, 120):
        link.execute([pack(b"DEL", log)])
        for start in range(0, 20_000, 100):
            link.execute(
                [
                    calls.say(me, i % NICKS + 1, f"user{i % NICKS + 1}", "msg", "#lobby", [b"%-*d" % (size, i)]).command
                    for i in range(start, start + 100)
                ]
            )
        count = link.execute([pack(b"XLEN", log)])[0]
        usage = link.execute([pack(b"MEMORY", b"USAGE", log, b"SAMPLES", b"0")])[0]
        assert isinstance(count, int) and isinstance(usage, int)
        print(f"  text {size:>3} B: {usage / count:6.1f} B per entry ({usage / count - size:.1f} B beyond the text)")
    link.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fsync", choices=("always", "everysec"), default="always")
    parser.add_argument("--n", type=int, default=20_000, help="appends per measurement")
    args = parser.parse_args()
    sockets = Path(tempfile.mkdtemp(prefix="chatd-rb", dir="/tmp"))
    data = Path(tempfile.mkdtemp(prefix="chatd-bench-redis"))
    server = RedisServer(data, sockets, "--appendfsync", args.fsync).start()
    try:
        print(f"redis-server, appendonly yes, appendfsync {args.fsync}, Unix socket; {os.cpu_count()} CPUs")
        append_cpu(server, args.n)
        writer_cpu(server, args.n)
        reader_cpu(server)
        latency(server)
        memory(server)
    finally:
        server.stop()
        shutil.rmtree(sockets, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
