"""Fixtures for more than one integration test module (tests/conftest.py has
those for every directory): the other users and terminals of chatctl's tests,
a socket to stand in for systemd's notify socket, and a chatd with its IRC
listener on."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon
from tests.support.chatclient import ChatClient
from tests.support.chatctl import Peer
from tests.support.terminal import Terminal
from tests.support.wsclient import WebSocketClient


@pytest.fixture
def peer() -> Iterator[Callable[[Any, str], Peer]]:
    """Factory: `peer(daemon, "bob")`, closed at teardown."""
    made: list[Peer] = []

    def make(daemon: Any, nick: str) -> Peer:
        made.append(Peer(daemon, nick))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    """`chatctl connect` on pseudo-terminals that a test opens: closed at teardown."""
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


@pytest.fixture
def notify_socket(short_dir: Path) -> Any:
    path = short_dir / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield sock, path
    sock.close()


@pytest.fixture
def irc_daemon(start_daemon: Callable[..., Daemon]) -> Daemon:
    """A chatd with its IRC listener on a free port, named `irc.test`."""
    return start_daemon(irc={"listen": "127.0.0.1:0", "server_name": "irc.test"})


@pytest.fixture
def shared_room(irc_daemon: Daemon) -> tuple[ChatClient, ChatClient]:
    """`#room` on `irc_daemon`, with bob (a terminal user) who set its topic
    and carol (a browser user): where the real IRC clients' tests join."""
    bob = irc_daemon.client("bob")
    bob.join("#room")
    bob.send("/topic #room what we talk about")
    bob.expect_eventually("TOPIC #room bob ")
    carol = WebSocketClient.registered(irc_daemon.port, irc_daemon.pki.ca, "carol")
    irc_daemon.clients.append(carol)
    carol.join("#room")
    return bob, carol
