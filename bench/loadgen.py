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
from typing import Any

from bench.scenarios import run_scenario
from bench.servers import FD_RESERVE, NOFILE


def raise_nofile(wanted: int = NOFILE) -> int:
    """Raise RLIMIT_NOFILE as far as allowed (root may raise the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in ((wanted, max(hard, wanted)), (max(soft, min(wanted, hard)), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, target)
            return target[0]
        except (ValueError, OSError):
            continue  # not root: fall back to the existing hard limit
    return soft


def fit_capacity(key: str, spec: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """A capacity scenario's clients, as many as asked if the descriptor limit
    allows it (servers and the generator get the limit this process can raise
    itself to), else that limit less FD_RESERVE, with a note."""
    if spec["scenario"] != "capacity":
        return spec
    limit = raise_nofile()
    fits = limit - FD_RESERVE
    if spec["clients"] <= fits:
        return spec
    notes.append(
        f"{key}: {fits:,} clients, not {spec['clients']:,}: a process may open {limit:,} descriptors here "
        "(the hard limit, `ulimit -Hn`, which only a process with CAP_SYS_RESOURCE may raise)"
    )
    return {**spec, "clients": fits, "clients_asked": spec["clients"]}


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
