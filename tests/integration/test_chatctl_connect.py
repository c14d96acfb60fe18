"""`chatctl connect` end to end: script mode, the error cases with their exit
statuses, and the interactive client in a pseudo-terminal.

The real daemon comes from tests/conftest.py; the failure modes a real chatd
cannot produce (not TLS, a silent port, a wrong host name, a close without
BYE) come from small servers started here.
"""

from __future__ import annotations

import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatctl.certs import write_pki
from chatctl.client import DEFAULT_PORT, parse_address
from chatctl.connection import Address
from tests.conftest import REPO, make_pki
from tests.support.chatctl import TAGS, TIMEOUT, Peer, ScriptClient, connect_cmd, untagged
from tests.support.terminal import Terminal


def run_connect(
    port: int, *args: str, stdin: str = "", host: str = "127.0.0.1", timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        connect_cmd(port, *args, host=host),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def assert_one_sentence(stderr: str, *words: str) -> None:
    """Errors are one line, prefixed `chatctl: `, without a traceback."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("chatctl: "), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], stderr


class FakeServer:
    """A listener on 127.0.0.1 that serves each connection with `handle(sock)` in a thread."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handle = handle
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, name="fake-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return  # closed by the test
        with conn:
            conn.settimeout(TIMEOUT)
            try:
                self.handle(conn)
            except OSError:
                pass  # the client went away: that's what these tests provoke

    def close(self) -> None:
        self.listener.close()
        self.thread.join(TIMEOUT)


@pytest.fixture
def fake_server() -> Iterator[Callable[[Callable[[socket.socket], None]], FakeServer]]:
    servers: list[FakeServer] = []

    def start(handle: Callable[[socket.socket], None]) -> FakeServer:
        server = FakeServer(handle)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def tls_server_context(pki_dir: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki_dir / "server.crt", pki_dir / "server.key")
    return context


def v1_server(tmp_path: Path, fake_server: Any, after_nick: bytes) -> FakeServer:
    """A protocol v1 server: `NICK` first, no `HELLO`, no rooms."""
    write_pki(tmp_path)
    context = tls_server_context(tmp_path)

    def read_until(tls: ssl.SSLSocket, data: bytes, marker: bytes) -> bytes:
        while marker not in data:
            chunk = tls.recv(4096)
            if not chunk:
                raise ConnectionError("the client went away")
            data += chunk
        return data

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"NICK\n")
            data = read_until(tls, b"", b"\n")
            nick = data.split(b"\n")[0].strip()
            tls.sendall(after_nick.replace(b"{nick}", nick))
            read_until(tls, data, b"/quit")
            tls.sendall(b"BYE quit\n")

    return fake_server(handle)


