"""History against the real daemon and a real database file (docs/protocol.md,
"Events and tags" and "History"): tags, backlog on join, /history paging and
its errors, persistence across restarts, kill -9, SIGTERM, and a database that
cannot be used."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PKI, REPO, Daemon, run_threads, scrape, wait_until
from tests.support.chatclient import ChatClient, split_tags

TAGGED = re.compile(r"@id=(\d+);time=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)(;history)? (.*)")


class Line:
    """A server line with its tags taken apart."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        match = TAGGED.fullmatch(raw)
        self.id = int(match.group(1)) if match else None
        self.time = match.group(2) if match else None
        self.history = bool(match and match.group(3))
        self.text = match.group(4) if match else raw

    def __repr__(self) -> str:
        return repr(self.raw)


class Client(ChatClient):
    """The line client with every line as the server sent it, tags included
    (`read` gives a `Line`); registered as `nick`, with the lines up to its
    first `CURRENT` in `joined`."""

    def __init__(self, daemon: Daemon, nick: str, cert: tuple[Path, Path] | None = None) -> None:
        super().__init__(daemon.port, daemon.pki.ca, host=daemon.host, cert=cert, timeout=10)
        daemon.clients.append(self)  # closed when the daemon stops
        assert self.read().raw.startswith("HELLO 5 chatd ")
        line = self.read().raw
        if line.startswith("ACCOUNTS "):  # only when accounts are enabled
            line = self.read().raw
        assert line == "NICK"
        self.send(nick)
        self.joined = self.until("CURRENT ")

    def read(self, timeout: float = 10.0) -> Line:
        raw = self._read(timeout)
        split_tags(raw)  # the tag rules every line a test reads is held to
        return Line(raw)

    def until(self, prefix: str, timeout: float = 10.0) -> list[Line]:
        """Lines up to and including the first whose untagged text starts with `prefix`."""
        lines = [self.read(timeout)]
        while not lines[-1].text.startswith(prefix):
            lines.append(self.read(timeout))
        return lines

    def history(self, command: str) -> tuple[list[Line], str]:
        """Send a /history command; its events and its HISTORY line (other lines skipped)."""
        self.send(command)
        events = []
        while not (line := self.read()).text.startswith("HISTORY "):
            if line.history:
                events.append(line)
        return events, line.text


def texts(lines: list[Line]) -> list[str]:
    return [line.text for line in lines]


def said(client: Client, count: int, prefix: str = "m") -> list[Line]:
    """Say `count` numbered lines; return the server's echoes (tagged, live)."""
    for i in range(count):
        client.send(f"{prefix}{i}")
    echoes = [
        line
        for line in client.until(f"MSG #lobby {client_nick(client)} {prefix}{count - 1}")
        if line.text.startswith("MSG ")
    ]
    assert all(line.id is not None and not line.history for line in echoes), echoes
    return echoes


def client_nick(client: Client) -> str:
    return client.joined[0].text.split()[1]  # WELCOME <nick> ...


def restart(daemon: Daemon, how: int = signal.SIGTERM) -> None:
    """Stop chatd (SIGTERM, or SIGKILL), start it again on the same config and database."""
    assert daemon.process is not None
    for client in daemon.clients:
        client.close()
    daemon.process.send_signal(how)
    daemon.process.wait(15)
    daemon.log_path.rename(daemon.log_path.with_suffix(f".{time.monotonic_ns()}"))
    daemon.start()


@pytest.fixture
def history_daemon(start_daemon: Callable[..., Daemon]) -> Daemon:
    return start_daemon(history={"backlog": 5})


def test_events_carry_increasing_ids_and_times(history_daemon: Daemon) -> None:
    alice = Client(history_daemon, "alice")
    alice.send("/me waves")
    alice.send("/topic a topic")
    alice.send("/msg alice note to self")
    lines = alice.until("DM ")
    events = [line for line in lines if line.id is not None]
    assert texts(events) == ["ACTION #lobby alice waves", "TOPIC #lobby alice a topic", "DM alice alice note to self"]
    assert [line.id for line in events] == sorted({line.id for line in events})
    assert not any(line.history for line in events)
    alice.send("/topic")  # the topic as a state: no tags
    assert alice.read().raw == "TOPIC #lobby alice a topic"


