"""chatd with tracemalloc on, for bench/memory.py: `python -m bench.memprobe
<dir> --config <file>` runs `chatd.cli.main` with a thread that, for every
line `<name>` on its stdin, writes `<dir>/<name>.snap` (a tracemalloc
snapshot) and `<dir>/<name>.json` (glibc's `mallinfo2`: what malloc has
handed out, tracemalloc's total, the time), then `<dir>/<name>.done`.

Not a part of chatd: tracemalloc slows every allocation and costs memory of
its own, so RSS is measured in a run without it (bench/memory.py runs both).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def mallinfo() -> dict[str, int]:
    """glibc's counters: `in_use` bytes handed out by malloc (arena and mmap),
    `arena` bytes of heap it holds; empty without glibc 2.33+."""
    try:
        libc = ctypes.CDLL(None)
        call = libc.mallinfo2
    except (OSError, AttributeError):
        return {}
    call.restype = _MallInfo2
    info = call()
    return {"in_use": info.uordblks + info.hblkhd, "arena": info.arena, "free": info.fordblks}


# sys._debugmallocstats()'s lines worth keeping, by the key they are kept under.
_PYMALLOC = {
    "# arenas allocated current": "py_arenas",
    "# bytes in allocated blocks": "py_allocated",
    "# bytes in available blocks": "py_available",
    "unused pools": "py_unused_pools",
}


def pymalloc(out: Path) -> dict[str, int]:
    """pymalloc's figures (`py_arenas` in bytes, `py_allocated`: bytes in its
    blocks handed out, `py_available`: free blocks in pools in use,
    `py_unused_pools`: bytes of empty pools its arenas keep), read from
    `sys._debugmallocstats()`, which writes to file descriptor 2 only: it is
    pointed at a file meanwhile (another thread's log line may land there)."""
    path = out / "pymalloc.txt"
    saved = os.dup(2)
    with path.open("w") as f:
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    figures: dict[str, int] = {}
    for line in path.read_text().splitlines():
        for prefix, key in _PYMALLOC.items():
            if prefix in line and "=" in line and key not in figures:
                value = int(line.rsplit("=", 1)[1].replace(",", "").strip() or 0)
                figures[key] = value * (1 << 20) if key == "py_arenas" else value
    return figures


def _serve(out: Path) -> None:
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        traced = 0
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(str(out / f"{name}.snap"))
            traced, _peak = tracemalloc.get_traced_memory()
        info = {"traced": traced, "time": time.time(), **mallinfo(), **pymalloc(out)}
        (out / f"{name}.json").write_text(json.dumps(info))
        (out / f"{name}.done").write_text("")


def main() -> int:
    out = Path(sys.argv[1])
    depth = int(os.environ.get("BENCH_TRACE_DEPTH", "1"))
    if depth:
        tracemalloc.start(depth)  # 0: glibc's figures only, without tracemalloc's own memory
    # The daemon takes its signals with sigtimedwait in the main thread: this
    # thread must not be the one the kernel delivers them to.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    threading.Thread(target=_serve, args=(out,), name="bench-memprobe", daemon=True).start()
    signal.pthread_sigmask(signal.SIG_SETMASK, old)
    from chatd.cli import main as chatd_main

    return chatd_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
