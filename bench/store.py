"""The history store on its own: how many events per second it writes, and
what appending costs the thread that appends (an I/O worker, in chatd).

    python -m bench.store [--events 200000] [--rooms 100] [--rate 0] [--out FILE]

Appends `--events` events of 100 bytes spread over `--rooms` rooms, as fast as
it can (or at `--rate` per second), into a fresh database in a temporary
folder with config/chatd.yaml's history settings, and waits until the writer
has committed them all. Prints one JSON line: events written per second
(from the first append to the last commit), the appender's CPU time per
event, and the writer's batches. The issue's target: at least 20,000 stored
messages per second.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from chatd.config import load_config
from chatd.core.history import Event
from chatd.storage.sqlite import open_store

REPO = Path(__file__).resolve().parent.parent


def measure(events: int, rooms: int, rate: float) -> dict[str, object]:
    defaults = load_config(REPO / "config" / "chatd.yaml", check_files=False).history
    with tempfile.TemporaryDirectory(prefix="chatd-store-") as folder:
        config = type(defaults)(**{**defaults.__dict__, "path": Path(folder) / "chatd.db"})
        store = open_store(config, Path("bench"))
        first = store.load(50).next_id
        text = b"x" * 100
        appended_cpu = 0.0
        start = time.monotonic()
        for n in range(events):
            if rate and n % 100 == 0:
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
            room = f"#room{n % rooms}"
            before = time.thread_time()
            store.append(Event(first + n, int(time.time() * 1000), room, room, "bench", "msg", text))
            appended_cpu += time.thread_time() - before
        appended = time.monotonic()
        while store.written + store.dropped < events:
            time.sleep(0.005)
        done = time.monotonic()
        store.close()
        size = sum(p.stat().st_size for p in Path(folder).iterdir())
    return {
        "scenario": "store",
        "events": events,
        "rooms": rooms,
        "rate": rate,
        "flush_ms": defaults.flush_ms,
        "written_per_s": round(events / (done - start)),
        "append_s": round(appended - start, 3),
        "drain_after_last_append_s": round(done - appended, 3),
        "append_cpu_us": round(appended_cpu / events * 1e6, 2),
        "dropped": store.dropped,
        "failures": store.failures,
        "db_bytes_per_event": round(size / events, 1),
        "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.runs):
        print(json.dumps(measure(args.events, args.rooms, args.rate)), flush=True)


if __name__ == "__main__":
    main()
