"""chatd.control and chatctl's operator commands, with a fake Operator over a real socket.

(`chatctl rooms` is tested in tests/integration/test_chatctl_rooms.py.)
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import stat
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

import chatd.control
from chatctl.cli import main as chatctl
from chatctl.control import _render
from chatd.control import MAX_REQUEST_BYTES, ControlServer, Operator

STATUS: dict[str, object] = {
    "version": "0.1.0",
    "uptime_s": 3725.4,
    "clients": 2,
    "rooms": 3,
    "messages_in": 10,
    "messages_out": 20,
    "tls_handshake_failures": 1,
    "config_file": "/etc/chatd/chatd.yaml",
}
WHO: list[dict[str, object]] = [
    {"nick": "alice", "peer": "127.0.0.1:50001", "connected_since": "2026-01-02T03:04:05+00:00", "idle_s": 5.5},
    {"nick": "bob", "peer": "[::1]:50002", "connected_since": "2026-01-02T03:04:06+00:00", "idle_s": 4000},
]
ROOMS: list[dict[str, object]] = [
    {"room": "#lobby", "members": ["alice", "bob"], "topic": ""},
    {"room": "#Rust", "members": ["bob"], "topic": "borrow checker questions"},
    {"room": "#help", "members": [], "topic": ""},
]
SURROGATES = "text fields must be valid Unicode without lone surrogates"
NESTED = "the request is nested too deeply"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


@dataclass
class FakeOperator:
    nicks: tuple[str, ...] = ("alice", "bob")
    reload_result: dict[str, object] = field(default_factory=lambda: {"ok": True, "error": None, "restart_needed": []})
    bug: Exception | None = None
    calls: list[tuple[object, ...]] = field(default_factory=list)

    def status(self) -> dict[str, object]:
        self.calls.append(("status",))
        if self.bug:
            raise self.bug
        return STATUS

    def who(self) -> list[dict[str, object]]:
        self.calls.append(("who",))
        return WHO

    def rooms(self) -> list[dict[str, object]]:
        self.calls.append(("rooms",))
        return ROOMS

    def kick(self, nick: str, reason: str) -> bool:
        self.calls.append(("kick", nick, reason))
        return nick.lower() in self.nicks

    def broadcast(self, text: str) -> int:
        self.calls.append(("broadcast", text))
        return len(self.nicks)

    def reload(self) -> dict[str, object]:
        self.calls.append(("reload",))
        return self.reload_result


_: Operator = FakeOperator()  # the fake keeps to the protocol the Server implements


def test_the_fake_operator_has_every_method_of_the_protocol() -> None:
    # Tests are not type-checked: the annotation above alone would not notice a new method.
    wanted = {name for name, value in vars(Operator).items() if callable(value) and not name.startswith("_")}
    assert wanted >= {"status", "who", "rooms", "kick", "broadcast", "reload"}
    assert all(callable(getattr(FakeOperator, name, None)) for name in wanted), wanted


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    # Every level reaches capture_logs, whatever ran before; outside it, events are
    # returned rather than printed, so they never mix with chatctl's output.
    structlog.reset_defaults()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    yield
    structlog.reset_defaults()


@pytest.fixture
def operator() -> FakeOperator:
    return FakeOperator()


@pytest.fixture
def server(short_dir: Path, operator: FakeOperator) -> Iterator[ControlServer]:
    control = ControlServer(short_dir / "control.sock", operator)
    control.start()
    yield control
    control.stop()


def ask_raw(path: Path, data: bytes, *, half_close: bool = False) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
        return answer


def ask(path: Path, request: object) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(ask_raw(path, json.dumps(request).encode() + b"\n"))
    return reply


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


# -- the server ----------------------------------------------------------------------------


def test_status_who_and_rooms(server: ControlServer, operator: FakeOperator) -> None:
    with capture_logs() as logs:
        assert ask(server.path, {"cmd": "status"}) == {"ok": True, "result": STATUS}
        assert ask(server.path, {"cmd": "who"}) == {"ok": True, "result": WHO}
        assert ask(server.path, {"cmd": "rooms"}) == {"ok": True, "result": ROOMS}
    assert operator.calls == [("status",), ("who",), ("rooms",)]
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("operator_status", "debug"),
        ("operator_who", "debug"),
        ("operator_rooms", "debug"),
    ]


def test_kick(server: ControlServer, operator: FakeOperator) -> None:
    with capture_logs() as logs:
        reply = ask(server.path, {"cmd": "kick", "nick": "Bob", "reason": "spam"})
    assert reply == {"ok": True, "result": {"kicked": "Bob"}}
    assert operator.calls == [("kick", "Bob", "spam")]
    assert events(logs, "operator_kick") == [
        {"event": "operator_kick", "log_level": "info", "nick": "Bob", "reason": "spam", "found": True}
    ]


@pytest.mark.parametrize("request_", [{"cmd": "kick", "nick": "bob"}, {"cmd": "kick", "nick": "bob", "reason": None}])
def test_kick_reason_is_optional(server: ControlServer, operator: FakeOperator, request_: object) -> None:
    assert ask(server.path, request_)["ok"] is True
    assert operator.calls == [("kick", "bob", "")]


def test_kick_of_nobody_is_refused_and_logged(server: ControlServer) -> None:
    with capture_logs() as logs:
        reply = ask(server.path, {"cmd": "kick", "nick": "carol"})
    assert reply == {"ok": False, "error": "nobody is called carol"}
    assert events(logs, "operator_kick")[0]["found"] is False
    assert not events(logs, "control_bad_request")  # a fact about the room, not a bad request


def test_broadcast(server: ControlServer, operator: FakeOperator) -> None:
    with capture_logs() as logs:
        reply = ask(server.path, {"cmd": "broadcast", "text": "maintenance at noon ☕"})
    assert reply == {"ok": True, "result": {"recipients": 2}}
    assert operator.calls == [("broadcast", "maintenance at noon ☕")]
    [event] = events(logs, "operator_broadcast")
    assert (event["recipients"], event["size"], event["log_level"]) == (2, 23, "info")
    assert "maintenance" not in repr(logs)  # sizes are logged, never the text


@pytest.mark.parametrize(
    "result",
    [
        {"ok": True, "error": None, "restart_needed": ["server.port"]},
        {"ok": False, "error": "chatd.yaml: limits.max_line_bytes: must be an integer", "restart_needed": []},
    ],
)
def test_reload(server: ControlServer, operator: FakeOperator, result: dict[str, object]) -> None:
    operator.reload_result = result
    with capture_logs() as logs:
        assert ask(server.path, {"cmd": "reload"}) == {"ok": True, "result": result}
    assert events(logs, "operator_reload")[0]["ok"] is result["ok"]


def test_a_surrogate_pair_is_fine(server: ControlServer, operator: FakeOperator) -> None:
    reply = json.loads(ask_raw(server.path, b'{"cmd": "broadcast", "text": "\\ud83d\\ude00 smile"}\n'))
    assert reply["ok"] is True and operator.calls == [("broadcast", "\U0001f600 smile")]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"status\n", "the request is not valid JSON"),
        (b'{"cmd": "status"\n', "the request is not valid JSON"),
        (b"\xff\xfe\n", "the request is not valid JSON"),
        (b"\n", "empty request"),
        (b"[1, 2]\n", "a request is a JSON object"),
        (b'"status"\n', "a request is a JSON object"),
        (b"{}\n", "unknown command None"),
        (b'{"cmd": "dance"}\n', "unknown command 'dance' (known: status, who, rooms, kick, broadcast, reload)"),
        (b'{"cmd": ["status"]}\n', "unknown command ['status']"),
        (b'{"cmd": "kick"}\n', "kick needs 'nick', a non-empty string"),
        (b'{"cmd": "kick", "nick": " "}\n', "kick needs 'nick'"),
        (b'{"cmd": "kick", "nick": 5}\n', "kick needs 'nick'"),
        (b'{"cmd": "kick", "nick": "bob", "reason": 5}\n', "kick needs 'reason'"),
        (b'{"cmd": "broadcast", "text": ""}\n', "broadcast needs 'text'"),
        (b'{"cmd": "status", "verbose": true}\n', "status takes no field 'verbose' (it takes: none)"),
        (b'{"cmd": "rooms", "room": "#lobby"}\n', "rooms takes no field 'room' (it takes: none)"),
        (b'{"cmd": "kick", "nick": "bob", "why": "x"}\n', "kick takes no field 'why' (it takes: nick, reason)"),
        # Issue 22: the room commands need accounts (roles are accounts').
        (b'{"cmd": "room_show", "room": "#a"}\n', "room_show: this server has no accounts"),
        (b'{"cmd": "room_list"}\n', "room_list: this server has no accounts"),
        # Issue 19: JSON may carry lone surrogates, which no line can; deep nesting
        # overflowed the parser's recursion. Both were "internal error" (or, for a
        # kick's reason, "ok" and a crashed session for the client kicked).
        (b'{"cmd": "kick", "nick": "bob", "reason": "bye \\ud800"}\n', SURROGATES),
        (b'{"cmd": "broadcast", "text": "\\udfff"}\n', SURROGATES),
        (b'{"cmd": "kick", "nick": "b\\udc80b"}\n', SURROGATES),
        (b'{"cmd": "\\ud800"}\n', SURROGATES),
        (b'{"cmd": "status", "\\ud800": 1}\n', SURROGATES),
        (b'{"cmd": "kick", "nick": "bob", "reason": "\\ud83d\\ude00 \\ud800"}\n', SURROGATES),
        (b'{"cmd": "status", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}\n", NESTED),
        (b"[" * 60000 + b"\n", NESTED),
    ],
)
def test_bad_requests(server: ControlServer, operator: FakeOperator, data: bytes, error: str) -> None:
    with capture_logs() as logs:
        reply = json.loads(ask_raw(server.path, data))
    assert reply["ok"] is False and reply["error"].startswith(error), reply
    assert operator.calls == []
    [event] = events(logs, "control_bad_request")
    assert event["log_level"] == "warning" and event["uid"] == os.geteuid()


def test_request_ended_by_eof_instead_of_newline(server: ControlServer) -> None:
    reply = json.loads(ask_raw(server.path, b'{"cmd": "status"}', half_close=True))
    assert reply == {"ok": True, "result": STATUS}


def test_request_size_is_bounded(server: ControlServer, operator: FakeOperator) -> None:
    text = "x" * (MAX_REQUEST_BYTES - 100)
    assert ask(server.path, {"cmd": "broadcast", "text": text})["ok"] is True
    reply = json.loads(ask_raw(server.path, b"x" * (MAX_REQUEST_BYTES + 5000)))
    assert reply == {"ok": False, "error": f"request larger than {MAX_REQUEST_BYTES} bytes"}
    assert operator.calls == [("broadcast", text)]


@pytest.fixture
def quick_server(short_dir: Path, operator: FakeOperator, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlServer]:
    """A control socket whose clients have 0.3 s to send a request."""
    monkeypatch.setattr(chatd.control, "REQUEST_TIMEOUT", 0.3)
    control = ControlServer(short_dir / "control.sock", operator)
    control.start()
    yield control
    control.stop()


@pytest.fixture
def capped_server(short_dir: Path, operator: FakeOperator, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlServer]:
    """Three connections at once, and deadlines no test here reaches."""
    monkeypatch.setattr(chatd.control, "REQUEST_TIMEOUT", 60.0)
    monkeypatch.setattr(chatd.control, "MAX_CONNECTIONS", 3)
    control = ControlServer(short_dir / "control.sock", operator)
    control.start()
    yield control
    control.stop()


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(path))
    return sock


def still_open(sock: socket.socket) -> bool:
    """Nothing to read and no end: the server has neither answered nor closed it."""
    sock.setblocking(False)
    try:
        sock.recv(100)  # an answer, or b"" for the end: either way, not waiting
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(10)
    return False


def test_a_silent_client_delays_nobody(server: ControlServer) -> None:
    # Issue 19: one silent client held the control thread for its whole deadline.
    with connect(server.path) as silent, connect(server.path) as stalled:
        stalled.sendall(b'{"cmd":')  # and then nothing
        assert ask(server.path, {"cmd": "who"})["ok"] is True
        assert still_open(silent) and still_open(stalled)  # answered while both wait


def test_a_stalled_client_is_cut_off_at_the_deadline(quick_server: ControlServer) -> None:
    with capture_logs() as logs, connect(quick_server.path) as stalled:
        stalled.sendall(b'{"cmd":')  # and then nothing
        assert stalled.recv(100) == b""  # closed without an answer
    [event] = events(logs, "control_request_timed_out")
    assert event["stage"] == "reading" and event["log_level"] == "debug"
    assert ask(quick_server.path, {"cmd": "who"})["ok"] is True


def test_past_the_cap_the_oldest_silent_client_makes_room(capped_server: ControlServer) -> None:
    with capture_logs() as logs:
        silent = [connect(capped_server.path) for _ in range(3)]
        try:
            assert ask(capped_server.path, {"cmd": "who"})["ok"] is True
            assert silent[0].recv(100) == b""  # the oldest went for the newcomer
            assert still_open(silent[1]) and still_open(silent[2])
        finally:
            for sock in silent:
                sock.close()
    assert [event["stage"] for event in events(logs, "control_request_evicted")] == ["reading"]


def test_a_bug_is_logged_answered_and_survived(server: ControlServer, operator: FakeOperator) -> None:
    operator.bug = KeyError("uptime_s")  # a bug's KeyError is not mistaken for a bad request
    with capture_logs() as logs:
        reply = ask(server.path, {"cmd": "status"})
    assert reply == {"ok": False, "error": "internal error in chatd (its log says control_crashed)"}
    [event] = events(logs, "control_crashed")
    assert event["log_level"] == "error" and event["exc_info"] is True
    assert not events(logs, "control_bad_request")
    assert ask(server.path, {"cmd": "who"})["ok"] is True


# -- the socket file -----------------------------------------------------------------------


def test_socket_is_owner_only_and_no_temporary_is_left(server: ControlServer) -> None:
    info = server.path.lstat()
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    assert os.listdir(server.path.parent) == ["control.sock"]


def test_serving_thread_is_named(short_dir: Path) -> None:
    names = {thread.name: thread.daemon for thread in threading.enumerate()}
    assert "chatd-control" not in names  # no leftovers from other tests
    control = ControlServer(short_dir / "c.sock", FakeOperator())
    try:
        control.start()
        names = {thread.name: thread.daemon for thread in threading.enumerate()}
        assert names["chatd-control"] is True
    finally:
        control.stop()
    assert "chatd-control" not in {thread.name for thread in threading.enumerate()}


def test_stop_removes_the_socket(short_dir: Path) -> None:
    control = ControlServer(short_dir / "control.sock", FakeOperator())
    control.start()
    control.stop()
    assert os.listdir(short_dir) == []


def test_stop_leaves_a_socket_that_is_no_longer_ours(short_dir: Path) -> None:
    control = ControlServer(short_dir / "control.sock", FakeOperator())
    control.start()
    control.path.unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(control.path))  # say, another daemon's
        control.stop()
        assert stat.S_ISSOCK(control.path.lstat().st_mode)


def test_stale_socket_is_replaced(short_dir: Path, operator: FakeOperator) -> None:
    path = short_dir / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening: what a killed daemon leaves behind
    control = ControlServer(path, operator)
    control.start()
    try:
        assert ask(path, {"cmd": "status"})["ok"] is True
    finally:
        control.stop()


def test_socket_in_use_is_refused(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(path))
        live.listen(1)
        inode = path.lstat().st_ino
        with pytest.raises(ValueError, match="is in use by a running process"):
            ControlServer(path, FakeOperator()).start()
        assert path.lstat().st_ino == inode  # still the other process's socket
        assert os.listdir(short_dir) == ["control.sock"]


def test_non_socket_is_refused_and_kept(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    path.write_text("precious")
    control = ControlServer(path, FakeOperator())
    with pytest.raises(ValueError, match="exists and is not a socket"):
        control.start()
    assert path.read_text() == "precious"
    control.stop()  # harmless after a failed start
    assert path.read_text() == "precious"


def test_symlink_is_refused(short_dir: Path) -> None:
    target = short_dir / "elsewhere"
    target.write_text("precious")
    (short_dir / "control.sock").symlink_to(target)
    with pytest.raises(ValueError, match="not a socket"):
        ControlServer(short_dir / "control.sock", FakeOperator()).start()
    assert target.read_text() == "precious" and (short_dir / "control.sock").is_symlink()


def _as_nobody(path: Path, request: bytes) -> bytes:
    """Run one request in a child process that has become uid/gid 65534 (nobody)."""
    reader, writer = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads (3.12+)
        pid = os.fork()
    if pid == 0:
        try:
            os.close(reader)
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                try:
                    sock.connect(str(path))
                except PermissionError:
                    os.write(writer, b"EACCES")
                    os._exit(0)
                sock.sendall(request)
                answer = b""
                while b"\n" not in answer and (chunk := sock.recv(4096)):
                    answer += chunk
                os.write(writer, answer)
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer


@needs_root
def test_mode_0600_keeps_other_users_out(server: ControlServer) -> None:
    os.chmod(server.path.parent, 0o755)
    assert _as_nobody(server.path, b'{"cmd": "status"}\n') == b"EACCES"


@needs_root
def test_peer_credentials_refuse_other_users(server: ControlServer, operator: FakeOperator) -> None:
    os.chmod(server.path.parent, 0o755)
    os.chmod(server.path, 0o666)  # even if the mode were wrong, SO_PEERCRED holds
    with capture_logs() as logs:
        answer = _as_nobody(server.path, b'{"cmd": "kick", "nick": "alice"}\n')
    assert json.loads(answer) == {"ok": False, "error": "permission denied: not the daemon's user or root"}
    assert operator.calls == []
    [event] = events(logs, "control_refused")
    assert event["uid"] == 65534 and event["log_level"] == "warning"


# -- chatctl status|who|kick|broadcast|reload ------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = chatctl(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


def test_chatctl_status(server: ControlServer, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "status", "--socket", str(server.path))
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "version:                0.1.0"
    assert "uptime_s:               1h 2m" in lines
    assert len({len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines}) == 1  # aligned
    assert {line.split(":")[0] for line in lines} == set(STATUS)


def test_chatctl_status_json(server: ControlServer, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "status", "--json", "--socket", str(server.path))
    assert status == 0 and json.loads(out) == STATUS


def test_chatctl_who(server: ControlServer, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "who", "--socket", str(server.path))
    assert status == 0
    assert out.splitlines() == [
        "NICK   PEER             CONNECTED                  IDLE",
        "alice  127.0.0.1:50001  2026-01-02T03:04:05+00:00  5s",
        "bob    [::1]:50002      2026-01-02T03:04:06+00:00  1h 6m",
        "2 connected",
    ]


def test_chatctl_kick(server: ControlServer, operator: FakeOperator, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "kick", "--socket", str(server.path), "bob", "spamming", "links") == (0, "kicked bob\n", "")
    assert operator.calls == [("kick", "bob", "spamming links")]
    status, _, err = run(capsys, "kick", "--socket", str(server.path), "carol")
    assert status == 1 and "nobody is called carol" in err


def test_chatctl_broadcast(server: ControlServer, operator: FakeOperator, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "broadcast", "--socket", str(server.path), "back", "at", "noon") == (
        0,
        "sent to 2 clients\n",
        "",
    )
    assert operator.calls == [("broadcast", "back at noon")]


def test_chatctl_reload(server: ControlServer, operator: FakeOperator, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "reload", "--socket", str(server.path)) == (0, "configuration reloaded\n", "")
    operator.reload_result = {"ok": True, "error": None, "restart_needed": ["server.port"]}
    status, out, _ = run(capsys, "reload", "--socket", str(server.path))
    assert status == 0 and "needs a restart for: server.port" in out
    operator.reload_result = {"ok": False, "error": "chatd.yaml: invalid YAML", "restart_needed": []}
    status, out, _ = run(capsys, "reload", "--socket", str(server.path))
    assert status == 1 and "still running on the old configuration: chatd.yaml: invalid YAML" in out


def test_chatctl_finds_the_socket_through_the_config(
    server: ControlServer, short_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("server.crt", "server.key"):
        (short_dir / name).write_text("only needs to be readable here")
    config = short_dir / "chatd.yaml"
    config.write_text("tls: {cert: server.crt, key: server.key}\ncontrol: {socket: control.sock}\n")
    status, out, _ = run(capsys, "who", "--json", "--config", str(config))
    assert status == 0 and json.loads(out) == WHO


def test_chatctl_config_without_control_socket(short_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("server.crt", "server.key"):
        (short_dir / name).write_text("x")
    config = short_dir / "chatd.yaml"
    config.write_text("tls: {cert: server.crt, key: server.key}\ncontrol: {socket: null}\n")
    status, _, err = run(capsys, "status", "--config", str(config))
    assert status == 2 and "control.socket is not set" in err
    status, _, err = run(capsys, "status", "--config", str(short_dir / "missing.yaml"))
    assert status == 2 and "config error" in err and "missing.yaml" in err


def test_chatctl_without_a_daemon(short_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = short_dir / "control.sock"
    status, _, err = run(capsys, "status", "--socket", str(path))
    assert status == 3 and str(path) in err and "is chatd running" in err
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
        os.chmod(path, 0o600)
        status, _, err = run(capsys, "status", "--socket", str(path))
    assert status == 3 and f"no chatd is listening on {path}" in err and "control.socket" in err


def test_chatctl_refuses_a_socket_others_can_use(server: ControlServer, capsys: pytest.CaptureFixture[str]) -> None:
    os.chmod(server.path, 0o660)
    status, _, err = run(capsys, "status", "--socket", str(server.path))
    assert status == 4 and "can be used by other users (mode 0660)" in err


def test_chatctl_refuses_a_file_that_is_not_a_socket(short_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (short_dir / "control.sock").write_text("")
    status, _, err = run(capsys, "status", "--socket", str(short_dir / "control.sock"))
    assert status == 4 and "is not a socket" in err


@needs_root
def test_chatctl_refuses_a_socket_someone_else_owns(
    server: ControlServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 1000)  # chatctl run by uid 1000
    assert run(capsys, "status", "--socket", str(server.path))[0] == 0  # root's socket is fine
    os.chown(server.path, 65534, 65534)
    status, _, err = run(capsys, "status", "--socket", str(server.path))
    assert status == 4 and "belongs to uid 65534" in err
    monkeypatch.undo()  # root may use the socket of a daemon running as its service user
    assert run(capsys, "status", "--socket", str(server.path))[0] == 0


def test_chatctl_says_when_the_answer_is_not_json(short_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = short_dir / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as impostor:
        impostor.bind(str(path))
        os.chmod(path, 0o600)
        impostor.listen(1)

        def answer() -> None:
            conn, _ = impostor.accept()
            with conn:
                conn.recv(1000)
                conn.sendall(b"HTTP/1.0 200 OK\n")

        thread = threading.Thread(target=answer)
        thread.start()
        status, _, err = run(capsys, "status", "--socket", str(path))
        thread.join(timeout=5)
    assert status == 3 and "not a JSON object" in err


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "1e9"])
def test_chatctl_timeout_must_be_sensible(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        chatctl(["status", "--socket", "/nonexistent", "--timeout", value])
    assert exited.value.code == 2
    assert "--timeout: must be a number of seconds" in capsys.readouterr().err


def render_status(status: dict[str, object]) -> str:
    return _render("status", status)


def test_chatctl_status_prints_the_metrics_figures_readably() -> None:
    soon = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30, hours=1)).isoformat(timespec="seconds")
    status = {
        "uptime_s": 59,
        "bytes_sent": 3 * 1024 * 1024,
        "send_queue_bytes": 100,
        "disconnects": {"quit": 3, "slow_consumer": 1},
        "connections_refused": {},
        "loop_lag_ms": {"chatd-io-0": 0.4, "chatd-io-1": 12.0},
        "cert_expires": soon,
        "history": {"rows_written_total": 12.0, "write_lag_seconds": 0.5},
        "metrics": "off",
    }
    lines = dict(line.split(":", 1) for line in render_status(status).splitlines())
    assert {key: value.strip() for key, value in lines.items()} == {
        "uptime_s": "59s",
        "bytes_sent": "3145728 (3.0 MiB)",
        "send_queue_bytes": "100",
        "disconnects": "quit 3, slow_consumer 1",
        "connections_refused": "none",
        "loop_lag_ms": "chatd-io-0 0.4 ms, chatd-io-1 12 ms",
        "cert_expires": f"{soon} (in 30 days)",
        "history": "rows_written_total 12, write_lag_seconds 0.5",
        "metrics": "off",
    }
    assert "(EXPIRED " in render_status({"cert_expires": "2000-01-01T00:00:00+00:00"})
    assert render_status({"cert_expires": None}) == "cert_expires: unknown\n"


def test_who_on_a_cluster_node_shows_each_clients_node() -> None:
    clients = [
        {
            "nick": "alice",
            "peer": "127.0.0.1:5000",
            "connected_since": "2026-12-07T10:00:00+00:00",
            "idle_s": 3.0,
            "node": "a",
        },
        {"nick": "bob", "peer": "", "connected_since": "", "idle_s": 0.0, "node": "b"},
    ]
    lines = _render("who", clients).splitlines()
    assert lines[0].split() == ["NICK", "PEER", "CONNECTED", "IDLE", "NODE"]
    assert lines[1].split() == ["alice", "127.0.0.1:5000", "2026-12-07T10:00:00+00:00", "3s", "a"]
    assert lines[2].split() == ["bob", "-", "-", "-", "b"]
    assert lines[3] == "2 connected"
    assert _render("who", [{k: v for k, v in clients[0].items() if k != "node"}]).splitlines()[0].split()[-1] == "IDLE"
