"""`chatctl connect` after a lost connection: the interactive client in a
pseudo-terminal reconnects, rejoins its rooms and catches up, showing every
message once; script mode does it with --reconnect. And the scroll-back view
pages older history in.

chatd is killed with SIGKILL and started again on the same port with the same
config and database. What was said before the kill is on disk once the store
has it (checked by reading the database, not by sleeping past `flush_ms`).
"""

from __future__ import annotations

import collections
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatd.config import load_config
from chatd.storage.sqlite import read_events
from tests.conftest import REPO, Daemon, wait_until
from tests.support.chatctl import TIMEOUT, Peer, connect_cmd, untagged
from tests.support.terminal import Terminal

MESSAGE = re.compile(r"<bob> ((?:before|missed|after) \d+)$")


def stored(daemon: Daemon, room: str) -> list[str]:
    """The texts of `room`'s events in the daemon's database."""
    path = load_config(daemon.config_path, check_files=False).history.path
    if not path.exists():
        return []
    return [event.text.decode() for event in read_events(path, room.lower())]


def kill_and_restart(daemon: Daemon) -> None:
    """SIGKILL, then the same config (on the same port) and database again."""
    assert daemon.process is not None
    daemon.config["server"]["port"] = daemon.port
    daemon.process.kill()
    daemon.process.wait(TIMEOUT)
    before = len(daemon.find_events("listening"))
    daemon.start(wait=False)
    wait_until(lambda: len(daemon.find_events("listening")) > before, 20, "chatd listening again")


def counted(screen_lines: list[str]) -> collections.Counter[str]:
    """How often each of bob's test messages appears."""
    return collections.Counter(m.group(1) for line in screen_lines if (m := MESSAGE.search(line)))


def test_interactive_reconnects_and_catches_up_exactly(
    start_daemon: Callable[..., Daemon], terminals: list[Terminal], peer: Callable[[Any, str], Peer]
) -> None:
    # A backlog of 2: after 5 missed messages, the client must ask for the rest.
    daemon = start_daemon(history={"backlog": 2, "flush_ms": 20})
    term = Terminal(connect_cmd(daemon.port, "--nick", "carol", "--ca", str(daemon.pki.ca)), rows=60)
    terminals.append(term)
    term.wait_for_input_line("[#lobby] carol>")
    term.send("/join #rust\r")
    term.wait_for_input_line("[#rust] carol>")
    bob = peer(daemon, "bob")
    bob.join("#rust")
    for n in range(1, 4):
        bob.send(f"before {n}")
    term.wait_for_line(r"<bob> before 3$")
    wait_until(lambda: len(stored(daemon, "#rust")) == 3, TIMEOUT, "the messages on disk")

    # chatctl is stopped while chatd dies and comes back and bob says more, so
    # that it reconnects to a room where more was said than the backlog holds.
    term.child.kill(signal.SIGSTOP)
    try:
        kill_and_restart(daemon)
        bob = peer(daemon, "bob")
        bob.join("#rust")
        for n in range(1, 6):
            bob.send(f"missed {n}")
        bob.send("/ping sent")
        bob.expect_eventually("PONG sent")
    finally:
        term.child.kill(signal.SIGCONT)

    term.wait_for(lambda s: any("reconnecting in" in line for line in s.all_lines()), "a reconnecting notice")
    term.wait_for(
        lambda s: any(line.endswith("-- #rust: back, 5 missed events above") for line in s.all_lines()),
        "#rust caught up",
    )
    term.wait_for(
        lambda s: any(line.endswith("-- #lobby: back, nothing missed") for line in s.all_lines()),
        "#lobby caught up",
    )
    # The rooms as they were: the same order, #rust current again.
    term.wait_for_input_line("[#rust] carol>")
    term.wait_for(lambda s: s.bottom_line() == " #lobby [#rust]", "the rooms in the status line")
    for n in range(1, 3):
        bob.send(f"after {n}")
    term.wait_for_line(r"<bob> after 2$")

    expected = {f"before {n}": 1 for n in range(1, 4)}
    expected.update({f"missed {n}": 1 for n in range(1, 6)})
    expected.update({f"after {n}": 1 for n in range(1, 3)})
    lines = term.screen.all_lines()
    assert counted(lines) == expected, "\n".join(lines)
    # In order: the missed ones between the others.
    order = [m.group(1) for line in lines if (m := MESSAGE.search(line))]
    assert order == list(expected), order
    term.send("\x04")
    assert term.wait_exit() == 0


