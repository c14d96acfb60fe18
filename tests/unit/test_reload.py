"""chatd.reload: what a reload reads, what it keeps until a restart, what it
tells systemd, with a real config file, real certificates and a fake server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from structlog.testing import capture_logs

from chatd.config import load_config
from chatd.notify import Notifier
from chatd.reload import Reloader, Settings, read_settings
from chatd.tls import server_context
from chatd.transport.websocket import TextFrames
from tests.conftest import PKI


@dataclass
class FakeServer:
    """What a reload changes (chatd.reload.Reconfigurable), recording each change."""

    settings: Settings
    applied: list[Settings] = field(default_factory=list)

    def apply(self, settings: Settings) -> None:
        self.settings = settings
        self.applied.append(settings)


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # a successful reload configures logging


@pytest.fixture
def systemd(short_dir: Path) -> Iterator[tuple[socket.socket, Notifier]]:
    """A notification socket, as systemd's, and a Notifier that sends to it."""
    path = str(short_dir / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)
        yield sock, Notifier(path)


def received(sock: socket.socket) -> list[str]:
    """The first line of each notification sent so far (they are sent before reload returns)."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode().partition("\n")[0])
        except BlockingIOError:
            return messages


def write_config(path: Path, certs: PKI, **sections: dict[str, Any]) -> None:
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 7443},
        "tls": {"cert": str(certs.server_cert), "key": str(certs.server_key)},
        "log": {"format": "json", "level": "debug"},
        "control": {"socket": None},
        **sections,
    }
    path.write_text(yaml.safe_dump(config))


def start(path: Path) -> FakeServer:
    config = load_config(path)
    return FakeServer(read_settings(config, server_context(config.tls, path), TextFrames()))


def test_settings_read_at_start_carry_the_certificates_expiry(tmp_path: Path, certs: PKI) -> None:
    write_config(tmp_path / "chatd.yaml", certs, web={"enabled": False})
    settings = start(tmp_path / "chatd.yaml").settings
    assert settings.cert_expiry is not None and settings.cert_expiry > 0
    assert settings.site.allowed_origins == frozenset()


def test_a_reload_applies_new_limits_and_keeps_the_restart_keys(
    tmp_path: Path, certs: PKI, systemd: tuple[socket.socket, Notifier]
) -> None:
    sock, notifier = systemd
    path = tmp_path / "chatd.yaml"
    write_config(path, certs)
    server = start(path)
    before = server.settings
    write_config(
        path,
        certs,
        server={"host": "127.0.0.1", "port": 7444, "name": "renamed"},
        limits={"max_line_bytes": 1024},
    )
    reloader = Reloader(server, notifier)
    assert reloader.reload() == {"ok": True, "error": None, "restart_needed": ["server.port"]}
    assert server.applied == [server.settings]
    config = server.settings.config
    assert (config.server.port, config.server.name, config.limits.max_line_bytes) == (7443, "renamed", 1024)
    assert server.settings.tls_context is not before.tls_context  # the certificate is read again
    assert server.settings.site.frames is before.site.frames  # one for the server's whole life
    assert reloader.counts() == {"success": 1}
    assert received(sock) == ["RELOADING=1", "READY=1"]


def test_a_bad_file_changes_nothing(tmp_path: Path, certs: PKI, systemd: tuple[socket.socket, Notifier]) -> None:
    sock, notifier = systemd
    path = tmp_path / "chatd.yaml"
    write_config(path, certs)
    server = start(path)
    path.write_text(path.read_text() + "limits: {max_line_bytes: big}\n")
    reloader = Reloader(server, notifier)
    with capture_logs() as logs:
        result = reloader.reload()
    assert result["ok"] is False and result["restart_needed"] == []
    assert str(result["error"]).startswith(f"{path}: limits.max_line_bytes: ")
    assert [event["event"] for event in logs] == ["config_reload_failed"]
    assert server.applied == []
    assert reloader.counts() == {"failure": 1}
    assert received(sock) == ["RELOADING=1", "READY=1"]  # systemd is told the reload is over either way
