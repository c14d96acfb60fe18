"""chatd.storage.sqlite against real database files: the EventStore contract,
retention, failures and what start-up refuses."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatd.config import HistoryConfig
from chatd.core.history import Event, dm_key, owned_dm_key
from chatd.errors import ConfigError
from chatd.storage import database, retention, schema, sqlite
from chatd.storage.sqlite import SQLiteStore, open_store, read_events
from tests.conftest import wait_until

CONFIG = Path("/etc/chatd/chatd.yaml")  # only named in messages
NOW = int(time.time() * 1000)


def settings(path: Path, **overrides: object) -> HistoryConfig:
    return HistoryConfig(path=path, **{"flush_ms": 10, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "chatd.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    opened = open_store(settings(db), CONFIG)
    opened.load(50)
    yield opened
    opened.close()


def event(id_: int, text: str = "", room: str = "#Lobby", kind: str = "msg", at: int | None = None) -> Event:
    return Event(
        id_, at if at is not None else NOW + id_, room.lower(), room, "alice", kind, (text or f"line {id_}").encode()
    )


def ids(events: list[Event]) -> list[int]:
    return [e.id for e in events]


def written(store: SQLiteStore, count: int) -> None:
    wait_until(lambda: store.written >= count, 10, f"{count} events written")


def test_range_sees_events_before_and_after_they_are_written(store: SQLiteStore) -> None:
    for i in range(1, 11):
        store.append(event(i))
    assert ids(store.range("#lobby", None, None, 100)) == list(range(1, 11))  # maybe none written yet
    written(store, 10)
    assert ids(store.range("#lobby", None, None, 100)) == list(range(1, 11))
    store.append(event(11))
    assert ids(store.range("#lobby", None, 5, 100)) == list(range(6, 12))


def test_range_directions_and_limits(store: SQLiteStore) -> None:
    for i in range(1, 21):
        store.append(event(i, room="#a" if i % 2 else "#b"))
    written(store, 20)
    assert ids(store.range("#a", None, None, 3)) == [15, 17, 19]  # the latest
    assert ids(store.range("#a", 15, None, 3)) == [9, 11, 13]  # the latest before
    assert ids(store.range("#a", None, 4, 3)) == [5, 7, 9]  # the earliest after
    assert ids(store.range("#b", None, 20, 3)) == []
    assert ids(store.range("#c", None, None, 3)) == []


def test_events_keep_their_fields(store: SQLiteStore) -> None:
    original = Event(7, NOW, "#rust", "#Rust", "bob", "action", "grüßt 👋".encode())
    store.append(original)
    written(store, 1)
    assert store.range("#rust", None, None, 1) == [original]


def test_reopening_restores_rooms_topics_backlog_and_ids(db: Path) -> None:
    first = open_store(settings(db), CONFIG)
    assert first.load(3).next_id == 1
    for i in range(1, 6):
        first.append(event(i))
    first.append(Event(6, NOW, "#lobby", "#Lobby", "bob", "topic", b"news"))
    first.append(Event(7, NOW, dm_key("alice", "bob"), "bob", "alice", "dm", b"psst"))
    first.close()
    second = open_store(settings(db), CONFIG)
    snapshot = second.load(3)
    second.close()
    assert [(r.name, r.topic, r.topic_by) for r in snapshot.rooms] == [("#Lobby", "news", "bob")]
    assert ids(snapshot.rooms[0].recent) == [4, 5, 6]
    # Ids handed out before a crash were reserved: the next ones are greater.
    assert snapshot.next_id > 7 + sqlite.RESERVE // 2
    # The last event it holds, not the reservation: a cluster node reads the log from there.
    assert snapshot.last_id == 7


def test_ids_after_a_crash_are_greater_than_any_handed_out(db: Path) -> None:
    store = open_store(settings(db), CONFIG)
    start = store.load(0).next_id
    # The core hands out ids far ahead of what reaches the disk; then "crash":
    # nothing of these is written, the writer simply stops.
    for i in range(start, start + 1000):
        store.append(event(i))
    store._writer._stop.set()  # the writer's own stop, without the final write close() does
    store._writer._thread.join(5)
    store._writer._pending.clear()
    store._writer._inflight.clear()
    store.close()
    again = open_store(settings(db), CONFIG)
    assert again.load(0).next_id > start + 1000
    again.close()


def test_close_writes_everything(db: Path) -> None:
    store = open_store(settings(db, flush_ms=10_000), CONFIG)  # the writer would wait 10 s
    store.load(0)
    for i in range(1, 501):
        store.append(event(i))
    store.close()
    assert ids(list(read_events(db, "#lobby"))) == list(range(1, 501))


def test_the_writer_prunes_rooms_to_max_per_room(db: Path) -> None:
    store = open_store(settings(db, max_per_room=10), CONFIG)
    store.load(0)
    for i in range(1, 1201):
        store.append(event(i, room="#a" if i <= 1200 - 5 else "#b"))
    wait_until(lambda: ids(store.range("#a", None, None, 500)) == list(range(1186, 1196)), 10, "pruned")
    assert ids(store.range("#b", None, None, 500)) == list(range(1196, 1201))
    store.close()


def test_the_writer_prunes_what_is_older_than_max_age(db: Path) -> None:
    store = open_store(settings(db, max_age_days=1), CONFIG)
    store.load(0)
    now = int(time.time() * 1000)
    for i in range(1, 1301):
        store.append(event(i, at=now - 2 * 86_400_000 if i <= 1200 else now))
    wait_until(lambda: ids(store.range("#lobby", None, None, 500)) == list(range(1201, 1301)), 10, "pruned")
    store.close()


def test_failed_writes_are_retried_and_the_queue_is_bounded(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = {"disk": True}
    connect = database.connect

    def connect_to_a_full_disk(path: Path, timeout: float, read_only: bool = False) -> sqlite3.Connection:
        conn = connect(path, timeout, read_only)
        if full["disk"]:
            conn.execute("PRAGMA query_only = ON")  # every write fails, as on a full disk
        return conn

    store = open_store(settings(db, write_queue=100), CONFIG)
    store.load(0)
    monkeypatch.setattr(database, "connect", connect_to_a_full_disk)
    store._writer.conn.execute("PRAGMA query_only = ON")
    for i in range(1, 301):
        store.append(event(i))
    wait_until(lambda: store.failures >= 2 and store.dropped >= 200, 10, "failures and drops")
    assert store.written == 0
    assert ids(store.range("#lobby", None, None, 500)) == list(range(201, 301))  # the newest kept
    full["disk"] = False  # the writer reconnects after each failure
    written(store, 100)
    store.close()
    assert ids(list(read_events(db, "#lobby"))) == list(range(201, 301))
    assert store.dropped == 200


def test_files_are_private(db: Path) -> None:
    open_store(settings(db), CONFIG).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


def test_an_existing_file_is_made_private(tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    open_store(settings(db), CONFIG).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def refusal(db: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        open_store(settings(db), CONFIG).load(0)
    message = str(caught.value)
    assert message.startswith(f"{CONFIG}: history.path: ") and str(db) in message
    assert "\n" not in message
    return message


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "chatd.db"
    db.write_bytes(b"this is a text file, not SQLite\n" * 200)
    assert "is not an SQLite database" in refusal(db)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "chatd.db").mkdir()
    assert "cannot use" in refusal(tmp_path / "chatd.db")


def test_a_database_locked_by_another_process_is_refused(db: Path) -> None:
    open_store(settings(db), CONFIG).close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        assert "is locked by another process" in refusal(db)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_newer_schema_is_refused(db: Path) -> None:
    open_store(settings(db), CONFIG).close()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    assert "written by a newer chatd" in refusal(db)


def test_read_events_reads_while_the_writer_writes(store: SQLiteStore, db: Path) -> None:
    for i in range(1, 2501):
        store.append(event(i))
    written(store, 2500)
    assert ids(list(read_events(db, "#lobby"))) == list(range(1, 2501))
    assert ids(list(read_events(db, "#lobby", since_ms=NOW + 2401))) == list(range(2401, 2501))


# -- certificate identities (chatd/core/identities.py) ------------------------------------


def test_identities_are_written_and_handed_back_at_start(db: Path) -> None:
    first = open_store(settings(db), CONFIG)
    assert first.load(0).identities == {}
    first.remember_identity("alice", "alice")
    first.remember_identity("bob", "Bob")
    first.append(event(1))
    written(first, 1)  # in one transaction with the events
    first.remember_identity("carol", "CAROL")  # alone: written too
    first.close()
    again = open_store(settings(db), CONFIG)
    assert again.load(0).identities == {"alice": "alice", "bob": "Bob", "carol": "CAROL"}
    again.remember_identity("alice", "ALICE")  # never happens (the core asks first); the first stays
    again.close()
    last = open_store(settings(db), CONFIG)
    assert last.load(0).identities["alice"] == "alice"
    last.close()


def test_a_version_1_database_learns_identities_from_its_direct_messages(db: Path) -> None:
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        for statement in schema.MIGRATIONS[0].split(";"):
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        rows = [
            (1, "msg", "#lobby", "#lobby", "Mallory"),  # room events prove nothing: not taken
            (2, "dm", dm_key("alice", "bob"), "bob", "alice"),
            (3, "dm", dm_key("ALICE", "bob"), "bob", "ALICE"),  # the later spelling loses
            (4, "dm", dm_key("bob", "Carol"), "Carol", "bob"),  # a recipient counts too
        ]
        conn.executemany(
            "INSERT INTO events (id, time, target, room, nick, kind, text) VALUES (?, 0, ?, ?, ?, ?, 'x')",
            [(id_, target, room, nick, kind) for id_, kind, target, room, nick in rows],
        )
    store = open_store(settings(db), CONFIG)
    assert store.load(0).identities == {"alice": "alice", "bob": "bob", "carol": "Carol"}
    store.close()


# -- retention of whole rooms: history.max_rooms_kept and rooms with no events left ---------


def unstarted(db: Path, **overrides: object) -> SQLiteStore:
    """A store whose writer thread is not started: the test writes (`_write`) and
    prunes itself, one step at a time, on the store's own connection."""
    return open_store(settings(db, **overrides), CONFIG)


