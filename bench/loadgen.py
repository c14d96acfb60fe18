"""The load generator as a process: `python -m bench.loadgen '<json spec>'`.

Runs one scenario (bench/scenarios.py) against a server that is already
listening and prints one JSON line with the parameters and the results on
stdout. The bench runner starts it pinned to its own CPU; it raises its own
file-descriptor limit for thousands of clients.
"""

from __future__ import annotations

import json
import resource
import sys

from bench.scenarios import run_scenario


def raise_nofile(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE as far as allowed (root may raise the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in ((wanted, max(hard, wanted)), (max(soft, min(wanted, hard)), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, target)
            return target[0]
        except (ValueError, OSError):
            continue  # not root: fall back to the existing hard limit
    return soft


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.loadgen '<json spec>'", file=sys.stderr)
        return 2
    spec = json.loads(args[0])
    raise_nofile()
    result = run_scenario(spec)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