def test_interactive_ctrl_c_while_chatd_is_down(start_daemon: Callable[..., Daemon], terminals: list[Terminal]) -> None:
    daemon = start_daemon()
    term = Terminal(connect_cmd(daemon.port, "--nick", "carol", "--ca", str(daemon.pki.ca)))
    terminals.append(term)
    term.wait_for_input_line("[#lobby] carol>")
    assert daemon.process is not None
    daemon.process.kill()
    daemon.process.wait(TIMEOUT)
    daemon.process = None  # nothing for the fixture to stop
    term.wait_for_line(r"-- connection lost: the server closed the connection without saying why$")
    term.wait_for_line(r"-- reconnecting in \d+\.\d s \(attempt 1\); Ctrl-C to stop$")
    term.send("\x03")
    assert term.wait_exit() == 7


def test_script_mode_reconnects_only_when_asked(
    start_daemon: Callable[..., Daemon], peer: Callable[[Any, str], Peer], tmp_path: Path
) -> None:
    daemon = start_daemon(history={"backlog": 1, "flush_ms": 20})
    out, err = tmp_path / "out", tmp_path / "err"
    plain_out, plain_err = tmp_path / "plain-out", tmp_path / "plain-err"
    with out.open("w") as stdout, err.open("w") as stderr:
        script = subprocess.Popen(
            [*connect_cmd(daemon.port, "--nick", "carol", "--ca", str(daemon.pki.ca), "--reconnect")],
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            text=True,
            cwd=REPO,
        )
    with plain_out.open("w") as stdout, plain_err.open("w") as stderr:
        plain = subprocess.Popen(  # the same without --reconnect
            connect_cmd(daemon.port, "--nick", "dave", "--ca", str(daemon.pki.ca)),
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            text=True,
            cwd=REPO,
        )
    try:
        assert script.stdin is not None
        for output in (out, plain_out):
            wait_until(lambda: "CURRENT #lobby" in output.read_text(), TIMEOUT, "registered")
        bob = peer(daemon, "bob")
        bob.send("before")
        wait_until(lambda: stored(daemon, "#lobby") == ["before"], TIMEOUT, "the message on disk")
        script.send_signal(signal.SIGSTOP)
        try:
            kill_and_restart(daemon)
            bob = peer(daemon, "bob")
            for n in range(1, 4):
                bob.send(f"missed {n}")
            bob.send("/ping sent")
            bob.expect_eventually("PONG sent")
        finally:
            script.send_signal(signal.SIGCONT)
        wait_until(lambda: "#lobby: caught up, 3 missed events" in err.read_text(), TIMEOUT, "caught up")
        script.stdin.write("back\n")
        script.stdin.close()
        assert script.wait(TIMEOUT) == 0, err.read_text()
        # Without --reconnect, the same loss ends the session (exit 7).
        assert plain.wait(TIMEOUT) == 7
        assert "without saying why" in plain_err.read_text()
    finally:
        for process in (script, plain):
            if process.poll() is None:
                process.kill()
                process.wait(TIMEOUT)
            if process.stdin is not None and not process.stdin.closed:
                process.stdin.close()
    lines = out.read_text().splitlines()
    texts = [untagged(line) for line in lines]
    assert texts.count("MSG #lobby bob before") == 1
    missed = [line for line in lines if " MSG #lobby bob missed " in line]
    assert [untagged(line) for line in missed] == [f"MSG #lobby bob missed {n}" for n in range(1, 4)]
    assert all(";history " in line for line in missed)  # printed as the server sent them
    assert texts.count("MSG #lobby carol back") == 1
    assert sum(line.startswith("HELLO 5 ") for line in lines) == 2  # a second connection, for a program to see
    assert not any(line.startswith("PONG") for line in lines)  # the client's own bookkeeping
    assert lines[-1] == "BYE quit"
    stderr_lines = err.read_text().splitlines()
    assert any(re.fullmatch(r"chatctl: reconnecting in \d+\.\d s \(attempt 1\)", line) for line in stderr_lines)


