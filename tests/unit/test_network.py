"""core/network.py and core/replica.py: several nodes of a network, sans-I/O.

The engine here is a small in-memory stand-in for the Redis scripts
(chatd/cluster/lua/, tested against a real Redis in tests/cluster): it
decides each call in the order they were made and appends entries to one
log, which every node's replica applies in order. Sessions are real ones on
recording outlets; what a bus hands back to a session's thread runs when
the test settles the network, as the session's worker would run it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from chatd import names
from chatd.cluster.entry import Entry
from chatd.config import Config, HistoryConfig, RoomsConfig
from chatd.core.chat import Chat
from chatd.core.history import Event, NoStore
from chatd.core.network import NetworkBus, Refusal
from chatd.core.replica import Holder, NetworkState, RoomState
from chatd.core.session import Session
from chatd.outlet import Command
from tests.support.chatclient import Tags, split_tags


class Store(NoStore):
    """Keeps what is appended, in memory."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def append(self, event: Event) -> None:
        self.events.append(event)


class Log:
    """The network's shared state and log, deciding calls as the scripts do."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.calls: list[Callable[[], None]] = []
        self.nicks: dict[str, tuple[str, int, str]] = {}  # key -> (origin, conn, spelling)
        self.rooms: dict[str, str] = {"#lobby": "#lobby"}
        self.members: dict[str, set[str]] = {}
        self.topics: dict[str, tuple[str, str]] = {}

    def add(self, kind: str, target: str, shown: str, nick: str, text: bytes, origin: str, conn: int) -> None:
        self.entries.append(Entry(len(self.entries) + 1, kind, target, shown, nick, text, 1000, origin, conn))

    def owned(self, origin: str, conn: int, nick: str) -> str | None:
        held = self.nicks.get(names.nick_key(nick))
        return held[2] if held is not None and held[:2] == (origin, conn) else None

    def drop(self, key: str, kind: str, text: bytes) -> None:
        origin, conn, spelling = self.nicks.pop(key)
        for members in self.members.values():
            members.discard(key)
        self.add(kind, "", "", spelling, text, origin, conn)

    def state(self) -> NetworkState:
        nicks = [Holder(spelling, origin, conn) for origin, conn, spelling in self.nicks.values()]
        rooms = []
        for key, name in self.rooms.items():
            by, topic = self.topics.get(key, ("*", ""))
            rooms.append(RoomState(name, topic, by, sorted(self.members.get(key, ()))))
        return NetworkState(len(self.entries), nicks, rooms)


@dataclasses.dataclass
class Engine:
    """One node's engine on the shared `Log`: each call is queued, decided at `Network.settle`."""

    log: Log
    origin: str

    def _queue(self, call: Callable[[], str | None], refused: Refusal) -> None:
        def run() -> None:
            code = call()
            if code is not None:
                refused(code, "")

        self.log.calls.append(run)

    def claim(self, conn: int, nick: str, refused: Refusal) -> None:
        def run() -> str | None:
            key = names.nick_key(nick)
            if key in self.log.nicks:
                return "nick_taken"
            self.log.nicks[key] = (self.origin, conn, nick)
            self.log.add("nick", "", "", nick, b"", self.origin, conn)
            return None

        self._queue(run, refused)

    def rename(self, conn: int, old: str, new: str, refused: Refusal) -> None:
        def run() -> str | None:
            if self.log.owned(self.origin, conn, old) is None:
                return "not_owner"
            old_key, new_key = names.nick_key(old), names.nick_key(new)
            if new_key != old_key and new_key in self.log.nicks:
                return "nick_taken"
            self.log.nicks[new_key] = (self.origin, conn, new)
            if new_key != old_key:
                del self.log.nicks[old_key]
                for members in self.log.members.values():
                    if old_key in members:
                        members.discard(old_key)
                        members.add(new_key)
            self.log.add("rename", "", "", old, new.encode(), self.origin, conn)
            return None

        self._queue(run, refused)

    def leave(self, conn: int, nick: str, reason: str, refused: Refusal) -> None:
        def run() -> str | None:
            if self.log.owned(self.origin, conn, nick) is None:
                return "not_owner"
            self.log.drop(names.nick_key(nick), "leave" if reason else "release", reason.encode())
            return None

        self._queue(run, refused)

    def join(
        self, conn: int, nick: str, room: str, allow_create: bool, max_rooms: int, per_client: int, refused: Refusal
    ) -> None:
        def run() -> str | None:
            spelling = self.log.owned(self.origin, conn, nick)
            if spelling is None:
                return "not_owner"
            key = names.room_key(room)
            members = self.log.members.setdefault(key, set())
            if names.nick_key(nick) in members:
                return "already_in"
            if key not in self.log.rooms:
                if not allow_create:
                    return "no_such_room"
                self.log.rooms[key] = room
            members.add(names.nick_key(nick))
            self.log.add("join", key, self.log.rooms[key], spelling, b"", self.origin, conn)
            return None

        self._queue(run, refused)

    def part(self, conn: int, nick: str, room: str, text: str, refused: Refusal) -> None:
        def run() -> str | None:
            key = names.room_key(room)
            if names.nick_key(nick) not in self.log.members.get(key, set()):
                return "not_in_room"
            self.log.members[key].discard(names.nick_key(nick))
            self.log.add("part", key, self.log.rooms[key], nick, text.encode(), self.origin, conn)
            return None

        self._queue(run, refused)

    def topic(self, conn: int, nick: str, room: str, text: str, refused: Refusal) -> None:
        def run() -> str | None:
            key = names.room_key(room)
            self.log.topics[key] = (nick, text)
            self.log.add("topic", key, self.log.rooms[key], nick, text.encode(), self.origin, conn)
            return None

        self._queue(run, refused)

    def say(self, conn: int, nick: str, kind: str, room: str, texts: list[bytes], refused: Refusal) -> None:
        def run() -> str | None:
            key = names.room_key(room)
            if names.nick_key(nick) not in self.log.members.get(key, set()):
                return "not_in_room"
            for text in texts:
                self.log.add(kind, key, self.log.rooms[key], nick, text, self.origin, conn)
            return None

        self._queue(run, refused)

    def direct(self, conn: int, nick: str, recipient: str, text: bytes, refused: Refusal) -> None:
        def run() -> str | None:
            held = self.log.nicks.get(names.nick_key(recipient))
            if held is None:
                return "no_such_nick"
            self.log.add("dm", names.nick_key(recipient), held[2], nick, text, self.origin, conn)
            return None

        self._queue(run, refused)

    def kick(self, nick: str, text: str) -> bool:
        key = names.nick_key(nick)
        if key not in self.log.nicks:
            return False
        self.log.drop(key, "kick", text.encode())
        return True

    def info(self, text: bytes) -> None:
        self.log.add("info", "", "", "", text, self.origin, 0)