def write(store: SQLiteStore, *events: Event) -> None:
    for e in events:
        store.append(e)
    store._writer._write()


def prune_all(store: SQLiteStore) -> list[int]:
    """Prune until nothing is left to do; the rows each step removed."""
    steps = []
    while removed := store.prune():
        steps.append(removed)
        assert len(steps) < 100, steps
    return steps


def stored_rooms(db: Path) -> list[str]:
    """The rooms table, least recently written first."""
    with sqlite3.connect(db) as conn:
        return [key for (key,) in conn.execute("SELECT key FROM rooms ORDER BY last_id")]


def test_rooms_beyond_max_rooms_kept_go_least_recently_written_first(db: Path) -> None:
    store = unstarted(db, max_rooms_kept=3)
    write(
        store,
        event(1, room="#a"),
        event(2, room="#a"),
        event(3, room="#b"),
        Event(4, NOW, "#b", "#b", "bob", "topic", b"b's topic"),
        event(5, room="#c"),
        event(6, room="#d"),
    )
    write(store, event(7, room="#a"))  # #a is the most recently written now; #b the least
    assert prune_all(store) == [2 + 1]  # #b's two events and its row, in one small step
    assert stored_rooms(db) == ["#c", "#d", "#a"]
    assert store.range("#b", None, None, 10) == []
    assert store.room("#b", 10) is None  # topic and all
    assert ids(store.range("#a", None, None, 10)) == [1, 2, 7]
    store.close()


