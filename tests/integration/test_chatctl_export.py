"""`chatctl history export` against a running chatd's database, and its errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import Daemon, run_chatctl, wait_until
from tests.support.chatctl import TIMEOUT, Peer

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def export(config: Path, *args: str) -> Any:
    return run_chatctl("history", "export", *args, "--config", str(config))


def jsonl(result: Any) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_export_reads_the_database_while_chatd_runs(
    start_daemon: Callable[..., Daemon], peer: Callable[[Daemon, str], Peer]
) -> None:
    daemon = start_daemon(history={"flush_ms": 20})
    alice, bob = peer(daemon, "alice"), peer(daemon, "bob")
    alice.send('hello, with ünïcödé and "quotes"')
    bob.expect_eventually("MSG #lobby alice")
    bob.send("/me waves")
    alice.expect_eventually("ACTION #lobby bob")
    alice.send("/topic what we talk about")
    alice.join("#Rust")
    alice.send("elsewhere")
    alice.send("/ping done")
    alice.expect_eventually("PONG done")

    events = wait_until(
        lambda: (found := jsonl(export(daemon.config_path, "#lobby"))) and len(found) == 3 and found,
        TIMEOUT,
        "three events of #lobby on disk",
    )
    assert [(e["nick"], e["kind"], e["text"]) for e in events] == [
        ("alice", "msg", 'hello, with ünïcödé and "quotes"'),
        ("bob", "action", "waves"),
        ("alice", "topic", "what we talk about"),
    ]
    for event in events:
        assert set(event) == {"id", "time", "room", "nick", "kind", "text"}
        assert event["room"] == "#lobby" and TIME.fullmatch(event["time"]), event
    assert events[0]["id"] < events[1]["id"] < events[2]["id"]

    # The room as it was created is shown, whatever the spelling asked for.
    rust = wait_until(lambda: jsonl(export(daemon.config_path, "#RUST")), TIMEOUT, "#rust on disk")
    assert [(e["room"], e["text"]) for e in rust] == [("#Rust", "elsewhere")]

    text = export(daemon.config_path, "#lobby", "--format", "text")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ #lobby <alice> hello, with ünïcödé and \"quotes\"", lines[0]
    ), lines[0]
    assert lines[1].endswith(" #lobby * bob waves")
    assert lines[2].endswith(" #lobby -- alice set the topic: what we talk about")

    assert len(jsonl(export(daemon.config_path, "#lobby", "--since", "1h"))) == 3
    later = export(daemon.config_path, "#lobby", "--since", "2999-01-01")
    assert later.returncode == 0 and later.stdout == ""
    assert later.stderr == "chatctl: nothing was said in #lobby since 2999-01-01\n"
    assert daemon.process is not None and daemon.process.poll() is None  # chatd ran all along


def test_export_errors_are_one_sentence_with_a_status(start_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    daemon = start_daemon(history={"flush_ms": 20})
    never = export(daemon.config_path, "#never")
    assert never.returncode == 1 and "never been stored" in never.stderr

    bad = export(daemon.config_path, "#lobby", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since 'last tuesday': expected a date" in bad.stderr
    unquoted = export(daemon.config_path, "lobby")
    assert unquoted.returncode == 2 and "not a room name" in unquoted.stderr

    def with_history(**history: Any) -> Path:
        config = dict(daemon.config)
        config["history"] = history
        path = tmp_path / f"chatd-{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    off = export(with_history(enabled=False), "#lobby")
    assert off.returncode == 1 and "history.enabled is false" in off.stderr
    missing = export(with_history(path=str(tmp_path / "none.db")), "#lobby")
    assert missing.returncode == 3 and "no history database at" in missing.stderr
    (tmp_path / "junk.db").write_text("not sqlite at all, but long enough to be read as a header " * 20)
    junk = export(with_history(path=str(tmp_path / "junk.db")), "#lobby")
    assert junk.returncode == 3 and "is not an SQLite database" in junk.stderr
    config_error = export(tmp_path / "absent.yaml", "#lobby")
    assert config_error.returncode == 2 and config_error.stderr.startswith("chatctl: config error: ")
    for result in (never, bad, unquoted, off, missing, junk, config_error):
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
