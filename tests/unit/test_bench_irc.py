"""The pure parts of `make bench`'s IRC fan-out (issue 23, bench/ircfanout.py):
the chatd-irc target is in the runner's table and runs only the fan-out
scenarios, the bench's chatd config puts the IRC listener on a free port, and
RESULTS.md's rows check chatd-irc against chatd (≥ 0.8×, paired by run) and
compare it with ngircd. The generator against the listener runs in
tests/integration/test_bench_smoke.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.ircfanout import GOAL, NAME, TARGETS, ChatdIrcTarget, irc_checks
from bench.targets import Certs, chatd_config

CERTS = Certs(Path("ca.crt"), Path("server.crt"), Path("server.key"))


def run(target: str, run: int, msgs_per_s: float, key: str = "fanout-50", cpu: float = 100.0) -> dict[str, Any]:
    return {"key": key, "target": target, "run": run, "msgs_per_s": msgs_per_s, "server_cpu_pct": cpu, "ok": True}


def test_chatd_irc_is_a_target_that_runs_the_fanout_scenarios_over_irc() -> None:
    target = TARGETS[NAME](CERTS)
    assert isinstance(target, ChatdIrcTarget) and target.dialect == "irc" and target.family == "chatd"
    assert target.runs("fanout-50") and target.runs("fanout-lines-200")
    assert not target.runs("paced") and not target.runs("fanout-ws", {"websocket": True})
    assert {"chatd", "ngircd"} <= TARGETS.keys()


def test_the_bench_config_moves_the_irc_listener_to_a_free_port() -> None:
    config, changes = chatd_config(CERTS, {"scenario": "fanout", "n": 50})
    assert config["irc"]["listen"] == "127.0.0.1:0"  # never config/chatd.yaml's 6697, which may be taken
    assert "irc.listen" not in changes  # an address, like the chat port's: not a setting under test


def test_irc_fanout_is_checked_against_native_by_pairs_of_runs_and_shown_beside_ngircd() -> None:
    records = [
        run("chatd", 1, 1000.0),
        run(NAME, 1, 900.0, cpu=90.0),
        run("ngircd", 1, 1500.0),
        run("chatd", 2, 2000.0),
        run(NAME, 2, 1400.0),
        run("ngircd", 2, 1500.0),
        run("chatd", 3, 1000.0),
        run(NAME, 3, 850.0),
    ]
    rows = {name: (measured, goal, met) for name, measured, goal, met in irc_checks(records)}
    native = rows["fanout-50: chatd-irc (IRC clients) / chatd delivered msg/s"]
    assert native[0].startswith("0.85× (runs 0.70–0.90)")  # the median of 0.9, 0.7 and 0.85
    assert native[1] == f"≥ {GOAL}×" and native[2] is True
    ngircd = rows["fanout-50: chatd-irc (IRC clients) / ngircd delivered msg/s"]
    assert ngircd[0].startswith("0.77× (runs 0.60–0.93)") and ngircd[2] is None  # compared, no goal
    assert "server CPU per line" in native[0]


def test_irc_fanout_below_the_goal_is_not_met() -> None:
    rows = irc_checks([run("chatd", 1, 1000.0, key="fanout-200"), run(NAME, 1, 700.0, key="fanout-200")])
    assert [(name, met) for name, _, _, met in rows] == [
        ("fanout-200: chatd-irc (IRC clients) / chatd delivered msg/s", False)
    ]