def test_a_join_gets_the_backlog_then_live_lines(history_daemon: Daemon) -> None:
    alice = Client(history_daemon, "alice")
    echoes = said(alice, 8)
    bob = Client(history_daemon, "bob")
    backlog = [line for line in bob.joined if line.history]
    assert [line.id for line in backlog] == [line.id for line in echoes[-5:]]
    assert texts(backlog) == [f"MSG #lobby alice m{i}" for i in range(3, 8)]
    assert [line.time for line in backlog] == [line.time for line in echoes[-5:]]
    end = bob.joined.index(backlog[-1]) + 1
    assert texts(bob.joined[end:]) == ["HISTORY #lobby 5 more", "CURRENT #lobby"]
    alice.send("live")
    line = bob.until("MSG ")[-1]
    assert line.text == "MSG #lobby alice live" and not line.history and line.id > echoes[-1].id


def test_a_room_without_history_says_so(history_daemon: Daemon) -> None:
    alice = Client(history_daemon, "alice")
    assert texts(alice.joined)[-2:] == ["HISTORY #lobby 0 end", "CURRENT #lobby"]
    alice.send("/join #new")
    assert texts(alice.until("CURRENT "))[-2:] == ["HISTORY #new 0 end", "CURRENT #new"]


def test_history_pages_back_and_forward(history_daemon: Daemon) -> None:
    alice = Client(history_daemon, "alice")
    ids = [line.id for line in said(alice, 30)]
    events, end = alice.history("/history #lobby 10")
    assert [e.id for e in events] == ids[-10:] and end == "HISTORY #lobby 10 more"
    events, end = alice.history(f"/history #lobby before {ids[-10]} 15")
    assert [e.id for e in events] == ids[5:20] and end == "HISTORY #lobby 15 more"
    events, end = alice.history(f"/history #lobby before {ids[5]} 15")
    assert [e.id for e in events] == ids[:5] and end == "HISTORY #lobby 5 end"
    events, end = alice.history(f"/history #lobby after {ids[0]} 20")
    assert [e.id for e in events] == ids[1:21] and end == "HISTORY #lobby 20 more"
    events, end = alice.history(f"/history #lobby after {ids[20]}")
    assert [e.id for e in events] == ids[21:] and end == "HISTORY #lobby 9 end"
    assert all(e.history and e.text.startswith("MSG #lobby alice m") for e in events)


def test_catch_up_after_a_reconnect_misses_nothing_and_repeats_nothing(history_daemon: Daemon) -> None:
    alice = Client(history_daemon, "alice")
    bob = Client(history_daemon, "bob")
    seen = [line.id for line in said(alice, 3) if line.id]
    bob.until("MSG #lobby alice m2")
    bob.close()
    missed = said(alice, 12, prefix="while-away-")
    bob = Client(history_daemon, "bob")
    got = [line for line in bob.joined if line.history and line.id not in seen]
    last = max(seen)
    while True:
        events, end = bob.history(f"/history #lobby after {last} 4")
        got += events
        last = events[-1].id if events else last
        if end.endswith(" end"):
            break
    unique = {line.id: line.text for line in got}
    assert sorted(unique) == [line.id for line in missed]
    assert [unique[i] for i in sorted(unique)] == texts(missed)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("/history #lobby before abc", "bad_argument"),
        ("/history #lobby after -3", "bad_argument"),
        ("/history #lobby 0", "bad_argument"),
        ("/history #lobby -5", "bad_argument"),
        ("/history #lobby 501", "bad_argument"),
        ("/history #lobby 99999999999999999999999", "bad_argument"),
        ("/history #lobby before 5 10 extra", "bad_argument"),
        ("/history #lobby before", "missing_argument"),
        ("/history", "missing_argument"),
        ("/history #elsewhere", "not_in_room"),
        ("/history #bad!name", "room_invalid"),
        ("/history bob", "no_history"),  # DMs are kept only with nick_from_cert
    ],
)
def test_bad_history_requests_get_a_clear_error(history_daemon: Daemon, command: str, code: str) -> None:
    alice = Client(history_daemon, "alice")
    alice.send(command)
    line = alice.read()
    assert line.text.startswith(f"ERR {code} "), line
    alice.send("/ping still-here")
    assert alice.read().text == "PONG still-here"


def test_direct_messages_are_kept_between_certified_nicknames(start_daemon: Callable[..., Daemon], certs: PKI) -> None:
    tls = {"client_ca": str(certs.ca), "client_auth": "required", "nick_from_cert": True}
    daemon = start_daemon(tls=tls)
    alice = Client(daemon, "alice", cert=certs.client("alice"))
    bob = Client(daemon, "bob", cert=certs.client("bob"))
    alice.send("/msg bob psst")
    sent = alice.until("DM alice bob psst")[-1]
    assert bob.until("DM alice bob psst")[-1].id == sent.id
    bob.send("/msg alice hi back")
    bob.until("DM bob alice hi back")
    restart(daemon)
    bob = Client(daemon, "bob", cert=certs.client("bob"))
    events, end = bob.history("/history alice")
    assert texts(events) == ["DM alice bob psst", "DM bob alice hi back"] and events[0].id == sent.id
    assert end == "HISTORY alice 2 end"
    bob.send("/history #lobby")  # DMs are not room events
    assert not any("DM " in line.text for line in bob.until("HISTORY #lobby"))


