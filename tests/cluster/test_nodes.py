"""Several real chatd nodes on one real redis-server (issue 24): one network.

Each test starts two or three chatd processes with a `cluster:` section and
its own key prefix on the session's private redis-server (Unix socket,
append-only, fsync always), and talks to them as clients do.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.support.redisserver import require_redis

require_redis()

from chatd.metrics import SOURCE_HELP  # noqa: E402
from tests.conftest import Daemon, Scrape, chatctl_for, http_get, scrape, wait_until  # noqa: E402
from tests.support.chatclient import ChatClient, event_id  # noqa: E402


def events(client: ChatClient, count: int, verb: str = "MSG") -> list[tuple[int, str]]:
    """The next `count` lines with `verb` (others skipped), as (id, line)."""
    seen = []
    while len(seen) < count:
        tags, line = client.read_event(10)
        if line.startswith(verb + " "):
            seen.append((event_id(tags), line))
    return seen


def test_lines_across_nodes_arrive_in_one_order_with_the_same_ids(start_node: Callable[..., Daemon]) -> None:
    a, b = start_node("a"), start_node("b")
    alice = a.client("alice")
    bob = b.client("bob")
    assert alice.readline() == "JOIN #lobby bob"
    for i in range(5):
        alice.send(f"from a {i}")
        bob.send(f"from b {i}")
    seen_by_alice, seen_by_bob = events(alice, 10), events(bob, 10)
    assert seen_by_alice == seen_by_bob
    ids = [id_ for id_, _ in seen_by_alice]
    assert ids == sorted(set(ids))
    assert [line for _, line in seen_by_alice if "from a" in line] == [f"MSG #lobby alice from a {i}" for i in range(5)]
    # Each node keeps its own history, the same: every echoed id in both.
    for client in (alice, bob):
        client.send("/history #lobby after 0")
        history = events(client, 10)
        assert [id_ for id_, _ in history] == ids
        assert client.readline() == "HISTORY #lobby 10 end"


def test_who_rooms_topics_renames_dms_and_leave_across_nodes(start_node: Callable[..., Daemon]) -> None:
    a, b = start_node("a"), start_node("b")
    alice, bob = a.client("alice"), b.client("bob")
    assert alice.readline() == "JOIN #lobby bob"
    bob.send("/who")
    assert bob.readline() == "USERS #lobby alice bob"
    alice.join("#rust")
    # Node b learns of the join from the log, later than alice's own node: wait for it.
    wait_until(lambda: scrape(b)("chatd_rooms") == 2, 30, "node b to see alice's #rust")
    bob.send("/rooms")
    assert [bob.readline() for _ in range(3)] == ["ROOM #lobby 2", "ROOM #rust 1", "ROOMS 2"]
    joined = bob.join("#Rust")
    assert "USERS #rust alice bob" in joined
    assert alice.readline() == "JOIN #rust bob"
    alice.send("/topic #rust ownership")
    assert alice.readline() == "TOPIC #rust alice ownership"
    assert bob.readline() == "TOPIC #rust alice ownership"
    bob.send("/nick Bobby")
    assert bob.readline() == "RENAME bob Bobby"
    assert alice.readline() == "RENAME bob Bobby"  # once, though they share two rooms
    alice.send("/msg bobby psst")
    assert alice.readline() == "DM alice Bobby psst"
    assert bob.readline() == "DM alice Bobby psst"
    assert alice.last_tags["id"] == bob.last_tags["id"]
    bob.send("/part #rust see you")
    assert bob.readline() == "PART #rust Bobby see you"
    assert bob.readline() == "CURRENT #lobby"
    assert alice.readline() == "PART #rust Bobby see you"
    bob.send("/quit gone")
    assert alice.readline() == "LEAVE Bobby quit gone"
    alice.send("/who #lobby")
    assert alice.readline() == "USERS #lobby alice"


def test_one_nickname_raced_from_three_nodes_goes_to_exactly_one(start_node: Callable[..., Daemon]) -> None:
    nodes = [start_node(name) for name in ("a", "b", "c")]
    clients = [node.client() for node in nodes for _ in range(7)][:20]
    for client in clients:
        client.expect_greeting()
    barrier = threading.Barrier(len(clients))
    answers: list[str] = [""] * len(clients)

    def claim(index: int) -> None:
        barrier.wait(10)
        clients[index].send("carol")
        answers[index] = clients[index].readline(15)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    won = [answer for answer in answers if answer.startswith("WELCOME carol ")]
    lost = [answer for answer in answers if answer.startswith("ERR nick_taken ")]
    assert len(won) == 1 and len(lost) == len(clients) - 1, answers


def test_two_nodes_on_one_port_with_reuse_port(start_node: Callable[..., Daemon]) -> None:
    a = start_node("a", server={"port": 0, "reuse_port": True})
    b = start_node("b", server={"port": a.port, "reuse_port": True})
    assert b.port == a.port
    clients = [a.client(f"user{i}") for i in range(20)]  # to the one port: the kernel picks a process
    served = {name: len(node.find_events("nickname")) for name, node in (("a", a), ("b", b))}
    assert served["a"] and served["b"] and sum(served.values()) == 20, served
    viewer = a.client("viewer")  # whichever node it reached, it sees one network
    viewer.send("/who")
    everyone = sorted([*(client.nick for client in clients), "viewer"], key=str.lower)
    assert viewer.expect_eventually("USERS #lobby ") == "USERS #lobby " + " ".join(everyone)


def test_operators_see_and_act_on_the_whole_network(start_node: Callable[..., Daemon], short_dir: Path) -> None:
    a = start_node("a", control={"socket": str(short_dir / "a.sock")})
    b = start_node("b", control={"socket": str(short_dir / "b.sock")})
    alice, bob = a.client("alice"), b.client("bob")
    assert alice.readline() == "JOIN #lobby bob"
    who = json.loads(chatctl_for(a, "who", "--json").stdout)
    assert [(c["nick"], c["node"], bool(c["peer"])) for c in who] == [("alice", "a", True), ("bob", "b", False)]
    shown = chatctl_for(a, "who").stdout.splitlines()
    assert shown[0].split() == ["NICK", "PEER", "CONNECTED", "IDLE", "NODE"] and shown[2].split()[-1] == "b"
    status = json.loads(chatctl_for(b, "status", "--json").stdout)
    cluster = status["cluster"]
    assert (cluster["node"], cluster["state"], cluster["redis_reachable"]) == ("b", "serving", True)
    assert cluster["log_position"] >= 1 and cluster["clients_here"] == 1
    assert chatctl_for(b, "broadcast", "maintenance", "at", "noon").stdout == "sent to 2 clients\n"
    assert alice.readline() == "INFO maintenance at noon"
    assert bob.readline() == "INFO maintenance at noon"
    assert chatctl_for(b, "kick", "alice", "spam").returncode == 0  # on the other node
    assert alice.expect_closed() == ["BYE kicked spam"]
    assert bob.readline() == "LEAVE alice kicked spam"
    assert chatctl_for(a, "kick", "nobody").returncode != 0


def test_a_node_exports_the_cluster_metrics(start_node: Callable[..., Daemon]) -> None:
    a = start_node("a")
    alice = a.client("alice")
    alice.send("hello")
    alice.expect("MSG #lobby alice hello")

    # The writer counts a batch after its replies; the reader may deliver the echo first.
    def counted() -> Scrape | None:
        figures = scrape(a)
        return figures if figures("chatd_cluster_appends_total") >= 3 else None

    figures = wait_until(counted, 10, "the writer's counts")
    cluster = {name.removeprefix("chatd_cluster_") for name in figures.names() if name.startswith("chatd_cluster_")}
    assert cluster == set(SOURCE_HELP["cluster"])
    assert figures("chatd_cluster_serving") == 1 and figures("chatd_cluster_redis_up") == 1
    assert figures("chatd_cluster_appends_total") >= 3  # claim, join, the line (waited for above)
    assert figures("chatd_cluster_append_seconds_total") > 0
    assert http_get(a.metrics_address(), "/healthz")[0] == 200


def test_a_node_stopped_lets_its_users_and_its_name_go_at_once(start_node: Callable[..., Daemon]) -> None:
    a, b = start_node("a"), start_node("b")
    alice, bob = a.client("alice"), b.client("bob")
    assert alice.readline() == "JOIN #lobby bob"
    b.signal(signal.SIGTERM)
    assert bob.expect_closed() == ["BYE shutdown"]
    assert alice.readline() == "LEAVE bob shutdown"  # said by the log, not by a lease running out
    assert b.process is not None and b.process.wait(15) == 0
    assert b.find_events("cluster_retired", node="b")
    assert a.client("bob").nick == "bob"  # free at once on the network
    b.log_path.rename(b.workdir / "chatd.before.log")
    b.start()  # its name is free too: no waiting for the old lease
    assert not b.find_events("cluster_node_taken")


def test_a_second_live_process_with_a_node_name_is_refused(start_node: Callable[..., Daemon], tmp_path: Path) -> None:
    a = start_node("a")
    twin = {**a.config, "server": {"host": "127.0.0.1", "port": 0}, "metrics": {"listen": None}}
    twin["history"] = {"path": str(tmp_path / "twin.db")}
    (tmp_path / "twin.yaml").write_text(yaml.safe_dump(twin))
    started = subprocess.run(
        [sys.executable, "-m", "chatd", "--config", str(tmp_path / "twin.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 78, started.stderr  # after waiting two leases for it to go
    assert started.stderr.splitlines()[-1].startswith(
        f"chatd: config error: {tmp_path / 'twin.yaml'}: cluster.node: another live chatd holds the node name 'a'"
    )
    assert a.client("alice").nick == "alice"  # the first one serves on