def test_permanent_rooms_are_kept_beyond_max_rooms_kept(db: Path) -> None:
    store = unstarted(db, max_rooms_kept=2)
    store.keep_rooms(frozenset({"#lobby"}))
    write(store, *(event(i, room=room) for i, room in enumerate(["#Lobby", "#b", "#c", "#d"], 1)))
    prune_all(store)
    assert stored_rooms(db) == ["#lobby", "#d"]
    store.close()


def test_removing_a_big_room_takes_small_steps(db: Path) -> None:
    store = unstarted(db, max_rooms_kept=1)
    write(store, *(event(i, room="#big") for i in range(1, 1201)))
    write(store, event(1201, room="#new"))
    assert prune_all(store) == [retention.PRUNE_STEP, retention.PRUNE_STEP, 200 + 1]
    assert stored_rooms(db) == ["#new"]
    store.close()


def test_rooms_with_no_events_left_are_removed_except_permanent_ones(db: Path) -> None:
    store = unstarted(db, max_age_days=1)
    store.keep_rooms(frozenset({"#perm"}))
    old = NOW - 2 * 86_400_000
    write(
        store,
        event(1, room="#old", at=old),
        Event(2, old, "#perm", "#perm", "bob", "topic", b"the rules"),
        event(3, room="#perm", at=old),
        event(4, room="#new"),
    )
    assert prune_all(store) == [3, 1]  # the old events, then #old's row
    assert stored_rooms(db) == ["#perm", "#new"]
    perm = store.room("#perm", 10)
    assert perm is not None and (perm.topic, perm.recent) == ("the rules", [])
    store.close()