def test_history_off_keeps_nothing(start_daemon: Callable[..., Daemon]) -> None:
    # Accounts off too: with them on, the database holds the accounts (test_accounts.py).
    daemon = start_daemon(history={"enabled": False}, accounts={"enabled": False})
    alice = Client(daemon, "alice")
    said(alice, 3)
    alice.send("/history #lobby")
    assert alice.read().text.startswith("ERR no_history ")
    bob = Client(daemon, "bob")
    assert texts(bob.joined)[-2:] == ["HISTORY #lobby 0 end", "CURRENT #lobby"]
    assert not (daemon.workdir / "data").exists()


def test_rooms_topics_and_history_survive_a_restart(history_daemon: Daemon) -> None:
    alice = Client(history_daemon, "alice")
    alice.send("/join #Rust")
    alice.until("CURRENT #Rust")
    alice.send("/topic borrow checker")
    alice.send("in rust")
    before = [line for line in alice.until("MSG #Rust alice in rust") if line.id is not None]
    restart(history_daemon)
    bob = Client(history_daemon, "bob")
    bob.send("/rooms")  # an empty room is not listed, history or not
    assert texts(bob.until("ROOMS ")) == ["ROOM #lobby 1", "ROOMS 1"]
    bob.send("/join #rust")
    joined = bob.until("CURRENT ")
    assert texts(joined)[:2] == ["JOIN #Rust bob", "TOPIC #Rust alice borrow checker"]
    assert [line.id for line in joined if line.history] == [line.id for line in before]
    bob.send("after restart")
    line = bob.until("MSG ")[-1]
    assert line.id is not None and line.id > before[-1].id