class Outlet:
    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.connected_at = 0.0
        self.received: list[tuple[Tags, str]] = []
        self.closed: tuple[str, str] | None = None
        self.session: Session | None = None
        self.soon: list[Callable[[], None]] = []

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        self.received.extend(split_tags(line) for line in data.decode().splitlines())

    def close(self, reason: str, text: str = "") -> None:
        if self.closed is None:
            self.closed = (reason, text)
            assert self.session is not None
            bye = self.session.on_close(reason, text).decode().rstrip("\n")
            self.received.append(({}, bye))

    def set_deadline(self, when: float | None) -> None:
        pass

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.soon.append(callback)

    def pause_for_backlog(self) -> bool:
        return False

    def resume_after_backlog(self) -> None:
        pass

    def take(self) -> list[str]:
        return [line for _, line in self.take_events()]

    def take_events(self) -> list[tuple[Tags, str]]:
        received, self.received = self.received, []
        return received


class Node:
    def __init__(self, log: Log, name: str, config: Config) -> None:
        self.store = Store()
        self.chat = Chat(config, self.store)
        self.bus = NetworkBus(self.chat, Engine(log, f"{name}:1"))
        self.bus.origin = f"{name}:1"
        self.chat.bus = self.bus
        self.position = 0
        self.outlets: list[Outlet] = []

    def connect(self, nick: str | None = None) -> Outlet:
        outlet = Outlet(f"192.0.2.1:{40000 + len(self.outlets)}")
        outlet.session = Session(self.chat, outlet, {})
        outlet.session.on_open(None, None)
        self.outlets.append(outlet)
        outlet.take()
        if nick is not None:
            outlet.session.on_lines([nick.encode()])
        return outlet


class Network:
    def __init__(self, *nodes: str, **config: object) -> None:
        self.log = Log()
        settings = Config(
            path=Path("chatd.yaml"), history=HistoryConfig(path=Path("unused.db")), rooms=RoomsConfig(), **config
        )  # type: ignore[arg-type]
        self.nodes = {name: Node(self.log, name, settings) for name in nodes}

    def settle(self) -> None:
        """Decide the calls, apply the log on every node, run what came back, until quiet."""
        while True:
            busy = False
            while self.log.calls:
                busy = True
                self.log.calls.pop(0)()
            for node in self.nodes.values():
                if node.position < len(self.log.entries):
                    busy = True
                    node.bus.replica.apply(self.log.entries[node.position :])
                    node.position = len(self.log.entries)
                for outlet in node.outlets:
                    soon, outlet.soon = outlet.soon, []
                    busy = busy or bool(soon)
                    for callback in soon:
                        callback()
            if not busy:
                return

    def put(self, outlet: Outlet, *lines: str) -> None:
        """`lines` as one read of `outlet`'s client, then settle."""
        assert outlet.session is not None
        outlet.session.on_lines([line.encode() for line in lines])
        self.settle()

    def send(self, outlet: Outlet, *lines: str) -> list[str]:
        """`put`, then what `outlet`'s client received."""
        self.put(outlet, *lines)
        return outlet.take()


