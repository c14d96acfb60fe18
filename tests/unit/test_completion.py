"""chatctl/completion.py: what Tab offers, from the client's state alone."""

from __future__ import annotations

import pytest

from chatctl.completion import complete
from chatctl.state import ClientState

LINES = [
    "HELLO 2 chatd 0.2.0",
    "NICK",
    "WELCOME carol hi",
    "JOIN #lobby carol",
    "USERS #lobby alice Bob carol",
    "CURRENT #lobby",
    "JOIN #rust carol",
    "USERS #rust bea carol",
    "CURRENT #rust",
    "ROOM #lobby 3",
    "ROOM #random 1",
    "ROOM #rust 2",
    "ROOMS 3",
]


@pytest.fixture
def state() -> ClientState:
    state = ClientState()
    for line in LINES:
        state.on_line(line)
    return state


@pytest.mark.parametrize(
    ("typed", "word", "expected"),
    [
        # A nickname: the current room's members first; `: ` when it starts the line.
        ("b", "b", ["bea: ", "Bob: "]),
        ("thanks B", "B", ["bea ", "Bob "]),
        ("hi AL", "AL", ["alice "]),
        ("hi car", "car", []),  # your own nickname is not offered
        # A room: after a room command, or a word that starts with #.
        ("/join #r", "#r", ["#rust ", "#random "]),
        ("/join r", "r", ["#rust ", "#random "]),  # the # may be left out
        ("/join ", "", ["#lobby ", "#rust ", "#random "]),
        ("/part #L", "#L", ["#lobby "]),
        ("/topic #", "#", ["#lobby ", "#rust ", "#random "]),
        ("/who #ra", "#ra", ["#random "]),
        ("see #lo", "#lo", ["#lobby "]),
        # /msg takes a room or a nickname.
        ("/msg #l", "#l", ["#lobby "]),
        ("/msg b", "b", ["bea ", "Bob "]),
        ("/msg r", "r", ["#rust ", "#random "]),
        # /history too (a nickname: the direct messages with them).
        ("/history #r", "#r", ["#rust ", "#random "]),
        ("/history b", "b", ["bea ", "Bob "]),
        # Later arguments of a room command are text: nicknames again.
        ("/msg #rust b", "b", ["bea ", "Bob "]),
        # Commands at the start of the line.
        ("/j", "/j", ["/join "]),
        ("/h", "/h", ["/help ", "/history "]),
        (
            "/",
            "/",
            [
                "/ban ",
                "/bans ",
                "/deop ",
                "/devoice ",
                "/help ",
                "/history ",
                "/invite ",
                "/join ",
                "/kick ",
                "/me ",
                "/msg ",
                "/nick ",
                "/op ",
                "/part ",
                "/ping ",
                "/quit ",
                "/room ",
                "/rooms ",
                "/topic ",
                "/unban ",
                "/voice ",
                "/who ",
            ],
        ),
        # v5: the room commands take a room, then a nickname.
        ("/k", "/k", ["/kick "]),
        ("/op ru", "ru", ["#rust "]),
        ("/kick #rust b", "b", ["bea ", "Bob "]),
        ("/x", "/x", []),
    ],
)
def test_complete(state: ClientState, typed: str, word: str, expected: list[str]) -> None:
    assert complete(state, typed) == (word, expected)


def test_a_v1_server_completes_everyone(state: ClientState) -> None:
    v1 = ClientState()
    for line in ("NICK", "WELCOME carol hi", "USERS alice carol", "JOIN bob"):
        v1.on_line(line)
    assert complete(v1, "") == ("", ["alice: ", "bob: "])
    assert complete(v1, "/join #") == ("#", [])