def test_sigterm_writes_everything(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(history={"flush_ms": 10_000})  # nothing would be written for 10 s
    alice = Client(daemon, "alice")
    echoes = said(alice, 200)
    restart(daemon, signal.SIGTERM)
    bob = Client(daemon, "bob")
    events, end = bob.history("/history #lobby 500")
    assert [e.id for e in events] == [e.id for e in echoes] and end.endswith(" end")


def test_kill_9_loses_only_the_last_flush_ms(start_daemon: Callable[..., Daemon]) -> None:
    """What the writer has written (it commits by itself every flush_ms) is on
    disk after a kill -9, in order, with its ids, once; what was still waiting
    is all that is lost; ids after the restart are greater than any seen before."""
    daemon = start_daemon(history={"flush_ms": 100})
    alice = Client(daemon, "alice")
    durable = said(alice, 300)
    # The writer's own word that these are committed, with no more traffic to
    # prompt it (not a guess at how long its turns take on this machine).
    wait_until(lambda: scrape(daemon)("chatd_history_rows_written_total") >= len(durable), 20, "the 300 lines written")
    for i in range(300):  # more traffic, in flight when chatd dies
        alice.send(f"late{i}")
    alice.until("MSG #lobby alice late10")
    restart(daemon, signal.SIGKILL)
    bob = Client(daemon, "bob")
    stored: list[Line] = []
    while True:
        events, end = bob.history(f"/history #lobby after {stored[-1].id if stored else 0} 500")
        stored += events
        if end.endswith(" end"):
            break
    ids = [line.id for line in stored]
    assert ids == sorted(set(ids)), "in order, no duplicates"
    assert [(e.id, e.text) for e in stored[: len(durable)]] == [(e.id, e.text) for e in durable]
    bob.send("after the crash")
    line = bob.until("MSG #lobby bob after the crash")[-1]
    assert line.id is not None and line.id > max(ids) + 300  # beyond any id handed out before


def start_refused(daemon: Daemon) -> str:
    """Start chatd on `daemon`'s config and expect exit 78 with one clear line."""
    daemon.write_config()
    result = subprocess.run(
        [sys.executable, "-m", "chatd", "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 78, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("chatd: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def stopped(tmp_path: Path, certs: PKI) -> Daemon:
    """A daemon's config and folder, not started."""
    return Daemon(tmp_path, certs, {"history": {"path": str(tmp_path / "chat.db")}})


def test_a_file_that_is_not_a_database_stops_start_up(stopped: Daemon, tmp_path: Path) -> None:
    (tmp_path / "chat.db").write_text("not a database\n" * 500)
    line = start_refused(stopped)
    assert "history.path" in line and str(tmp_path / "chat.db") in line and "not an SQLite database" in line


def test_a_locked_database_stops_start_up(stopped: Daemon, tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "chat.db", isolation_level=None)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        line = start_refused(stopped)
    finally:
        holder.close()
    assert "history.path" in line and "locked by another process" in line


def test_an_unusable_path_stops_start_up(stopped: Daemon, tmp_path: Path) -> None:
    (tmp_path / "chat.db").mkdir()
    line = start_refused(stopped)
    assert "history.path" in line and "cannot use" in line


def test_a_failing_disk_keeps_chat_going_and_writes_again_later(
    start_daemon: Callable[..., Daemon],
) -> None:
    """Writes beyond RLIMIT_FSIZE fail (EFBIG) as on a full disk: history_write_failed,
    chat goes on, the queue stays bounded and counts what it drops; once the limit
    is lifted the writer catches up by itself."""
    resource = pytest.importorskip("resource")
    daemon = start_daemon(history={"write_queue": 500}, log={"level": "info"})
    assert daemon.process is not None
    alice, bob = Client(daemon, "alice"), Client(daemon, "bob")
    limit = daemon.log_path.stat().st_size + (512 << 10)  # the log may grow a little; the WAL not much
    hard = resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE)[1]
    resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE, (limit, hard))  # raising hard needs privilege
    payload = "x" * 1000
    sent = 0

    def chat(count: int) -> None:
        nonlocal sent
        for i in range(sent, sent + count):
            alice.send(f"{i} {payload}")
        sent += count
        assert bob.until(f"MSG #lobby alice {sent - 1} ")[-1].id is not None  # chat goes on

    def writer_took_them() -> bool:
        figures = scrape(daemon)
        return figures("chatd_history_waiting_events") == 0 or figures("chatd_history_write_failures_total") > 0

    # The disk is "full" part of the way through (the WAL passes the limit after
    # some 400 KB of events): chat on a hundred lines at a time, each hundred
    # taken by the writer (its own figures say so) before the next, until a
    # write fails, however the writer's turns happen to batch them.
    while not scrape(daemon)("chatd_history_write_failures_total"):
        assert sent < 2000, "the writes never failed"
        chat(100)
        wait_until(writer_took_them, 20, "the writer's turn")
    failed = daemon.wait_for_event("history_write_failed", timeout=20)
    assert failed["path"].endswith("chatd.db")
    chat(1000)  # more than the write queue holds, while writes fail
    dropped = daemon.wait_for_event("history_events_dropped", timeout=20)
    assert dropped["dropped"] > 0 and dropped["queue"] == 500
    resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE, (hard, hard))
    daemon.wait_for_event("history_write_recovered", timeout=30)
    alice.send("after the disk came back")
    bob.until("MSG #lobby alice after the disk came back")
    wait_until(
        lambda: "after the disk came back" in bob.history("/history #lobby 1")[0][0].text,
        10,
        "the new event written and readable",
    )


def test_a_reload_changes_backlog_and_retention(history_daemon: Daemon) -> None:
    alice = Client(history_daemon, "alice")
    said(alice, 20)
    history_daemon.config["history"].update(backlog=2, max_per_room=8, path="elsewhere.db")
    history_daemon.write_config()
    history_daemon.signal(signal.SIGHUP)
    reloaded = history_daemon.wait_for_event("config_reloaded")
    assert reloaded["restart_needed"] == ["history.path"]
    bob = Client(history_daemon, "bob")
    assert texts([line for line in bob.joined if line.history]) == ["MSG #lobby alice m18", "MSG #lobby alice m19"]
    wait_until(lambda: len(bob.history("/history #lobby 100")[0]) == 8, 30, "the room pruned to 8 events")
    assert not (history_daemon.workdir / "elsewhere.db").exists()


