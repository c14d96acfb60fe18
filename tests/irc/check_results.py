"""Check an irctest run from its JUnit XML (`make irctest`): no test failed,
and every id of the must-pass list passed (a skip is not a pass: irctest
skips quietly when a capability is missing).

    python tests/irc/check_results.py results.xml must-pass.txt

The must-pass list has one test id per line (ids may hold spaces:
`testNoTags[whole-no colon]`). Prints the counts, each failure, and each
must-pass id that did not pass with what happened to it; exits 1 if any.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

OUTCOMES = ("passed", "failed", "error", "skipped")


def outcomes(xml: Path) -> dict[str, str]:
    """Test id (as pytest writes it on the command line) -> one of OUTCOMES."""
    found = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        module, _, cls = case.get("classname", "").rpartition(".")
        test_id = f"{module.replace('.', '/')}.py::{cls}::{case.get('name')}"
        if case.find("failure") is not None:
            found[test_id] = "failed"
        elif case.find("error") is not None:
            found[test_id] = "error"
        elif case.find("skipped") is not None:
            found[test_id] = "skipped"
        else:
            found[test_id] = "passed"
    return found


def must_pass(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    results, must = outcomes(Path(argv[1])), must_pass(Path(argv[2]))
    if not results:
        print(f"irctest: no test ran ({argv[1]} is empty)")
        return 1
    counts = {kind: sum(1 for v in results.values() if v == kind) for kind in OUTCOMES}
    print("irctest: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    bad = sorted(test for test, outcome in results.items() if outcome in ("failed", "error"))
    missing = [test for test in must if results.get(test) != "passed"]
    for test in bad:
        print(f"  {results[test].upper()} {test}")
    for test in missing:
        print(f"  NOT PASSED ({results.get(test, 'not run')}) {test}")
    print(f"must-pass: {len(must) - len(missing)} of {len(must)} passed")
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
