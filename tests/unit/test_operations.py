"""chatd.operations: the operator's views and actions over a real Chat, with fake
clients in it and fake connections behind the server's snapshot."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from chatd import __version__
from chatd.config import Config
from chatd.core.chat import Chat
from chatd.operations import Operations
from chatd.stats import Snapshot, Tally, take_snapshot
from chatd.transport.lifecycle import Phase

# `chatctl status` shows the fields in this order (chatctl/control.py keeps it).
STATUS_FIELDS = [
    "version",
    "pid",
    "uptime_s",
    "listening",
    "config_file",
    "clients",
    "rooms",
    "connections",
    "messages_in",
    "messages_out",
    "tls_handshake_failures",
    "rejected",
    "history",
    "metrics",
    "handshaking",
    "registering",
    "room_members",
    "connections_accepted",
    "connections_refused",
    "disconnects",
    "lines_received",
    "bytes_received",
    "bytes_sent",
    "rate_limited",
    "slow_consumers",
    "send_queue_bytes",
    "send_queue_largest_bytes",
    "loop_lag_ms",
    "reloads",
    "cert_expires",
    "accounts",  # issue 21: None with accounts off
]


class FakeClient:
    """A registered client as the chat core sees it (chatd.core.nicks.Client)."""

    def __init__(self, peer: str, connected_at: float = 1_700_000_000.0, idle: float = 0.0) -> None:
        self.nick = ""
        self.peer = peer
        self.connected_at = connected_at
        self.last_active = time.monotonic() - idle
        self.received: list[str] = []
        self.closed: tuple[str, str] | None = None
        self.shared = None  # delivered to alone, not with a group (chatd/outlet.py)

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        self.received.extend(data.decode().splitlines())

    def close(self, reason: str, text: str = "") -> None:
        self.closed = (reason, text)


class CountedApp:
    """A connection's session, counting how often its counters are read."""

    def __init__(self, nick: str, messages_in: int) -> None:
        self.nick = nick
        self._messages_in = messages_in
        self.rate_limited = 0
        self.reads = 0

    @property
    def messages_in(self) -> int:
        self.reads += 1
        return self._messages_in


@dataclass
class FakeConnection:
    """What the snapshot reads of a live endpoint."""

    state: Phase
    app: CountedApp
    messages_out: int = 0
    queued: int = 0


@dataclass
class FakeDaemon:
    """The server's pieces that Operations reads (chatd.operations.Daemon)."""

    chat: Chat
    config: Config
    tally: Tally = field(default_factory=Tally)
    live: list[FakeConnection] = field(default_factory=list)
    address: tuple[str, int] = ("127.0.0.1", 6697)
    started: float = field(default_factory=time.monotonic)
    metrics_address: str | None = None
    snapshots: int = 0
    reloads: int = 0

    def snapshot(self) -> Snapshot:
        self.snapshots += 1
        return take_snapshot(self.tally, self.live, [], self.chat, None, {})  # type: ignore[arg-type]

    def reload(self) -> dict[str, object]:
        self.reloads += 1
        return {"ok": True, "error": None, "restart_needed": []}


def make_daemon() -> FakeDaemon:
    config = Config(path=Path("/etc/chatd/chatd.yaml"))
    return FakeDaemon(Chat(config), config)


def register(chat: Chat, nick: str, *rooms: str, **client: float) -> FakeClient:
    member = FakeClient(f"127.0.0.1:{40000 + len(chat.nicks)}", **client)
    chat.register(member, nick, b"WELCOME\n")
    for joined, room in enumerate(rooms):
        chat.join(member, room, joined, None)
    return member


def test_status_keeps_the_fields_chatctl_shows_in_their_order() -> None:
    status = Operations(make_daemon()).status()
    assert list(status) == STATUS_FIELDS
    assert status["version"] == __version__
    assert status["listening"] == "127.0.0.1:6697"
    assert status["config_file"] == "/etc/chatd/chatd.yaml"
    assert status["history"] is None and status["metrics"] == "off"


