"""irctest's controller for chatd's IRC listener (`make irctest`, tests/irc/run.sh).

irctest (../shared/irctest, the conformance suite Ergo, InspIRCd and others
run in their CI) starts the server under test through a controller: this
module writes a chatd config into a temporary directory, with the IRC
listener on the port irctest gives and the server name its tests expect
(My.Little.Server), and starts `python -m chatd` from this checkout, in the
project's own virtualenv (`CHATD_PYTHON`, else .venv/bin/python).

chatd's IRC listener speaks TLS only, and irctest's test client plain TCP:
importing this module wraps each test client's socket in TLS (trusting the
CA made here), and reads a TLS close as the end of the stream, which is
what the tests expect of a closed connection.

The config turns off what only gets in the way of a test suite that sends
as fast as it can from one address (flood control's rate, the per-address
limits, the sign-in throttles) and makes argon2 cheap, as Ergo's controller
turns off its fake lag; nothing else differs from a default chatd.
Accounts (`registerUser`) are made as an operator makes them: through the
control socket, with a hash made by chatd's own code (tests/irc/add_account.py,
run in chatd's virtualenv: irctest's has no argon2).

This module runs in irctest's virtualenv, not chatd's: it imports irctest,
never chatd.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from irctest import client_mock
from irctest.basecontrollers import BaseServerController, DirectoryBasedController, ProcessStopped
from irctest.specifications import Capabilities

REPO = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("CHATD_PYTHON") or str(REPO / ".venv" / "bin" / "python")
SERVER_NAME = "My.Little.Server"
# Cheap argon2id: the tests are about SASL, not the cost (the hash is still argon2id).
ARGON2 = {"memory_kib": 256, "time_cost": 1, "parallelism": 1}
_PKI: list[Path] = []  # one CA and server certificate for the whole run (per process)


def _pki() -> Path:
    """Certificates made by chatctl once per process (chatctl gen-certs)."""
    if not _PKI:
        where = Path(tempfile.mkdtemp(prefix="chatd-irctest-pki-"))
        subprocess.run(
            [PYTHON, "-m", "chatctl", "gen-certs", "--out", str(where)],
            check=True,
            cwd=REPO,
            capture_output=True,
        )
        _PKI.append(where)
    return _PKI[0]


class _TLSConnection:
    """The test client's socket, in TLS: `recv` gives b"" once the server has
    closed (a close_notify, or TCP's end without one), as a plain socket would."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock

    def recv(self, size: int) -> bytes:
        try:
            return self._sock.recv(size)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _connect_tls(self: client_mock.ClientMock, hostname: str, port: int) -> None:
    raw = socket.create_connection((hostname, port), timeout=self.socket_timeout)
    raw.setsockopt(socket.SOL_TCP, socket.TCP_NODELAY, 1)  # irctest's buffering tests need it
    context = ssl.create_default_context(cafile=str(_pki() / "ca.crt"))
    context.check_hostname = False  # irctest connects to an address, not a name
    self.conn = _TLSConnection(context.wrap_socket(raw))
    self.ssl = True
    if self.show_io:
        print(f"{time.time():.3f} {self.name}: connects to server (TLS).")


client_mock.ClientMock.connect = _connect_tls  # type: ignore[method-assign]


class ChatdController(BaseServerController, DirectoryBasedController):
    software_name = "chatd"
    supported_sasl_mechanisms: ClassVar[set[str]] = {"PLAIN"}
    supports_sts = False
    capabilities = frozenset(
        {
            Capabilities.BATCH,
            Capabilities.ECHO_MESSAGE,
            Capabilities.EXTENDED_JOIN,
            Capabilities.LABELED_RESPONSE,
            Capabilities.MESSAGE_TAGS,
            Capabilities.MULTI_PREFIX,
            Capabilities.SERVER_TIME,
        }
    )
    isupport: ClassVar[dict[str, Any]] = {
        "CASEMAPPING": "ascii",
        "CHANTYPES": "#",
        "PREFIX": "(ov)@+",
        "MSGREFTYPES": "msgid",
    }

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: str | None,
        ssl: bool,
        run_services: bool,
        faketime: str | None = None,
        websocket_hostname: str | None = None,
        websocket_port: int | None = None,
    ) -> None:
        assert self.proc is None
        self.hostname, self.port = hostname, port
        self.create_config()
        assert self.directory is not None
        pki = _pki()
        _, chat_port = self.get_hostname_and_port()
        self.log_path = self.directory / "chatd.log"
        self.control_path = self.directory / "control.sock"
        config = {
            "server": {"host": "127.0.0.1", "port": chat_port, "name": "irctest"},
            "tls": {"cert": str(pki / "server.crt"), "key": str(pki / "server.key")},
            "limits": {"message_rate": 0, "max_clients_per_ip": 0, "connects_per_ip_per_minute": 0},
            "rooms": {"autojoin": [], "permanent": []},
            "history": {"path": str(self.directory / "chatd.db")},
            "web": {"enabled": False},
            "log": {"format": "json", "level": "info"},
            "control": {"socket": str(self.control_path)},
            "metrics": {"listen": None},
            "irc": {"listen": f"127.0.0.1:{port}", "server_name": SERVER_NAME},
            "accounts": {
                "argon2": ARGON2,
                "throttle": {"address_failures": 1_000_000, "account_failures": 1_000_000},
            },
        }
        path = self.directory / "chatd.yaml"
        path.write_text(json.dumps(config))  # JSON is YAML
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "chatd", "--config", str(path)],
                cwd=REPO,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_for_port(self) -> None:
        """Until chatd logs that its IRC listener is up (no probe connection,
        which a TLS listener would only count as a failed handshake)."""
        deadline = time.monotonic() + 60
        while not self.port_open:
            self.check_is_alive()
            if '"irc_listening"' in self.log_path.read_text(errors="replace"):
                self.port_open = True
                return
            if time.monotonic() > deadline:
                raise ProcessStopped(f"chatd did not start listening:\n{self.log_path.read_text()}")
            time.sleep(0.02)

    def wait_for_services(self) -> None:
        """Accounts are chatd's own (no services process): ready with the listener."""
        self.wait_for_port()

    def registerUser(self, case: Any, username: str, password: str | None = None) -> None:
        """An account, made through the control socket as `chatctl` makes one."""
        self.wait_for_port()
        subprocess.run(
            [
                PYTHON,
                str(REPO / "tests" / "irc" / "add_account.py"),
                str(self.control_path),
                username,
                str(ARGON2["memory_kib"]),
                str(ARGON2["time_cost"]),
            ],
            input=(password or "").encode(),
            check=True,
            cwd=REPO,
            timeout=60,
        )

    def kill(self) -> None:
        if self.proc is not None and self.directory is not None and os.environ.get("CHATD_IRCTEST_LOGS"):
            keep = Path(os.environ["CHATD_IRCTEST_LOGS"])
            keep.mkdir(parents=True, exist_ok=True)
            self.kill_proc()
            shutil.copy(self.log_path, keep / f"chatd-{self.port}.log")
        super().kill()


def get_irctest_controller_class() -> type[ChatdController]:
    return ChatdController


if __name__ == "__main__":
    sys.exit("irctest imports this module: see `make irctest`")
