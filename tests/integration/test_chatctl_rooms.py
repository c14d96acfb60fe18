"""`chatctl rooms` and the rooms count of `chatctl status`, against a real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, Daemon, chatctl_for
from tests.support.chatctl import Peer


@pytest.fixture
def controlled(start_daemon: Callable[..., Daemon], short_dir: Path) -> Daemon:
    daemon = start_daemon(
        control={"socket": str(short_dir / "control.sock")},
        rooms={"autojoin": ["#lobby"], "permanent": ["#lobby", "#help"]},
    )
    daemon.wait_for_event("control_listening")
    return daemon


chatctl = chatctl_for


def test_rooms_lists_members_and_topics(controlled: Daemon, peer: Callable[[Daemon, str], Peer]) -> None:
    alice, bob = peer(controlled, "alice"), peer(controlled, "bob")
    alice.join("#rust")
    alice.send("/topic borrow checker questions")
    alice.expect_eventually("TOPIC #rust alice")
    bob.join("#Rust")  # one room: rooms ignore case
    carol = peer(controlled, "carol")
    carol.send("/part")
    carol.expect_eventually("CURRENT *")

    result = chatctl(controlled, "rooms", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"room": "#help", "members": [], "topic": ""},
        {"room": "#lobby", "members": ["alice", "bob"], "topic": ""},
        {"room": "#rust", "members": ["alice", "bob"], "topic": "borrow checker questions"},
    ]

    human = chatctl(controlled, "rooms")
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0].split() == ["ROOM", "USERS", "TOPIC", "MEMBERS"]
    assert lines[1].split() == ["#help", "0", "-"]
    assert lines[2].split() == ["#lobby", "2", "-", "alice", "bob"]
    assert lines[3].split() == ["#rust", "2", "borrow", "checker", "questions", "alice", "bob"]
    assert lines[4] == "3 rooms"
    # The columns line up: each row's topic starts where the TOPIC heading does.
    column = lines[0].index("TOPIC")
    assert [line[column:].split()[0] for line in lines[1:4]] == ["-", "-", "borrow"]


def test_a_long_topic_is_cut_in_the_table_but_whole_in_json(
    controlled: Daemon, peer: Callable[[Daemon, str], Peer]
) -> None:
    alice = peer(controlled, "alice")
    topic = "a topic that goes on " * 5
    alice.send(f"/topic {topic.strip()}")
    alice.expect_eventually("TOPIC #lobby alice")
    human = chatctl(controlled, "rooms").stdout
    lobby = next(line for line in human.splitlines() if line.startswith("#lobby"))
    assert "a topic that goes on a topic" in lobby and "…" in lobby and lobby.endswith(" alice")
    rooms = json.loads(chatctl(controlled, "rooms", "--json").stdout)
    assert rooms[1]["topic"] == topic.strip()


def test_status_counts_rooms(controlled: Daemon, peer: Callable[[Daemon, str], Peer]) -> None:
    alice = peer(controlled, "alice")
    status = json.loads(chatctl(controlled, "status", "--json").stdout)
    assert status["rooms"] == 2  # the permanent ones
    alice.join("#rust")
    status = json.loads(chatctl(controlled, "status", "--json").stdout)
    assert status["rooms"] == 3
    human = chatctl(controlled, "status")
    assert human.returncode == 0, human.stderr
    assert any(line.split() == ["rooms:", "3"] for line in human.stdout.splitlines()), human.stdout
    alice.send("/part #rust")
    alice.expect_eventually("CURRENT #lobby")
    assert json.loads(chatctl(controlled, "status", "--json").stdout)["rooms"] == 2


def test_rooms_without_a_daemon_exits_3(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatctl", "rooms", "--socket", str(tmp_path / "none.sock")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 3
    assert result.stderr.startswith("chatctl: ") and len(result.stderr.splitlines()) == 1


def test_rooms_is_in_chatctl_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatctl", "--help"], capture_output=True, text=True, timeout=30, cwd=REPO
    )
    assert result.returncode == 0
    assert "rooms" in result.stdout and "members and topics" in result.stdout