def test_registering_waits_for_the_log_then_autojoins() -> None:
    net = Network("a", "b")
    alice = net.nodes["a"].connect("alice")
    assert alice.take() == []  # nothing until the log says so
    net.settle()
    assert alice.take() == [
        "WELCOME alice Welcome to chatd, alice! Type /help for commands.",
        "JOIN #lobby alice",
        "USERS #lobby alice",
        "HISTORY #lobby 0 end",
        "CURRENT #lobby",
    ]


def test_lines_across_nodes_carry_the_same_ids_in_the_same_order() -> None:
    net = Network("a", "b")
    alice, bob = net.nodes["a"].connect("alice"), net.nodes["b"].connect("bob")
    net.settle()
    alice.take()
    assert bob.take()[-3:] == ["USERS #lobby alice bob", "HISTORY #lobby 0 end", "CURRENT #lobby"]
    net.put(alice, "one", "two")
    net.put(bob, "three")
    seen_a, seen_b = alice.take_events(), bob.take_events()
    assert [line for _, line in seen_a] == [line for _, line in seen_b]
    assert [tags["id"] for tags, _ in seen_a] == [tags["id"] for tags, _ in seen_b]
    ids = [int(tags["id"]) for tags, _ in seen_a]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [event.id for event in net.nodes["a"].store.events] == ids == [e.id for e in net.nodes["b"].store.events]


def test_a_line_after_join_goes_to_the_new_room() -> None:
    net = Network("a", "b")
    alice, bob = net.nodes["a"].connect("alice"), net.nodes["b"].connect("bob")
    net.settle()
    net.send(bob, "/join #rust")
    alice.take(), bob.take()
    net.put(alice, "/join #rust", "hello rust")  # one read: the second line waits for the join
    assert [line for line in alice.take() if "MSG" in line] == ["MSG #rust alice hello rust"]
    assert bob.take() == ["JOIN #rust alice", "MSG #rust alice hello rust"]


def test_the_nickname_is_unique_across_nodes() -> None:
    net = Network("a", "b", "c")
    outlets = [net.nodes[name].connect("carol") for name in ("a", "b", "c") for _ in range(3)]
    net.settle()
    welcomed = [o for o in outlets if any(line.startswith("WELCOME") for line in o.take())]
    assert len(welcomed) == 1
    refused = [o for o in outlets if o is not welcomed[0]]
    assert all(o.session is not None and not o.session.nick for o in refused)


def test_leave_rename_who_topic_and_dm_across_nodes() -> None:
    net = Network("a", "b")
    alice, bob = net.nodes["a"].connect("alice"), net.nodes["b"].connect("bob")
    net.settle()
    alice.take(), bob.take()
    assert net.send(bob, "/who") == ["USERS #lobby alice bob"]
    assert net.send(bob, "/rooms") == ["ROOM #lobby 2", "ROOMS 1"]
    assert net.send(alice, "/nick Alice2") == ["RENAME alice Alice2"]
    assert bob.take() == ["RENAME alice Alice2"]
    assert net.send(alice, "/topic borrow checker") == ["TOPIC #lobby Alice2 borrow checker"]
    assert bob.take() == ["TOPIC #lobby Alice2 borrow checker"]
    assert net.send(bob, "/msg alice2 psst") == ["DM bob Alice2 psst"]
    assert alice.take() == ["DM bob Alice2 psst"]
    assert net.send(bob, "/msg nobody hi")[0].startswith("ERR no_such_nick")
    net.send(alice, "/quit bye")
    assert bob.take() == ["LEAVE Alice2 quit bye"]
    assert net.send(bob, "/who") == ["USERS #lobby bob"]
    assert not net.nodes["a"].bus  # alice's node holds nobody now


def test_a_nickname_on_its_way_is_let_go_when_its_connection_ends() -> None:
    net = Network("a", "b")
    alice = net.nodes["a"].connect("alice")
    assert alice.session is not None
    alice.session.on_close("connection_lost", "")  # before the claim is decided
    net.settle()
    assert net.log.nicks == {} and not net.nodes["a"].bus
    again = net.nodes["b"].connect("alice")
    net.settle()
    assert again.take()[0].startswith("WELCOME alice")


