"""What a join's backlog costs the server: chatd's CPU time per `/join` of a
room with `history.backlog` (50) events, against the same joins of a room
without history.

    python -m bench.backlog [--joins 2000] [--text-bytes 100]

chatd runs with config/chatd.yaml's values (bench/targets.py), pinned to CPU
0. One client fills #full with 50 events, then a second client joins and
parts #full `--joins` times, waiting for each answer, and does the same with
#empty (no history). The server's CPU time (from /proc) per join, minus that
of a join without backlog, is the backlog's cost. Prints one JSON line. The
issue's target: under 5 ms per join.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import ssl
import tempfile
from pathlib import Path

from bench.measure import Proc
from bench.servers import dev_certs
from bench.targets import ChatdTarget


class Line:
    def __init__(self, port: int, ca: Path, nick: str) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        self.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), 10), server_hostname="localhost")
        self.file = self.sock.makefile("rb")
        self.send(nick)
        self.until(b"CURRENT ")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def until(self, prefix: bytes) -> int:
        count = 0
        while not self.file.readline().startswith(prefix):
            count += 1
        return count


def cycle(client: Line, room: str, joins: int) -> int:
    """Join and part `room` `joins` times; returns the lines of the last join."""
    lines = 0
    for _ in range(joins):
        client.send(f"/join {room}")
        lines = client.until(b"CURRENT ")
        client.send(f"/part {room}")
        client.until(b"PART ")
        client.until(b"CURRENT ")
    return lines


def measure(joins: int, text_bytes: int) -> dict[str, object]:
    certs = dev_certs()
    work = Path(tempfile.mkdtemp(prefix="chatd-backlog-"))
    running = ChatdTarget(certs).start(work, {"scenario": "backlog", "n": 3})
    try:
        stats = Proc(running.pid)
        filler = Line(running.port, certs.ca, "filler")
        filler.send("/join #full")
        filler.until(b"CURRENT ")
        for i in range(60):
            filler.send(f"/msg #full {i:04d} " + "x" * max(0, text_bytes - 5))
        filler.send("/ping filled")
        filler.until(b"PONG filled")
        joiner = Line(running.port, certs.ca, "joiner")
        results = {}
        for room in ("#empty", "#full", "#empty", "#full"):  # twice each, interleaved
            before = stats.cpu()
            lines = cycle(joiner, room, joins)
            results.setdefault(room, []).append(((stats.cpu() - before) / joins * 1000, lines))
        empty = min(ms for ms, _ in results["#empty"])
        full = min(ms for ms, _ in results["#full"])
        return {
            "scenario": "backlog",
            "joins": joins,
            "text_bytes": text_bytes,
            "backlog_lines": results["#full"][0][1],
            "server_ms_per_join_empty": round(empty, 3),
            "server_ms_per_join_with_backlog": round(full, 3),
            "backlog_ms_per_join": round(full - empty, 3),
            "join_and_part_ms_with_backlog": round(full, 3),
        }
    finally:
        running.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=2000)
    parser.add_argument("--text-bytes", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(measure(args.joins, args.text_bytes)), flush=True)


if __name__ == "__main__":
    main()