def test_the_scroll_back_view_pages_in_older_history(
    start_daemon: Callable[..., Daemon], terminals: list[Terminal], peer: Callable[[Any, str], Peer]
) -> None:
    daemon = start_daemon(history={"backlog": 3})
    bob = peer(daemon, "bob")
    for n in range(1, 31):
        bob.send(f"before {n}")
    bob.send("/ping said")
    bob.expect_eventually("PONG said")
    term = Terminal(connect_cmd(daemon.port, "--nick", "carol", "--ca", str(daemon.pki.ca)))
    terminals.append(term)
    term.wait_for_input_line("[#lobby] carol>")
    term.wait_for_line(r"<bob> before 30$")
    assert not any(line.endswith("<bob> before 27") for line in term.screen.all_lines())  # not in the backlog

    term.send("\x1b[5~")  # PageUp: the view opens, and it asks for what came before
    term.wait_for(lambda s: s.alternate, "the scroll-back view")
    term.wait_for_line(r"<bob> before 27$")  # fetched: the view shows the page above the backlog
    term.wait_for(lambda s: s.bottom_line().startswith(" #lobby  ") and "Esc" in s.bottom_line(), "its status line")
    term.send("\x1b[5~")
    term.send("\x1b[5~")
    term.wait_for_line(r"<bob> before 1$")
    term.wait_for(lambda s: "the beginning of the history" in s.bottom_line(), "the top")
    term.send("\x1b")  # Esc: back to the chat, as it was
    term.wait_for(lambda s: not s.alternate, "the chat again")
    term.wait_for_input_line("[#lobby] carol>")
    bob.send("after")
    term.wait_for_line(r"<bob> after$")
    assert counted(term.screen.all_lines())["before 27"] == 0  # the chat did not reprint anything
    term.send("\x04")
    assert term.wait_exit() == 0


def test_a_nickname_taken_meanwhile_is_asked_for_not_retried(
    start_daemon: Callable[..., Daemon], terminals: list[Terminal], peer: Callable[[Any, str], Peer]
) -> None:
    daemon = start_daemon()
    term = Terminal(connect_cmd(daemon.port, "--nick", "carol", "--ca", str(daemon.pki.ca)))
    terminals.append(term)
    term.wait_for_input_line("[#lobby] carol>")
    term.send("/join #rust\r")
    term.wait_for_input_line("[#rust] carol>")
    term.child.kill(signal.SIGSTOP)
    try:
        kill_and_restart(daemon)
        peer(daemon, "carol")  # someone else has the nickname now
    finally:
        term.child.kill(signal.SIGCONT)
    term.wait_for_line(r"error \(nick_taken\)")
    term.wait_for_line(r"-- carol was refused: your old connection may linger at the server$")
    term.wait_for_line(r"-- type carol again to retry, or choose another nickname$")
    term.wait_for_input_line("nickname:")
    term.send("carol2\r")
    term.wait_for_input_line("[#rust] carol2>")  # registered, the rooms and the current room back
    term.wait_for(lambda s: s.bottom_line() == " #lobby [#rust]", "the rooms in the status line")
    assert sum("nick_taken" in line for line in term.screen.all_lines()) == 1
    term.send("\x04")
    assert term.wait_exit() == 0


def test_script_mode_restores_many_rooms_under_the_default_flood_control(
    start_daemon: Callable[..., Daemon], peer: Callable[[Any, str], Peer], tmp_path: Path
) -> None:
    """12 rooms to join again and chatd's default limits (2 lines/s, a burst of 5,
    5 more held, then dropped): the client's own commands are paced, none is
    dropped, and plain text goes to the right room afterwards."""
    daemon = start_daemon(limits={"message_rate": 2, "message_burst": 5}, history={"flush_ms": 20})
    rooms = [f"#r{n}" for n in range(1, 12)]
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as stdout, err.open("w") as stderr:
        script = subprocess.Popen(
            connect_cmd(daemon.port, "--nick", "carol", "--ca", str(daemon.pki.ca), "--reconnect"),
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            text=True,
            cwd=REPO,
        )
    try:
        assert script.stdin is not None
        for room in rooms:  # one at a time: the test itself must not flood
            script.stdin.write(f"/join {room}\n")
            script.stdin.flush()
            wait_until(lambda: f"CURRENT {room}" in out.read_text(), TIMEOUT, f"{room} joined")
        script.send_signal(signal.SIGSTOP)
        try:
            kill_and_restart(daemon)
            bob = peer(daemon, "bob")
            bob.join("#r3")
            bob.send("missed in r3")
            bob.send("/ping sent")
            bob.expect_eventually("PONG sent")
        finally:
            script.send_signal(signal.SIGCONT)
        wait_until(lambda: err.read_text().count(": caught up, ") == 12, 60, "all 12 rooms back")
        script.stdin.write("back in r11\n")
        script.stdin.close()
        assert script.wait(30) == 0, err.read_text()
    finally:
        if script.poll() is None:
            script.kill()
            script.wait(TIMEOUT)
        if script.stdin is not None and not script.stdin.closed:
            script.stdin.close()
    texts = [untagged(line) for line in out.read_text().splitlines()]
    assert not [line for line in texts if line.startswith("ERR")], texts
    assert texts.count("MSG #r3 bob missed in r3") == 1
    assert texts.count("MSG #r11 carol back in r11") == 1  # the current room is #r11 again
    assert "chatctl: #r3: caught up, 1 missed event" in err.read_text()