def test_a_kick_closes_the_client_on_its_node_and_others_see_leave() -> None:
    net = Network("a", "b")
    alice, bob = net.nodes["a"].connect("alice"), net.nodes["b"].connect("bob")
    net.settle()
    alice.take(), bob.take()
    assert net.nodes["b"].bus.kick("alice", "spam")
    net.settle()
    assert alice.closed == ("kicked", "spam")
    assert bob.take() == ["LEAVE alice kicked spam"]
    assert net.nodes["b"].chat.nicks.find("alice") is None and net.nodes["a"].chat.nicks.find("alice") is None


def test_a_node_that_starts_takes_the_state_then_the_log() -> None:
    net = Network("a")
    alice = net.nodes["a"].connect("alice")
    net.settle()
    net.put(alice, "/join #rust", "/topic ferris", "hello")
    late = Node(net.log, "b", net.nodes["a"].chat.config)
    late.bus.replica.load(net.log.state())
    late.bus.replica.remember(net.log.entries)  # the history up to the state's id
    late.position = len(net.log.entries)
    net.nodes["b"] = late
    bob = late.connect("bob")
    net.settle()
    bob.take()
    assert net.send(bob, "/rooms") == ["ROOM #lobby 2", "ROOM #rust 1 ferris", "ROOMS 2"]
    joined = net.send(bob, "/join #rust")
    assert joined[:3] == ["JOIN #rust bob", "TOPIC #rust alice ferris", "USERS #rust alice bob"], joined
    assert [e.text for e in late.store.events] == [e.text for e in net.nodes["a"].store.events]


def test_a_leave_not_sent_is_not_sent_again_and_again() -> None:
    """A writer stopped without Redis answers every call `lost` at once: a
    leave sent again on that would loop for ever (it did, at shutdown)."""
    net = Network("a")
    node = net.nodes["a"]
    alice = node.connect("alice")
    net.settle()
    engine = node.bus._engine
    assert isinstance(engine, Engine)
    leaves: list[str] = []

    def unsent(conn: int, nick: str, reason: str, refused: Refusal) -> None:
        leaves.append(nick)
        refused("lost", "unsent")

    engine.leave = unsent  # type: ignore[method-assign]
    assert alice.session is not None
    alice.session.on_close("shutdown", "")
    assert leaves == ["alice"]
    assert not node.bus  # and the connection is let go


def test_a_client_gone_during_its_rename_leaves_under_its_new_name() -> None:
    """Its leave was sent with the old name (refused: it is no longer that
    connection's); the new one is let go once the rename is in the log."""
    net = Network("a", "b")
    alice, bob = net.nodes["a"].connect("alice"), net.nodes["b"].connect("bob")
    net.settle()
    alice.take(), bob.take()
    assert alice.session is not None
    alice.session.on_lines([b"/nick alice2"])
    alice.session.on_close("connection_lost", "")  # before the rename is decided
    net.settle()
    assert net.log.nicks.keys() == {"bob"}
    assert bob.take() == ["RENAME alice alice2", "LEAVE alice2 connection_lost"]
    assert not net.nodes["a"].bus


def test_what_only_irc_makes_is_refused_on_a_node_and_topics_and_creators_agree() -> None:
    """Tags and TAGMSG (only the IRC codec hands them in, and a node runs no
    IRC listener) are refused, never sent on without their tags; a topic
    keeps the log's time and a new room its creator on every node, as a
    standalone chat keeps them (for its IRC listener)."""
    net = Network("a", "b")
    alice, bob = net.nodes["a"].connect("alice"), net.nodes["b"].connect("bob")
    net.settle()
    alice.take(), bob.take()
    assert alice.session is not None
    entries = len(net.log.entries)
    for command in (
        Command("msg", b"hi", "#lobby", tags=b"+draft/reply=1"),
        Command("tagmsg", target="#lobby", tags=b"+typing=active"),
        Command("tagmsg", target="bob", tags=b"+typing=active"),
    ):
        alice.session.on_lines([command])
        net.settle()
        assert [line.split()[:2] for line in alice.take()] == [["ERR", "not_allowed"]]
    assert len(net.log.entries) == entries and bob.take() == []
    net.send(alice, "/join #rust")
    net.send(alice, "/topic ferris")
    here, there = net.nodes["a"].chat.rooms.find("#rust"), net.nodes["b"].chat.rooms.find("#rust")
    assert here is not None and there is not None
    assert here.topic_ms == there.topic_ms == 1000  # the entry's time (Redis's clock)
    assert here.creator is alice.session and there.creator is net.nodes["b"].chat.nicks.find("alice")
