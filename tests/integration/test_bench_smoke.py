"""Smoke test of `make bench`'s load generator (bench/engine.py, bench/scenarios.py)
against a real chatd: a tiny fan-out must count every delivery. Not a benchmark:
it only checks that the generator and chatd's wire protocol still agree."""

from __future__ import annotations

from typing import Any, Callable

from bench.scenarios import run_scenario


def test_fanout_counts_every_delivery(start_daemon: Callable[..., Any]) -> None:
    daemon = start_daemon(log={"format": "json", "level": "info"})
    spec = {"scenario": "fanout", "dialect": "chatd", "host": "127.0.0.1", "port": daemon.port,
            "ca": str(daemon.pki.ca), "server_pid": daemon.process.pid,
            "n": 5, "s": 2, "m": 20, "batch": 10, "marks": 3, "records": "packed",
            "samples": 2, "deadline": 20, "idle": 5, "connect_timeout": 10}
    result = run_scenario(spec)  # bounded by the spec's deadline, idle and connect_timeout
    assert result["ok"], result
    assert result["expected"] == 5 * 2 * 20  # chatd echoes MSG to the sender too
    assert result["delivered"] == result["expected"] and result["lost"] == 0, result
    assert result["corrupt"] == 0 and result["order_errors"] == 0, result
    assert result["latency"]["n"] == 2 * 2 * 20, result  # every line at both samples
    assert result["ack_rtt"]["n"] == 2 * 2, result  # two batches of 10 per sender, each PONGed