def test_status_is_one_reading_of_the_snapshot() -> None:
    daemon = make_daemon()
    register(daemon.chat, "alice", "#lobby")
    register(daemon.chat, "bob", "#lobby", "#rust")
    daemon.tally = Tally(
        accepted=4,
        handshake_failures=2,
        rejected=1,
        closed={"messages_in": 10, "messages_out": 20, "rate_limited": 0},
    )
    daemon.live = [
        FakeConnection(Phase.OPEN, CountedApp("alice", 3), messages_out=5),
        FakeConnection(Phase.OPEN, CountedApp("bob", 4), messages_out=6),
        FakeConnection(Phase.OPEN, CountedApp("", 0)),  # registering
        FakeConnection(Phase.HANDSHAKE, CountedApp("", 0)),
    ]
    status = Operations(daemon).status()
    assert daemon.snapshots == 1
    assert [conn.app.reads for conn in daemon.live] == [1, 1, 1, 1]  # one walk of the connections
    assert (status["clients"], status["connections"], status["rooms"]) == (2, 4, 2)
    assert (status["messages_in"], status["messages_out"]) == (10 + 3 + 4, 20 + 5 + 6)
    assert (status["handshaking"], status["registering"], status["room_members"]) == (1, 1, 3)
    assert (status["tls_handshake_failures"], status["rejected"], status["connections_accepted"]) == (2, 1, 4)


def test_status_says_where_metrics_are_served_and_for_how_long() -> None:
    daemon = make_daemon()
    daemon.metrics_address = "[::1]:9108"
    daemon.started = time.monotonic() - 60
    status = Operations(daemon).status()
    assert status["metrics"] == "[::1]:9108"
    assert isinstance(status["uptime_s"], float) and 60 <= status["uptime_s"] < 3600


def test_who_lists_registered_clients_by_nickname_whatever_the_case() -> None:
    daemon = make_daemon()
    register(daemon.chat, "carol", idle=30)
    register(daemon.chat, "Bob", connected_at=1_700_000_000.0)
    register(daemon.chat, "alice")
    who = Operations(daemon).who()
    assert [client["nick"] for client in who] == ["alice", "Bob", "carol"]
    assert who[1] == {
        "nick": "Bob",
        "peer": "127.0.0.1:40001",
        "connected_since": "2023-11-14T22:13:20+00:00",
        "idle_s": who[1]["idle_s"],
    }
    idle = who[2]["idle_s"]
    assert isinstance(idle, float) and 30 <= idle < 3600


def test_rooms_lists_each_room_with_its_members_and_topic() -> None:
    daemon = make_daemon()
    bob = register(daemon.chat, "bob", "#lobby", "#Rust")
    register(daemon.chat, "Alice", "#lobby")
    room = daemon.chat.rooms.find("#rust")
    assert room is not None
    daemon.chat.set_topic(bob, room, "borrow checker questions")
    assert Operations(daemon).rooms() == [
        {"room": "#lobby", "members": ["Alice", "bob"], "topic": ""},
        {"room": "#Rust", "members": ["bob"], "topic": "borrow checker questions"},
    ]


def test_kick_closes_the_client_with_the_reason_on_one_line() -> None:
    daemon = make_daemon()
    alice = register(daemon.chat, "alice")
    operations = Operations(daemon)
    assert operations.kick("ALICE", "spam\r\nBYE forged\x1b[2J") is True
    assert alice.closed == ("kicked", "spam  BYE forged [2J")
    assert operations.kick("nobody", "") is False


def test_broadcast_sends_one_clean_info_line_to_every_registered_client() -> None:
    daemon = make_daemon()
    clients = [register(daemon.chat, nick) for nick in ("alice", "bob")]
    for client in clients:
        client.received.clear()  # the WELCOME
    assert Operations(daemon).broadcast("restart at noon\nQUIT\x9b") == 2
    assert [client.received for client in clients] == [["INFO restart at noon QUIT"]] * 2


def test_reload_is_the_servers() -> None:
    daemon = make_daemon()
    assert Operations(daemon).reload() == {"ok": True, "error": None, "restart_needed": []}
    assert daemon.reloads == 1
