"""Real IRC clients against chatd's IRC listener, black-box (issue 23): irssi
in a tmux of its own (tests/support/irssi.py) connects over TLS with chatd's
CA, joins a room shared with a terminal user and a browser user, sees its
topic and names, talks both ways, and after a reconnect sees what it missed
with its original times (IRCv3 server-time; the join's replay, irc.backlog).
Skipped where irssi or tmux is missing (.ci/run installs them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, wait_until
from tests.support import irssi
from tests.support.chatclient import ChatClient
from tests.support.ircclient import irc_port

pytestmark = pytest.mark.skipif(
    not irssi.available(), reason="needs irssi and tmux (Debian: apt-get install irssi tmux)"
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[irssi.Irssi]:
    running = irssi.Irssi(tmp_path / "irssi", "ira")
    yield running
    running.close()


def test_irssi_in_a_room_with_a_terminal_and_a_browser_user(
    irc_daemon: Daemon, shared_room: tuple[ChatClient, ChatClient], client: irssi.Irssi
) -> None:
    bob, carol = shared_room
    connect = f"/connect -tls -tls_cafile {irc_daemon.pki.ca} -network chatd localhost {irc_port(irc_daemon)}"
    client.command(connect)
    irc_daemon.wait_for_event("nickname", 30, nick="ira")  # registered (irssi logs no status window)
    client.command("/join #room")
    client.wait_for("#room", r"Topic for #room: what we talk about")
    client.wait_for("#room", r"Topic set by bob \[chatd@chatd\]")
    client.wait_for("#room", r"\[@bob\] \[ carol\] \[ ira\]")  # the names, bob (the room's creator) as @
    assert bob.expect_eventually("JOIN #room ira") == "JOIN #room ira"

    bob.send("hello from the terminal")
    client.wait_for("#room", r"<@bob> hello from the terminal")
    carol.send("hello from the browser")
    client.wait_for("#room", r"< carol> hello from the browser")
    client.command("hello from irssi")
    assert bob.expect_eventually("MSG #room ira ") == "MSG #room ira hello from irssi"
    assert carol.expect_eventually("MSG #room ira ") == "MSG #room ira hello from irssi"

    client.command("/disconnect chatd")
    assert bob.expect_eventually("LEAVE ira ").startswith("LEAVE ira ")
    bob.send("while you were away")
    bob.expect_eventually("MSG #room bob while you were away")
    said = bob.last_tags["time"][:19]  # YYYY-MM-DDTHH:MM:SS, as irssi logs it
    # Let the clock pass the second it was said in, so that a replay stamped
    # with the time of the reconnect could not pass for the original time.
    wait_until(lambda: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) > said, 5, "the next second")
    client.command(connect)
    wait_until(lambda: len(irc_daemon.find_events("nickname", nick="ira")) == 2, 30, "irssi registered again")
    client.command("/join #room")
    when, _ = client.wait_for("#room", r"<@bob> while you were away")
    assert when == said
