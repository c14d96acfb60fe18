"""`chatctl connect` given two nodes of one network (issue 24): when the node
it is on dies, it reconnects to the other and catches up by id with no gap,
each missed line once.

The client is stopped (SIGSTOP) while its node is killed and the node's
lease runs out, so that it comes back only once its nickname is free again;
the lines said meanwhile are on the other node.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.support.redisserver import require_redis

require_redis()

from tests.conftest import REPO, Daemon, wait_until  # noqa: E402
from tests.support.chatctl import TIMEOUT, connect_cmd, untagged  # noqa: E402

LEASE_S = 3.0


def test_chatctl_given_two_nodes_reconnects_to_the_other_and_misses_nothing(
    start_node: Callable[..., Daemon], tmp_path: Path
) -> None:
    a, b = start_node("a", lease_s=LEASE_S), start_node("b", lease_s=LEASE_S)
    out, err = tmp_path / "out", tmp_path / "err"
    command = connect_cmd(a.port, f"127.0.0.1:{b.port}", "--nick", "carol", "--ca", str(a.pki.ca), "--reconnect")
    with out.open("w") as stdout, err.open("w") as stderr:
        script = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, text=True, cwd=REPO)
    try:
        assert script.stdin is not None
        wait_until(lambda: "CURRENT #lobby" in out.read_text(), TIMEOUT, "carol registered on node a")
        bob, watcher = b.client("bob"), b.client("watcher")
        bob.send("before")
        wait_until(lambda: "MSG #lobby bob before" in out.read_text(), TIMEOUT, "carol saw bob's line")
        script.send_signal(signal.SIGSTOP)
        try:
            assert a.process is not None
            a.process.kill()
            a.process.wait(TIMEOUT)
            a.process = None  # killed on purpose: nothing to stop at teardown
            watcher.expect_eventually("LEAVE carol connection_lost node a lost", 4 * (LEASE_S + 1))
            for n in range(1, 4):
                bob.send(f"missed {n}")
            bob.send("/ping sent")
            bob.expect_eventually("PONG sent")
        finally:
            script.send_signal(signal.SIGCONT)
        wait_until(lambda: "#lobby: caught up, 3 missed events" in err.read_text(), 3 * TIMEOUT, "caught up on b")
        script.stdin.write("back\n")
        script.stdin.close()
        bob.expect_eventually("MSG #lobby carol back")
        assert script.wait(TIMEOUT) == 0, err.read_text()
    finally:
        if script.poll() is None:
            script.kill()
            script.wait(TIMEOUT)
        if script.stdin is not None and not script.stdin.closed:
            script.stdin.close()
    texts = [untagged(line) for line in out.read_text().splitlines()]
    assert texts.count("MSG #lobby bob before") == 1
    assert [text for text in texts if text.startswith("MSG #lobby bob missed ")] == [
        f"MSG #lobby bob missed {n}" for n in range(1, 4)
    ]
    assert "could not fetch everything" not in err.read_text()
