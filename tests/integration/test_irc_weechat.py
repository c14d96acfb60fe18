"""WeeChat against chatd's IRC listener, black-box (issue 23): a headless
WeeChat (tests/support/weechat.py) connects over TLS trusting only chatd's
CA, joins a room shared with a terminal and a browser user, sees its topic and names, sees
their lines with the times chatd gave them, talks back, and after a
reconnect sees what it missed with its original times (IRCv3 server-time;
the join's replay, irc.backlog). Skipped where WeeChat or its plugins are
missing (.ci/run installs them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, wait_until
from tests.support import weechat
from tests.support.chatclient import ChatClient
from tests.support.ircclient import irc_port

pytestmark = pytest.mark.skipif(
    not weechat.available(),
    reason="needs weechat-headless and its fifo and logger plugins (Debian: apt-get install weechat-headless weechat-plugins)",
)

ROOM = "irc.chatd.#room"  # WeeChat's name for the room's buffer (and its log file)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[weechat.WeeChat]:
    running = weechat.WeeChat(tmp_path / "weechat", "wee")
    yield running
    running.close()


def second(event_time: str) -> str:
    """chatd's event time (`2026-01-02T03:04:05.678Z`) to the second, as WeeChat logs it."""
    return event_time[:19]


def test_weechat_in_a_room_with_a_terminal_and_a_browser_user(
    irc_daemon: Daemon, shared_room: tuple[ChatClient, ChatClient], client: weechat.WeeChat
) -> None:
    bob, carol = shared_room
    # Verification on, against chatd's CA alone (not the system's).
    client.command("/set weechat.network.gnutls_ca_system off")
    client.command(f"/set weechat.network.gnutls_ca_user {irc_daemon.pki.ca}")
    client.command(f"/server add chatd localhost/{irc_port(irc_daemon)} -ssl")
    client.command("/connect chatd")
    irc_daemon.wait_for_event("nickname", 30, nick="wee")  # registered
    client.wait_for("irc.server.chatd", "", r"^gnutls: peer's certificate is trusted$")
    client.command("/join #room", buffer="irc.server.chatd")
    client.wait_for(ROOM, "", r'^Topic for #room is "what we talk about"$')
    client.wait_for(ROOM, "", r"^Topic set by bob \(chatd@chatd\)")
    client.wait_for(ROOM, "", r"^Channel #room: 3 nicks \(1 op, 0 voices, 2 normals\)$")  # bob, the creator, as @
    assert bob.expect_eventually("JOIN #room wee", 30) == "JOIN #room wee"
    client.command("/names", buffer=ROOM)  # WeeChat shows only the count on joining
    client.wait_for(ROOM, "", r"^Nicks #room: \[@bob carol wee\]$")

    bob.send("hello from the terminal")
    bob.expect_eventually("MSG #room bob hello from the terminal")
    said = second(bob.last_tags["time"])
    when, _, _ = client.wait_for(ROOM, r"^@bob$", r"^hello from the terminal$")
    assert when == said
    carol.send("hello from the browser")
    assert carol.expect_eventually("MSG #room carol ") == "MSG #room carol hello from the browser"
    when, _, _ = client.wait_for(ROOM, r"^carol$", r"^hello from the browser$")
    assert when == second(carol.last_tags["time"])
    client.command("hello from weechat", buffer=ROOM)
    # WeeChat paces what it sends (irc.server.*.anti_flood_prio_high, 2 s): a longer deadline.
    assert bob.expect_eventually("MSG #room wee ", 30) == "MSG #room wee hello from weechat"
    assert carol.expect_eventually("MSG #room wee ", 30) == "MSG #room wee hello from weechat"

    client.command("/disconnect", buffer="irc.server.chatd")
    assert bob.expect_eventually("LEAVE wee ", 30).startswith("LEAVE wee ")
    bob.send("while you were away")
    bob.expect_eventually("MSG #room bob while you were away")
    said = second(bob.last_tags["time"])
    # Let the clock pass the second it was said in, so that a replay stamped
    # with the time of the reconnect could not pass for the original time.
    wait_until(lambda: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) > said, 5, "the next second")
    client.command("/connect chatd")
    wait_until(lambda: len(irc_daemon.find_events("nickname", nick="wee")) == 2, 30, "WeeChat registered again")
    client.command("/join #room", buffer="irc.server.chatd")
    when, _, _ = client.wait_for(ROOM, r"^@bob$", r"^while you were away$")
    assert when == said
