"""contrib/: the Prometheus alert rules and the Grafana dashboard, checked with
the real tools (promtool, from Debian's `prometheus` package; skipped with a
reason where it is missing) and against the metrics chatd really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatd.metrics import SOURCE_HELP
from tests.conftest import fake_snapshot as snapshot
from tests.conftest import render_metrics as render

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "contrib" / "prometheus" / "alerts.yml"
ALERTS_TEST = REPO / "contrib" / "prometheus" / "alerts_test.yml"
DASHBOARD = REPO / "contrib" / "grafana" / "chatd.json"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus; .ci/run does)"
)


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=REPO)


def exported_names() -> set[str]:
    """Every sample name chatd exports, with a history source as the history store
    will give, and a cluster node's figures (each one the metrics module describes)."""
    sources = dict(snapshot().sources)
    sources["cluster"] = dict.fromkeys(SOURCE_HELP["cluster"], 1.0)
    text = render(snapshot(sources=sources))
    return set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))


def dashboard_exprs() -> Iterator[str]:
    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                yield node["expr"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    return walk(json.loads(DASHBOARD.read_text()))


def alert_exprs() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    # Among them: the certificate alert fires 14 days before expiry, and ChatdDown.
    result = promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_finds_nothing_wrong_with_the_exposition() -> None:
    result = promtool("check", "metrics", stdin=render(snapshot()))
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_the_alert_tests_cover_the_certificate_and_down_alerts() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert {"ChatdCertificateExpiresSoon", "ChatdDown"} <= tested


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_chatd_metric_named_is_exported(source: str) -> None:
    exprs = alert_exprs() if source == "alerts" else list(dashboard_exprs())
    named = {name for expr in exprs for name in re.findall(r"\b((?:chatd|process)_[a-z_]+)\b", expr)}
    assert named and named <= exported_names(), named - exported_names()


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool has no query checker of its own; a rule file of one recording rule
    # per query, with Grafana's variables filled in, has its expressions parsed.
    def concrete(expr: str) -> str:
        return expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$instance", ".*")

    rules = [{"record": f"dashboard:query_{n}", "expr": concrete(e)} for n, e in enumerate(dashboard_exprs())]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_takes_its_data_source_from_a_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert "__inputs" not in dashboard  # nothing to map on import