# -- HOST:PORT ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chat.example.org:7000", Address("chat.example.org", 7000)),
        ("chat.example.org", Address("chat.example.org", DEFAULT_PORT)),
        ("127.0.0.1:1", Address("127.0.0.1", 1)),
        ("[::1]:7443", Address("::1", 7443)),
        ("[::1]", Address("::1", DEFAULT_PORT)),
        ("::1", Address("::1", DEFAULT_PORT)),
        ("[fe80::1%eth0]:9", Address("fe80::1%eth0", 9)),
    ],
)
def test_parse_address(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text", ["", ":7443", "host:", "host:0", "host:65536", "host:http", "[::1", "[::1]x", "[nope]:1", "a:b:c"]
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_address_display_brackets_ipv6() -> None:
    assert str(Address("::1", 7443)) == "[::1]:7443"
    assert str(Address("localhost", 7443)) == "localhost:7443"


def test_bad_address_is_a_usage_error() -> None:
    result = run_connect(65536, "--nick", "alice")
    assert result.returncode == 2
    assert "the port must be a number" in result.stderr


def test_client_module_does_not_import_prompt_toolkit() -> None:
    """Every chatctl subcommand imports chatctl.client to build its parser."""
    code = "import sys, chatctl.client; assert 'prompt_toolkit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=30)


def test_help_documents_exit_statuses() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatctl", "connect", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 0
    for status in ("0", "2", "3", "4", "5", "6", "7"):
        assert re.search(rf"^ +{status}  ", result.stdout, re.MULTILINE), result.stdout


# -- script mode against the real daemon -------------------------------------------------------


def test_script_mode_prints_the_echo(daemon: Any) -> None:
    result = run_connect(daemon.port, "--nick", "alice", "--ca", str(daemon.pki.ca), stdin="hello\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("HELLO 5 chatd ")
    assert lines[1] == "ACCOUNTS registration=open guests=yes"  # a v4 server's, printed as it came
    del lines[1]
    assert lines[1] == "NICK"
    assert lines[2].startswith("WELCOME alice ")
    assert lines[3:7] == ["JOIN #lobby alice", "USERS #lobby alice", "HISTORY #lobby 0 end", "CURRENT #lobby"]
    # Printed as the server sent it: with its tags.
    echo = next(line for line in lines if line.endswith(" MSG #lobby alice hello"))
    assert TAGS.match(echo) and untagged(echo) == "MSG #lobby alice hello"
    assert lines[-1] == "BYE quit"


def test_script_mode_sends_a_last_line_without_newline(daemon: Any) -> None:
    result = run_connect(daemon.port, "--nick", "alice", "--ca", str(daemon.pki.ca), stdin="one\r\n\n/me two")
    assert result.returncode == 0, result.stderr
    lines = [untagged(line) for line in result.stdout.splitlines()]
    assert "MSG #lobby alice one" in lines
    assert "ACTION #lobby alice two" in lines


def test_script_mode_sends_a_large_input_in_order(daemon: Any) -> None:
    """Several TLS records' worth, all echoed in order. (Kept under chatd's default
    send_queue_bytes: chatd echoes everything it read in one turn as one block.)"""
    lines = [f"line {n:05d} " + "x" * 200 for n in range(300)]
    result = run_connect(
        daemon.port,
        "--nick",
        "alice",
        "--ca",
        str(daemon.pki.ca),
        stdin="\n".join(lines) + "\n",
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    echoed = [
        untagged(line).removeprefix("MSG #lobby alice ")
        for line in result.stdout.splitlines()
        if untagged(line).startswith("MSG ")
    ]
    assert echoed == lines


def test_script_mode_by_ipv4_and_localhost_names(daemon: Any) -> None:
    for host in ("127.0.0.1", "localhost"):
        result = run_connect(daemon.port, "--nick", "alice", "--ca", str(daemon.pki.ca), stdin="hi\n", host=host)
        assert result.returncode == 0, (host, result.stderr)
        assert "MSG #lobby alice hi" in [untagged(line) for line in result.stdout.splitlines()]


def test_two_script_clients_see_each_other(daemon: Any, script_clients: list[ScriptClient]) -> None:
    alice = ScriptClient(daemon.port, daemon.pki.ca, "alice")
    script_clients.append(alice)
    alice.expect("WELCOME alice ")
    bob = ScriptClient(daemon.port, daemon.pki.ca, "bob")
    script_clients.append(bob)
    bob.expect("WELCOME bob ")
    alice.expect("JOIN #lobby bob")

    alice.send("hi bob")
    assert untagged(bob.expect("@")) == "MSG #lobby alice hi bob"
    assert untagged(alice.expect("@")) == "MSG #lobby alice hi bob"
    bob.send("/me waves at alice")
    assert untagged(alice.expect("@")) == "ACTION #lobby bob waves at alice"
    bob.send("/msg alice psst")
    assert untagged(alice.expect("@")) == "DM bob alice psst"

    assert bob.finish() == (0, "")
    bob.expect("BYE quit")
    assert alice.expect("LEAVE bob") == "LEAVE bob quit"
    assert alice.finish() == (0, "")


def test_script_mode_against_a_v1_server(tmp_path: Path, fake_server: Any) -> None:
    server = v1_server(tmp_path, fake_server, b"WELCOME {nick} hi\nJOIN {nick}\nUSERS bob {nick}\n")
    result = run_connect(server.port, "--nick", "alice", "--ca", str(tmp_path / "ca.crt"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["NICK", "WELCOME alice hi", "JOIN alice", "USERS bob alice", "BYE quit"]


def test_script_mode_requires_a_nick(daemon: Any) -> None:
    result = run_connect(daemon.port, "--ca", str(daemon.pki.ca))
    assert result.returncode == 2
    assert_one_sentence(result.stderr, "--nick is required")


def test_nick_with_spaces_is_a_usage_error(daemon: Any) -> None:
    result = run_connect(daemon.port, "--nick", "bob\n/quit", "--ca", str(daemon.pki.ca))
    assert result.returncode == 2
    assert_one_sentence(result.stderr, "--nick")


def test_cert_without_key_is_a_usage_error(daemon: Any) -> None:
    cert, _key = daemon.pki.client("alice")
    result = run_connect(daemon.port, "--nick", "alice", "--ca", str(daemon.pki.ca), "--cert", str(cert))
    assert result.returncode == 2
    assert_one_sentence(result.stderr, "--cert and --key")


def test_unreadable_ca_is_a_usage_error(daemon: Any, tmp_path: Path) -> None:
    result = run_connect(daemon.port, "--nick", "alice", "--ca", str(tmp_path / "missing.crt"))
    assert result.returncode == 2
    assert_one_sentence(result.stderr, "--ca")


# -- the error cases and their exit statuses ---------------------------------------------------


def test_refused_connection_exits_3(certs: Any) -> None:
    # A bound socket that does not listen: connecting to it is refused at once.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        result = run_connect(port, "--nick", "alice", "--ca", str(certs.ca))
    assert result.returncode == 3
    assert_one_sentence(result.stderr, "refused", f"127.0.0.1:{port}")


def test_unknown_host_exits_3(certs: Any) -> None:
    result = run_connect(7443, "--nick", "alice", "--ca", str(certs.ca), host="no-such-host.invalid")
    assert result.returncode == 3
    assert_one_sentence(result.stderr, "cannot resolve")


def test_wrong_ca_exits_4(daemon: Any, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other-pki", clients=())
    result = run_connect(daemon.port, "--nick", "alice", "--ca", str(other.ca))
    assert result.returncode == 4
    assert_one_sentence(result.stderr, "could not be verified", "--ca")


def test_wrong_host_name_exits_4(tmp_path: Path, fake_server: Any) -> None:
    write_pki(tmp_path, hosts=("chat.example.org",))
    context = tls_server_context(tmp_path)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True):
            pass  # the client gives up during the handshake

    server = fake_server(handle)
    result = run_connect(server.port, "--nick", "alice", "--ca", str(tmp_path / "ca.crt"))
    assert result.returncode == 4
    assert_one_sentence(result.stderr, "could not be verified", "host name")


def test_not_a_tls_server_exits_5(certs: Any, fake_server: Any) -> None:
    def handle(conn: socket.socket) -> None:
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.recv(4096)

    server = fake_server(handle)
    result = run_connect(server.port, "--nick", "alice", "--ca", str(certs.ca))
    assert result.returncode == 5
    assert_one_sentence(result.stderr, "chatd port")


def test_silent_server_exits_5_after_the_timeout(certs: Any, fake_server: Any) -> None:
    stop = threading.Event()
    server = fake_server(lambda conn: stop.wait(TIMEOUT))
    try:
        result = run_connect(server.port, "--nick", "alice", "--ca", str(certs.ca), "--timeout", "0.5")
    finally:
        stop.set()
    assert result.returncode == 5
    assert_one_sentence(result.stderr, "TLS handshake within 0.5 s")


def test_nick_taken_exits_6(daemon: Any, peer: Callable[[Any, str], Peer]) -> None:
    peer(daemon, "alice")
    result = run_connect(daemon.port, "--nick", "ALICE", "--ca", str(daemon.pki.ca), stdin="hi\n")
    assert result.returncode == 6
    assert_one_sentence(result.stderr, "'ALICE' is taken", "--nick")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("HELLO 5 ") and lines[1].startswith("ACCOUNTS ")
    del lines[1]
    assert lines[1:4] == ["NICK", lines[2], "NICK"]
    assert lines[2].startswith("ERR nick_taken ")
    assert "MSG" not in result.stdout  # the input was never sent


def test_nick_invalid_exits_6(daemon: Any) -> None:
    result = run_connect(daemon.port, "--nick", "x" * 40, "--ca", str(daemon.pki.ca))
    assert result.returncode == 6
    assert_one_sentence(result.stderr, "was refused")


def test_server_shutdown_exits_7(start_daemon: Any, script_clients: list[ScriptClient]) -> None:
    chatd = start_daemon()
    alice = ScriptClient(chatd.port, chatd.pki.ca, "alice")
    script_clients.append(alice)
    alice.expect("WELCOME alice ")
    chatd.signal(signal.SIGTERM)
    assert alice.expect("BYE") == "BYE shutdown"
    status, stderr = alice.wait()
    assert status == 7
    assert_one_sentence(stderr, "shutting down")


def test_close_without_bye_exits_7(tmp_path: Path, fake_server: Any) -> None:
    write_pki(tmp_path)
    context = tls_server_context(tmp_path)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"HELLO 2 fake\nNICK\n")
            tls.recv(4096)
            tls.sendall(b"WELCOME alice hi\n")
            # ...and then the server goes away without BYE.

    server = fake_server(handle)
    result = run_connect(server.port, "--nick", "alice", "--ca", str(tmp_path / "ca.crt"), stdin="")
    assert result.returncode == 7
    assert_one_sentence(result.stderr, "without saying why")


def test_kicked_exits_7_with_the_reason(tmp_path: Path, fake_server: Any) -> None:
    write_pki(tmp_path)
    context = tls_server_context(tmp_path)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"HELLO 2 fake\nNICK\n")
            tls.recv(4096)
            tls.sendall(b"WELCOME alice hi\nBYE kicked spamming links\n")
            tls.recv(4096)

    server = fake_server(handle)
    client = ScriptClient(server.port, tmp_path / "ca.crt", "alice")
    try:
        assert client.expect("BYE") == "BYE kicked spamming links"
        status, stderr = client.wait()
    finally:
        client.kill()
    assert status == 7
    assert_one_sentence(stderr, "an operator removed you (spamming links)")


def test_client_certificate_required_exits_4(start_daemon: Any, certs: Any) -> None:
    chatd = start_daemon(tls={"client_auth": "required", "client_ca": str(certs.ca)})
    result = run_connect(chatd.port, "--nick", "alice", "--ca", str(certs.ca), stdin="hi\n")
    assert result.returncode == 4, result.stderr
    assert_one_sentence(result.stderr, "client certificate")

    cert, key = certs.client("alice")
    result = run_connect(
        chatd.port,
        "--nick",
        "alice",
        "--ca",
        str(certs.ca),
        "--cert",
        str(cert),
        "--key",
        str(key),
        stdin="hi\n",
    )
    assert result.returncode == 0, result.stderr
    assert "MSG #lobby alice hi" in [untagged(line) for line in result.stdout.splitlines()]


def test_raw_output_to_a_pipe_is_verbatim(tmp_path: Path, fake_server: Any) -> None:
    """Script mode prints server lines as they are (a program may want them); only a
    terminal gets them sanitised."""
    write_pki(tmp_path)
    context = tls_server_context(tmp_path)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"HELLO 2 fake\nNICK\n")
            tls.recv(4096)
            tls.sendall(b"WELCOME alice hi\nINFO tab\there\n")
            tls.recv(4096)  # /quit
            tls.sendall(b"BYE quit\n")

    server = fake_server(handle)
    result = run_connect(server.port, "--nick", "alice", "--ca", str(tmp_path / "ca.crt"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["HELLO 2 fake", "NICK", "WELCOME alice hi", "INFO tab\there", "BYE quit"]


# -- interactive mode in a pseudo-terminal -----------------------------------------------------


def test_interactive_typing_survives_incoming_messages(
    daemon: Any, terminals: list[Terminal], peer: Callable[[Any, str], Peer]
) -> None:
    term = Terminal(connect_cmd(daemon.port, "--nick", "carol", "--ca", str(daemon.pki.ca)))
    terminals.append(term)
    term.wait_for_line(r"^\d\d:\d\d -!- Welcome to chatd, carol!")
    term.wait_for_input_line("[#lobby] carol>")
    bob = peer(daemon, "bob")
    term.wait_for_line(r"^\d\d:\d\d -- bob joined$")

    term.send("hello wo")
    term.wait_for_input_line("[#lobby] carol> hello wo")
    bob.send("interrupting you, carol")
    term.wait_for_line(r"^\d\d:\d\d <bob> interrupting you, carol$")
    # The message went above the input line, which still holds the half-typed text.
    term.wait_for_input_line("[#lobby] carol> hello wo")
    assert term.screen.line_above_cursor().endswith("<bob> interrupting you, carol")

    term.send("rld\r")
    assert bob.expect_eventually("MSG #lobby carol") == "MSG #lobby carol hello world"
    term.wait_for_line(r"^\d\d:\d\d <carol> hello world$")
    term.wait_for_input_line("[#lobby] carol>")

    bob.send("/msg carol psst")
    term.wait_for_line(r"^\d\d:\d\d \[DM bob → you\] psst$")
    term.send("/help\r")
    term.wait_for_line(r"Ctrl-D")
    term.wait_for_line(r"-!- /help  this list$")  # the server's INFO list follows, this line last

    term.send("\x04")  # Ctrl-D on the empty input line
    assert term.wait_exit() == 0
    assert bob.expect_eventually("LEAVE carol") == "LEAVE carol quit"


def test_interactive_asks_again_for_a_taken_nick(
    daemon: Any, terminals: list[Terminal], peer: Callable[[Any, str], Peer]
) -> None:
    peer(daemon, "bob")
    term = Terminal(connect_cmd(daemon.port, "--ca", str(daemon.pki.ca)))
    terminals.append(term)
    term.wait_for_line(r"choose a nickname")
    term.wait_for_input_line("nickname:")
    term.send("Bob\r")
    term.wait_for_line(r"error \(nick_taken\)")
    term.wait_for_input_line("nickname:")
    term.send("dave\r")
    term.wait_for_line(r"Welcome to chatd, dave!")
    term.wait_for_input_line("[#lobby] dave>")
    term.send("\x03")  # Ctrl-C leaves cleanly too
    assert term.wait_exit() == 0
    assert daemon.wait_for_event("disconnect", nick="dave")["reason"] == "quit"


def test_interactive_reports_a_server_shutdown(start_daemon: Any, terminals: list[Terminal]) -> None:
    chatd = start_daemon()
    term = Terminal(connect_cmd(chatd.port, "--nick", "carol", "--ca", str(chatd.pki.ca), "--no-reconnect"))
    terminals.append(term)
    term.wait_for_input_line("[#lobby] carol>")
    term.send("unsent")
    chatd.signal(signal.SIGTERM)
    assert term.wait_exit() == 7
    term.wait_for_line(r"-- disconnected: the server is shutting down")
    term.wait_for_line(r"^chatctl: the server closed the connection: the server is shutting down")


def test_interactive_reconnects_after_a_shutdown_until_ctrl_c(start_daemon: Any, terminals: list[Terminal]) -> None:
    chatd = start_daemon()
    term = Terminal(connect_cmd(chatd.port, "--nick", "carol", "--ca", str(chatd.pki.ca)))
    terminals.append(term)
    term.wait_for_input_line("[#lobby] carol>")
    chatd.signal(signal.SIGTERM)
    term.wait_for_line(r"-- disconnected: the server is shutting down")
    term.wait_for_line(r"-- connection lost: the server is shutting down$")
    term.wait_for_line(r"-- reconnecting in \d+\.\d s \(attempt 1\); Ctrl-C to stop$")
    term.wait_for_line(r"-- could not reconnect: .* refused the connection")  # it is gone for good
    term.wait_for_line(r"-- reconnecting in \d+\.\d s \(attempt 2\)")
    term.wait_for(lambda s: "not connected: reconnecting" in s.bottom_line(), "the status line says so")
    term.send("hello?\r")  # not sent, and kept in the input line for later
    term.wait_for_line(r"-- not connected: the line was not sent")
    term.wait_for_input_line("carol> hello?")
    term.send("\x03")  # Ctrl-C stops it
    assert term.wait_exit() == 7
    last = term.screen.lines()[-1]
    assert last == f"chatctl: the connection to 127.0.0.1:{chatd.port} was lost; you stopped reconnecting"


def test_interactive_rooms_status_line_switching_and_completion(
    daemon: Any, terminals: list[Terminal], peer: Callable[[Any, str], Peer]
) -> None:
    term = Terminal(connect_cmd(daemon.port, "--nick", "carol", "--ca", str(daemon.pki.ca)))
    terminals.append(term)
    term.wait_for_input_line("[#lobby] carol>")
    term.wait_for(lambda s: s.bottom_line() == " [#lobby]", "the status line")
    term.send("/join #rust\r")
    term.wait_for_input_line("[#rust] carol>")
    term.wait_for(lambda s: s.bottom_line() == " #lobby [#rust]", "#rust in the status line")
    term.send("\x10")  # Ctrl-P: back to the previous room
    term.wait_for_input_line("[#lobby] carol>")
    term.wait_for(lambda s: s.bottom_line() == " [#lobby] #rust", "#lobby current again")

    bob = peer(daemon, "bob")
    bob.join("#rust")  # bob's current room is #rust now, carol's #lobby
    term.wait_for_line(r"^\d\d:\d\d #rust -- bob joined$")
    bob.send("anyone into lifetimes?")
    bob.send("carol?")
    bob.send("/msg #lobby and hello lobby")
    # Lines from #rust, not the current room, carry its name; #lobby's do not.
    term.wait_for_line(r"^\d\d:\d\d #rust <bob> anyone into lifetimes\?$")
    term.wait_for_line(r"^\d\d:\d\d #rust <bob> carol\?$")
    term.wait_for_line(r"^\d\d:\d\d <bob> and hello lobby$")
    term.wait_for(lambda s: s.bottom_line() == " [#lobby] #rust(2)", "two unread lines in #rust")

    term.send("\x0e")  # Ctrl-N: the next room with unread lines
    term.wait_for_input_line("[#rust] carol>")
    term.wait_for(lambda s: s.bottom_line() == " #lobby [#rust]", "#rust current, nothing unread")
    term.wait_for_line(r"^\d\d:\d\d -- now talking in #rust$")
    bob.send("welcome")
    term.wait_for_line(r"^\d\d:\d\d <bob> welcome$")  # #rust is current: no name

    # Tab completes a room name and a nickname.
    term.send("/join #lo\t")
    term.wait_for_input_line("[#rust] carol> /join #lobby")
    term.send("\x15")  # Ctrl-U empties the input line
    term.wait_for_input_line("[#rust] carol>")
    term.send("bo\t")
    term.wait_for_input_line("[#rust] carol> bob:")
    term.send("thanks\r")
    assert bob.expect_eventually("MSG #rust carol") == "MSG #rust carol bob: thanks"

    term.send("\x1b[1;3D")  # Alt-Left, as xterm sends it: the previous room
    term.wait_for_input_line("[#lobby] carol>")
    term.wait_for(lambda s: s.bottom_line() == " [#lobby] #rust", "#lobby current")
    term.send("\x04")
    assert term.wait_exit() == 0


def test_interactive_with_one_room_says_there_is_no_other(daemon: Any, terminals: list[Terminal]) -> None:
    term = Terminal(connect_cmd(daemon.port, "--nick", "carol", "--ca", str(daemon.pki.ca)))
    terminals.append(term)
    term.wait_for_input_line("[#lobby] carol>")
    term.send("\x0e")
    term.wait_for_line(r"-- you are in no other room; /join #room to join one$")
    term.wait_for_input_line("[#lobby] carol>")
    term.send("\x04")
    assert term.wait_exit() == 0


def test_interactive_against_a_v1_server(tmp_path: Path, fake_server: Any, terminals: list[Terminal]) -> None:
    server = v1_server(tmp_path, fake_server, b"WELCOME {nick} hi\nUSERS bob {nick}\nMSG bob hello {nick}\n")
    term = Terminal(connect_cmd(server.port, "--nick", "carol", "--ca", str(tmp_path / "ca.crt")))
    terminals.append(term)
    term.wait_for_line(r"^\d\d:\d\d -- 2 online: bob, carol$")
    term.wait_for_line(r"^\d\d:\d\d <bob> hello carol$")
    term.wait_for_input_line("carol>")  # no room in the prompt
    term.wait_for(lambda s: "protocol v1" in s.bottom_line(), "the status line")
    term.send("\x04")
    assert term.wait_exit() == 0