@pytest.mark.parametrize("io_threads", [1, 2], ids=["io_threads=1", "io_threads=2"])
def test_a_joiner_under_traffic_sees_each_event_once(start_daemon: Callable[..., Daemon], io_threads: int) -> None:
    """Senders on several workers, a client joining in the middle: its backlog and
    live lines together are exactly the room's events from the backlog's first
    on, as a member who was there all along saw them: no gap, no overlap."""
    daemon = start_daemon(server={"io_threads": io_threads}, history={"backlog": 20})
    watcher = Client(daemon, "watcher")
    senders = [Client(daemon, f"s{i}") for i in range(4)]
    stop = threading.Event()

    def send(index: int) -> None:
        n = 0
        while not stop.is_set():
            senders[index].send(f"n{n}")
            n += 1
            if n % 20 == 0:
                time.sleep(0.005)  # paces the senders; nothing below depends on it
        senders[index].send("/ping done")

    pump = threading.Thread(target=run_threads, args=(4, send))
    pump.start()
    try:
        # In the middle of the traffic: once the room has more than a backlog's
        # worth of events, and until the joiner has live ones from every sender.
        wait_until(lambda: scrape(daemon)("chatd_messages_received_total") >= 200, 30, "traffic")
        joiner = Client(daemon, "joiner")
        after_join: list[Line] = []
        heard: set[str] = set()  # the senders whose live lines the joiner has had
        while len(heard) < len(senders):
            after_join.append(line := joiner.read())
            if line.id is not None:  # MSG #lobby <sender> n<k>
                heard.add(line.text.split()[2])
    finally:
        stop.set()
    pump.join(30)
    for sender in senders:
        sender.until("PONG done", timeout=30)
    joiner.send("/ping end")
    watcher.send("/ping end")
    joined = joiner.joined + after_join + joiner.until("PONG end", timeout=30)
    seen_by_watcher = [line.id for line in watcher.until("PONG end", timeout=30) if line.id is not None]
    got = [line.id for line in joined if line.id is not None]
    assert got and got == sorted(set(got)), "increasing, no duplicates"
    assert got == seen_by_watcher[seen_by_watcher.index(got[0]) :]


def test_rooms_that_ended_with_history_do_not_use_up_the_room_limit(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(limits={"max_rooms": 3}, history={"backlog": 5})
    alice = Client(daemon, "alice")
    for name in ("#a", "#b"):
        alice.send(f"/join {name}")
        alice.until(f"CURRENT {name}")
        alice.send(f"/topic about {name}")
        alice.send(f"said in {name}")
        alice.until(f"MSG {name} alice said in {name}")
        alice.send(f"/part {name}")
        alice.until("CURRENT ")
    alice.send("/join #c")  # #a and #b ended: room for #c, and for #a again
    alice.until("CURRENT #c")
    alice.send("/join #a")
    joined = alice.until("CURRENT #a")
    assert texts(joined)[:2] == ["JOIN #a alice", "TOPIC #a alice about #a"]
    assert texts([line for line in joined if line.history]) == ["TOPIC #a alice about #a", "MSG #a alice said in #a"]
    alice.send("/join #b")  # lobby, #c, #a: the limit
    assert alice.until("ERR ")[-1].text.startswith("ERR too_many_rooms ")


def test_history_keeps_at_most_max_rooms_kept_rooms(start_daemon: Callable[..., Daemon]) -> None:
    # Spreading messages over new rooms no longer escapes max_per_room: beyond
    # history.max_rooms_kept rooms, those least recently written are removed
    # (their events and topics with them); #lobby, a permanent room, stays.
    daemon = start_daemon(history={"max_rooms_kept": 2})
    alice = Client(daemon, "alice")
    said(alice, 1, prefix="hello")  # in #lobby, written first
    for name in ("#r1", "#r2", "#r3"):
        alice.send(f"/join {name}")
        alice.until(f"CURRENT {name}")
        alice.send(f"/topic about {name}")
        alice.send(f"said in {name}")
        alice.until(f"MSG {name} alice said in {name}")
        alice.send(f"/part {name}")
        alice.until("CURRENT ")
    database = daemon.workdir / "data" / "chatd.db"

    def stored() -> list[str]:
        with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as conn:
            return sorted(key for (key,) in conn.execute("SELECT key FROM rooms"))

    wait_until(lambda: stored() == ["#lobby", "#r3"], 60, "the rooms pruned (retention runs every 10 s when idle)")
    events, end = alice.history("/history #lobby")
    assert texts(events) == ["MSG #lobby alice hello0"] and end == "HISTORY #lobby 1 end"
    restart(daemon)
    alice = Client(daemon, "alice")
    for name, kept in (("#r1", False), ("#r2", False), ("#r3", True)):
        alice.send(f"/join {name}")
        joined = alice.until(f"CURRENT {name}")
        topic = [line.text for line in joined if line.text.startswith("TOPIC")]
        assert topic == ([f"TOPIC {name} alice about {name}"] * 2 if kept else []), (name, texts(joined))
        assert (f"MSG {name} alice said in {name}" in texts(joined)) is kept, (name, texts(joined))
