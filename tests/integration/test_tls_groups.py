"""Key-exchange groups (`tls.groups`, issue 15) against real TLS clients.

`openssl s_client`, socat, gnutls-cli and ncat run as subprocesses against a
real chatd on 127.0.0.1: each registers a nickname and sees its own message.
s_client's `-msg` trace shows every ClientHello it sends, so a second one is a
HelloRetryRequest, a round trip the default X25519-first list must not cost a
modern client.

The tools come from Debian packages (`.ci/run` installs them when it runs as
root); a test whose tool is missing is skipped and says how to install it.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import PKI, REPO, Daemon
from tests.support.chatclient import EVENT_TAGS

PACKAGES = {"openssl": "openssl", "socat": "socat", "gnutls-cli": "gnutls-bin", "ncat": "ncat"}


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed: apt-get install {PACKAGES[tool]} (.ci/run installs it when run as root)")
    return path


class Tool:
    """A command-line TLS client: lines go to its stdin through a pipe, and its
    stdout and stderr are read with deadlines."""

    def __init__(self, argv: list[str]) -> None:
        self.name = Path(argv[0]).name
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._received = b""

    @property
    def output(self) -> str:
        return self._received.decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Read until a line matches `pattern` (a regular expression, `^` and `$` per line)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.output, re.M)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no {pattern!r} within {timeout}s:\n{self.output}")
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                status = self.process.wait(timeout=5)
                raise AssertionError(f"{self.name} exited ({status}) before {pattern!r}:\n{self.output}")
            self._received += chunk
        return match

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def tools() -> Iterator[Callable[..., Tool]]:
    """Factory: `tools(argv...)` starts a client, stopped at teardown."""
    started: list[Tool] = []

    def start(*argv: str | Path) -> Tool:
        started.append(Tool([str(arg) for arg in argv]))
        return started[-1]

    yield start
    for tool in started:
        tool.close()


def _chat(tool: Tool, nick: str) -> None:
    """Register `nick` and see our own message come back."""
    tool.wait_for(r"^HELLO 5 chatd \S+\r?\nACCOUNTS .*\r?\nNICK\r?$")
    tool.send(nick)
    tool.wait_for(rf"^WELCOME {nick} ")
    tool.wait_for(r"^HISTORY #lobby \d+ (more|end)\r?\nCURRENT #lobby\r?$")
    tool.send("hello")
    tool.wait_for(rf"^{EVENT_TAGS} MSG #lobby {nick} hello\r?$")


# -- openssl s_client -----------------------------------------------------------------------


def _s_client(daemon: Daemon, *options: str | Path) -> list[str | Path]:
    # -ign_eof: stay connected after stdin's last line until the server answers
    # (and read stdin as plain lines, never as s_client's commands).
    return [
        _require("openssl"), "s_client", "-connect", f"127.0.0.1:{daemon.port}",
        "-servername", "localhost", "-verify_hostname", "localhost", "-verify_return_error",
        "-CAfile", daemon.pki.ca, "-ign_eof", "-msg", *options,
    ]  # fmt: skip


def _client_hellos(tool: Tool) -> int:
    """ClientHellos the client sent: 2 means the server asked for a HelloRetryRequest."""
    return len(re.findall(r"^>>> .*, ClientHello$", tool.output, re.M))


def _negotiated(tool: Tool) -> tuple[str, str]:
    """(TLS version, key-exchange group) as s_client reports them."""
    version = tool.wait_for(r"^New, (TLSv1\.[23]), Cipher is ").group(1)
    group = tool.wait_for(r"^Server Temp Key: (?:ECDH, )?(\w+), ").group(1)
    return version, group


@pytest.mark.parametrize(("offered", "group"), [("X25519", "X25519"), ("P-256", "prime256v1"), ("P-384", "secp384r1")])
def test_tls13_client_offering_one_group(daemon: Daemon, tools: Callable[..., Tool], offered: str, group: str) -> None:
    client = tools(*_s_client(daemon, "-tls1_3", "-groups", offered))
    _chat(client, "alice")
    assert _negotiated(client) == ("TLSv1.3", group)
    assert _client_hellos(client) == 1  # its only share was taken as sent


# In TLS 1.2 a client's groups also bound the curve of an ECDSA server certificate
# (RFC 8422; RFC 8446, 4.2.7 recalls it), and chatctl's are P-256: a TLS 1.2 client
# that lists only X25519 or only P-384 cannot use it, whatever the server offers.
# Among the groups both sides list, the server takes the first of tls.groups.
@pytest.mark.parametrize(
    ("offered", "group"),
    [("X25519:P-256", "X25519"), ("P-256", "prime256v1"), ("P-384:P-256", "prime256v1")],
)
def test_tls12_server_takes_its_first_group_the_client_lists(
    daemon: Daemon, tools: Callable[..., Tool], offered: str, group: str
) -> None:
    client = tools(*_s_client(daemon, "-tls1_2", "-groups", offered))
    _chat(client, "alice")
    assert _negotiated(client) == ("TLSv1.2", group)


def test_tls12_p384_where_the_operator_prefers_it(
    start_daemon: Callable[..., Daemon], tools: Callable[..., Tool]
) -> None:
    daemon = start_daemon(tls={"groups": ["secp384r1", "prime256v1", "X25519"]})
    client = tools(*_s_client(daemon, "-tls1_2", "-groups", "P-384:P-256"))
    _chat(client, "alice")
    assert _negotiated(client) == ("TLSv1.2", "secp384r1")


def test_s_client_default_needs_no_hello_retry(daemon: Daemon, tools: Callable[..., Tool]) -> None:
    # OpenSSL 3 offers X25519 first and sends its share: X25519 must stay first and be
    # answered at once, or every modern client pays a round trip per connect.
    client = tools(*_s_client(daemon))
    _chat(client, "alice")
    assert _negotiated(client) == ("TLSv1.3", "X25519")
    assert _client_hellos(client) == 1


def test_s_client_with_an_unlisted_first_share_gets_one_hello_retry(daemon: Daemon, tools: Callable[..., Tool]) -> None:
    # A P-256-only client sends a P-256 share and needs no retry (the test above);
    # only a client whose share is for a group the server lacks is asked again.
    client = tools(*_s_client(daemon, "-groups", "X448:P-256"))
    _chat(client, "alice")
    assert _negotiated(client) == ("TLSv1.3", "prime256v1")
    assert _client_hellos(client) == 2


# TLS 1.3 finds no key share to use; TLS 1.2, whose suites are all ECDHE, no cipher.
@pytest.mark.parametrize(("version", "error"), [("-tls1_3", "NO_SUITABLE_KEY_SHARE"), ("-tls1_2", "NO_SHARED_CIPHER")])
def test_a_client_offering_only_an_unlisted_group_is_refused(
    daemon: Daemon, tools: Callable[..., Tool], version: str, error: str
) -> None:
    client = tools(*_s_client(daemon, version, "-groups", "X448"))
    client.wait_for(r"alert handshake failure")
    assert client.process.wait(timeout=5) != 0
    assert daemon.wait_for_event("tls_handshake_failed")["error"] == error
    assert not daemon.find_events("connect")
    _chat(tools(*_s_client(daemon)), "bob")  # and the next client is served


def test_tls12_ecdsa_client_certificate_at_the_default_groups(
    start_daemon: Callable[..., Daemon], certs: PKI, tools: Callable[..., Tool]
) -> None:
    # TLS 1.2 wants the client certificate's curve (P-256, as chatctl makes them)
    # among the server's groups: prime256v1 is in the default list.
    daemon = start_daemon(tls={"client_ca": str(certs.ca), "client_auth": "required"})
    cert, key = certs.client("alice")
    client = tools(*_s_client(daemon, "-tls1_2", "-cert", cert, "-key", key))
    _chat(client, "alice")
    assert _negotiated(client) == ("TLSv1.2", "X25519")
    assert not daemon.find_events("tls_handshake_failed")


def test_tls12_ecdsa_client_certificate_needs_its_curve_in_the_list(
    start_daemon: Callable[..., Daemon], certs: PKI, tools: Callable[..., Tool]
) -> None:
    # Why the list matters for mTLS: without prime256v1, the same client is refused.
    daemon = start_daemon(tls={"client_ca": str(certs.ca), "client_auth": "required", "groups": ["X25519"]})
    cert, key = certs.client("alice")
    client = tools(*_s_client(daemon, "-tls1_2", "-cert", cert, "-key", key))
    client.process.wait(timeout=5)
    assert daemon.wait_for_event("tls_handshake_failed")["error"] == "WRONG_CURVE"
    assert not daemon.find_events("connect")


# -- other clients --------------------------------------------------------------------------


def test_socat(daemon: Daemon, tools: Callable[..., Tool]) -> None:
    # socat 1.7.4 (Debian 12) offers P-256 only: refused when chatd offered X25519 alone.
    socat = _require("socat")
    client = tools(socat, "-", f"OPENSSL:127.0.0.1:{daemon.port},cafile={daemon.pki.ca},verify=1")
    _chat(client, "alice")


def test_gnutls_cli(daemon: Daemon, tools: Callable[..., Tool]) -> None:
    gnutls_cli = _require("gnutls-cli")
    client = tools(gnutls_cli, f"--x509cafile={daemon.pki.ca}", f"--port={daemon.port}", "127.0.0.1")
    _chat(client, "alice")


def test_ncat(daemon: Daemon, tools: Callable[..., Tool]) -> None:
    ncat = _require("ncat")
    # ncat 7.93 checks the certificate against the host name it is given but does not
    # match IP addresses, so it gets localhost, and -4 keeps it on 127.0.0.1.
    client = tools(ncat, "-4", "--ssl", "--ssl-verify", "--ssl-trustfile", daemon.pki.ca, "localhost", str(daemon.port))
    _chat(client, "alice")


# -- configuration --------------------------------------------------------------------------


def test_groups_reload_with_sighup(start_daemon: Callable[..., Daemon], tools: Callable[..., Tool]) -> None:
    daemon = start_daemon(tls={"groups": ["X25519"]})
    tools(*_s_client(daemon, "-groups", "P-256")).wait_for(r"alert handshake failure")
    daemon.config["tls"]["groups"] = ["X448"]
    daemon.write_config()
    daemon.signal(signal.SIGHUP)
    failed = daemon.wait_for_event("config_reload_failed")
    assert ": tls.groups: unknown group 'X448'" in failed["error"]
    daemon.config["tls"]["groups"] = ["X25519", "prime256v1"]
    daemon.write_config()
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_event("config_reloaded")
    client = tools(*_s_client(daemon, "-groups", "P-256"))
    _chat(client, "alice")
    assert _negotiated(client) == ("TLSv1.3", "prime256v1")


def _write_config(tmp_path: Path, certs: PKI, groups: list[str]) -> Path:
    path = tmp_path / "chatd.yaml"
    tls = {"cert": str(certs.server_cert), "key": str(certs.server_key), "groups": groups}
    path.write_text(yaml.safe_dump({"server": {"port": 0}, "tls": tls, "control": {"socket": None}}))
    return path


def _run_chatd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=30, cwd=REPO, stdin=subprocess.DEVNULL
    )


def test_an_unknown_group_stops_the_start(tmp_path: Path, certs: PKI) -> None:
    path = _write_config(tmp_path, certs, ["X25519", "X448"])
    result = _run_chatd("-m", "chatd", "--config", str(path))
    assert result.returncode == 78
    assert result.stderr == (
        f"chatd: config error: {path}: tls.groups: unknown group 'X448'; must be a list of one "
        "or more of X25519, prime256v1, secp384r1, each at most once (got ['X25519', 'X448'])\n"
    )


def test_groups_that_did_not_take_effect_stop_the_start(tmp_path: Path, certs: PKI) -> None:
    # As if the ctypes call were a no-op on some build: OpenSSL's default list stays,
    # and chatd must refuse to start rather than serve it.
    path = _write_config(tmp_path, certs, ["X25519", "prime256v1", "secp384r1"])
    no_op = (
        "import sys, chatd.cli, chatd.tls\n"
        "chatd.tls.set_groups = lambda context, groups: None\n"
        "sys.exit(chatd.cli.main(sys.argv[1:]))\n"
    )
    result = _run_chatd("-c", no_op, "--config", str(path))
    assert result.returncode == 78
    assert result.stderr == (
        f"chatd: config error: {path}: tls.groups: OpenSSL did not take X25519, prime256v1, "
        "secp384r1: a client offering only X448 was accepted\n"
    )