def test_the_limits_apply_after_a_reload(db: Path) -> None:
    store = unstarted(db)
    write(store, *(event(i, room=f"#r{i}") for i in range(1, 11)))
    assert prune_all(store) == []
    store.reconfigure(settings(db, max_rooms_kept=4))
    assert prune_all(store) == [6 + 6]
    assert stored_rooms(db) == ["#r7", "#r8", "#r9", "#r10"]
    store.close()


def test_a_version_1_database_gets_its_rooms_last_ids(db: Path) -> None:
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        for statement in schema.MIGRATIONS[0].split(";"):
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.executemany("INSERT INTO rooms (key, name) VALUES (?, ?)", [("#c", "#c"), ("#b", "#b"), ("#a", "#a")])
        conn.executemany(
            "INSERT INTO events (id, time, target, room, nick, kind, text) VALUES (?, ?, ?, ?, 'x', 'msg', 'x')",
            [(1, NOW, "#a", "#a"), (2, NOW, "#b", "#b"), (3, NOW, "#a", "#a")],  # #c: its events are gone
        )
    store = unstarted(db, max_rooms_kept=1)
    assert prune_all(store) == [1, 1 + 1]  # #c as empty; then #b, the least recently written
    assert stored_rooms(db) == ["#a"]
    store.close()


def test_the_writer_keeps_the_rooms_written_last(db: Path) -> None:
    store = open_store(settings(db, max_rooms_kept=5), CONFIG)
    store.load(0)
    for i in range(1, 21):
        store.append(event(i, room=f"#r{i}"))
    wait_until(lambda: stored_rooms(db) == [f"#r{i}" for i in range(16, 21)], 10, "the last five rooms")
    store.close()


def dm(id_: int, sender: str, recipient: str) -> Event:
    return Event(id_, NOW + id_, dm_key(sender, recipient), recipient, sender, "dm", b"psst")


def test_targets_are_the_last_events_of_the_rooms_and_direct_messages_of_a_nickname(store: SQLiteStore) -> None:
    # IRC's CHATHISTORY TARGETS: written or not, a room's last event, and each
    # DM target of the nickname whichever side of the key it is on.
    for one in (event(1), event(2, room="#Other"), dm(3, "alice", "bob"), dm(4, "carol", "alice"), event(5)):
        store.append(one)
    store.append(dm(6, "bob", "carol"))  # not alice's
    unwritten = {e.target: e.id for e in store.targets(["#lobby", "#other", "#none"], "alice")}
    written(store, 6)
    assert {e.target: e.id for e in store.targets(["#lobby", "#other", "#none"], "alice")} == unwritten
    assert unwritten == {"#lobby": 5, "#other": 2, "dm:alice,bob": 3, "dm:alice,carol": 4}
    store.append(event(7, room="#Other"))  # a newer one, not yet written, wins
    assert {e.target: e.id for e in store.targets(["#other"], None)} == {"#other": 7}


def test_range_merges_a_second_target_by_id(store: SQLiteStore) -> None:
    # A client's DMs with a nickname, and with it while it was a guest (owned_dm_key).
    both, owned = dm_key("alice", "bob"), owned_dm_key("alice", "bob")
    for id_, target in ((1, both), (2, owned), (3, "dm:bob,carol"), (4, both), (5, owned)):
        store.append(Event(id_, NOW + id_, target, "bob", "alice", "dm", b"psst"))
    assert ids(store.range(both, None, None, 10, owned)) == [1, 2, 4, 5]  # unwritten
    written(store, 5)
    assert ids(store.range(both, None, None, 3, owned)) == [2, 4, 5]
    assert ids(store.range(both, None, 1, 2, owned)) == [2, 4]
    assert ids(store.range(both, None, None, 10)) == [1, 4]
