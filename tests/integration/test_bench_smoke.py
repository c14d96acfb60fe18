"""Smoke test of `make bench`'s load generator (bench/engine.py, bench/scenarios.py,
bench/rooms.py, bench/logins.py) against a real chatd: a tiny fan-out (over chatd's
lines and over its IRC listener), rooms and paced run must count every delivery, and
a tiny accounts run must sign in, flood and resume. Not a benchmark: it only checks
that the generator and chatd's wire protocols (v3: HELLO, rooms, tags and backlogs;
v4: accounts; IRC) still agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import accounts, logins
from bench.scenarios import run_scenario
from tests.support.accounts import FAST_ARGON2, argon2id
from tests.support.ircclient import irc_port


def _spec(daemon: Any, **scenario: Any) -> dict[str, Any]:
    # Bounded by the spec's deadline, idle and connect_timeout.
    return {
        "dialect": "chatd",
        "host": "127.0.0.1",
        "port": daemon.port,
        "ca": str(daemon.pki.ca),
        "server_pid": daemon.process.pid,
        "batch": 10,
        "marks": 3,
        "deadline": 20,
        "idle": 5,
        "connect_timeout": 10,
        **scenario,
    }


def test_fanout_counts_every_delivery(start_daemon: Callable[..., Any]) -> None:
    daemon = start_daemon(log={"format": "json", "level": "info"})
    spec = _spec(daemon, scenario="fanout", n=5, s=2, m=20, records="packed", samples=2)
    result = run_scenario(spec)
    assert result["ok"], result
    assert result["expected"] == 5 * 2 * 20  # chatd echoes MSG to the sender too
    assert result["delivered"] == result["expected"] and result["lost"] == 0, result
    assert result["corrupt"] == 0 and result["order_errors"] == 0, result
    assert result["latency"]["n"] == 2 * 2 * 20, result  # every line at both samples
    assert result["ack_rtt"]["n"] == 2 * 2, result  # two batches of 10 per sender, each PONGed


def test_fanout_over_irc_counts_every_delivery(start_daemon: Callable[..., Any]) -> None:
    """The bench's chatd-irc target: the IRC generator (as against ngircd) on chatd's IRC listener."""
    daemon = start_daemon(log={"format": "json", "level": "info"}, irc={"listen": "127.0.0.1:0"})
    spec = _spec(daemon, scenario="fanout", n=5, s=2, m=20, records="packed", samples=2)
    result = run_scenario({**spec, "dialect": "irc", "port": irc_port(daemon)})
    assert result["ok"], result
    assert result["expected"] == 5 * 2 * 20 - 2 * 20  # IRC echoes nothing to the sender
    assert result["delivered"] == result["expected"] and result["lost"] == 0, result
    assert result["corrupt"] == 0 and result["order_errors"] == 0, result
    assert result["ack_rtt"]["n"] == 2 * 2, result  # two batches of 10 per sender, each PONGed


def test_rooms_counts_every_delivery_in_its_room(start_daemon: Callable[..., Any]) -> None:
    daemon = start_daemon(log={"format": "json", "level": "info"})
    spec = _spec(daemon, scenario="rooms", n=9, rooms=3, m=20, records="lines", samples=3)
    result = run_scenario(spec)
    assert result["ok"], result
    assert result["room_size"] == 3
    assert result["expected"] == 9 * 3 * 20  # each client hears its room's 3 senders, itself too
    assert result["delivered"] == result["expected"] and result["lost"] == 0, result
    assert result["corrupt"] == 0 and result["order_errors"] == 0 and result["wrong_room"] == 0, result
    assert result["latency"]["n"] == 3 * 3 * 20, result  # one sample in each room
    assert result["ack_rtt"]["n"] == 9 * 2, result


def test_accounts_signs_in_floods_and_resumes(start_daemon: Callable[..., Any], short_dir: Path) -> None:
    """bench/logins.py's three parts, tiny, at a cheap argon2 cost (bench/accounts.py
    runs them at config/chatd.yaml's, against a chatd it starts itself)."""
    daemon = start_daemon(
        log={"format": "json", "level": "info"},
        accounts={"argon2": FAST_ARGON2},
        control={"socket": str(short_dir / "control.sock")},
    )
    scenario = {"logins": 4, "concurrency": 2, "flood": 8, "victims": 6, "ping_ms": 20, "phases": 1, "phase_s": 2}
    created = accounts.create_accounts(short_dir / "control.sock", argon2id(accounts.PASSWORD), scenario)
    assert created == 1 + 4 + 2 + 6  # the pinger, the sign-ins, the flood's users and its victims
    result = logins.run(_spec(daemon, **scenario, **accounts.NAMES, password=accounts.PASSWORD))
    assert result["logins_ok"] == 4 and result["login_errors"] == {}, result
    assert result["resume_ok"] == 4 and result["guest_ok"] == 4, result  # one token from each sign-in
    assert result["ping_idle"]["n"] > 0 and result["ping_flood"]["n"] > 0, result
    assert set(result["flood_answers"]) <= {"auth_failed", "auth_throttled", "welcome", "auth_busy", "closed"}, result
    assert result["flood_drains"] == ["done"], result


def test_paced_counts_every_delivery_and_the_servers_cpu_per_line(start_daemon: Callable[..., Any]) -> None:
    daemon = start_daemon(log={"format": "json", "level": "info"})
    spec = _spec(daemon, scenario="paced", n=5, rate=100, duration=1, samples=2, drain=10)
    result = run_scenario(spec)
    assert result["ok"], result
    assert result["expected"] == 100 * 5  # every client hears every message, its own too
    assert result["delivered"] == result["expected"] and result["lost"] == 0, result
    assert result["corrupt"] == 0 and result["order_errors"] == 0, result
    assert result["server_cpu_s"] > 0 and result["server_us_per_delivery"] > 0, result
