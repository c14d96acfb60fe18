"""chatd/core for a transport with a grammar of its own (the IRC codec): the
`Command`s it hands a session directly, the `Tracer` told what each reply
answers, no autojoin, and the rooms' creators (shown on IRC as `@`)."""

from __future__ import annotations

from chatd.core.chat import Chat
from chatd.core.commands import COMMANDS, IRC_ONLY
from chatd.core.session import Session
from chatd.outlet import Command
from tests.support.sessions import PAUSE, FakeOutlet, clock_of, connect, make_chat


class TracedOutlet(FakeOutlet):
    """An outlet that is also the session's tracer: it records, for each item
    handed over, the lines delivered while it was being handled."""

    def __init__(self, peer: str) -> None:
        super().__init__(peer)
        self.windows: list[tuple[object, list[str]]] = []
        self.labeled: list[Command] = []  # the items whose room events belong to their answer
        self.blocks: list[bytes] = []  # each delivery, whole
        self._open: list[str] | None = None

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        super().deliver(data, lines, sender)
        self.blocks.append(data)
        if self._open is not None:
            self._open.extend(data.decode().splitlines())

    def wants_events(self, item: bytes | Command | None) -> bool:
        return item in self.labeled

    def begin(self, item: bytes | Command | None) -> None:
        assert self._open is None, "begin twice without end"
        self._open = []
        self.windows.append((item, self._open))

    def end(self) -> None:
        assert self._open is not None, "end without begin"
        self._open = None


def irc_connect(chat: Chat, nick: str) -> TracedOutlet:
    outlet = TracedOutlet(f"127.0.0.1:{len(chat.nicks) + 50000}")
    session = Session(chat, outlet, {"session": nick}, tracer=outlet, autojoin=False)
    outlet.session = session
    session.on_open(None, None)
    session.on_lines([nick.encode()])
    return outlet


def hand(outlet: TracedOutlet, *commands: Command) -> list[str]:
    assert outlet.session is not None
    clock_of(outlet).advance(PAUSE)
    outlet.session.on_lines(list(commands))
    return outlet.take()


def test_the_irc_rows_are_in_the_table() -> None:
    assert IRC_ONLY <= set(COMMANDS)


def test_a_traced_session_is_not_autojoined_and_frames_each_item() -> None:
    chat = make_chat()
    alice = irc_connect(chat, "alice")
    lines = alice.take()
    assert lines[2].startswith("WELCOME alice") and lines[3:] == ["CURRENT *"]  # after HELLO and NICK
    (item, answered), *_ = alice.windows
    assert item == b"alice" and answered[0].startswith("WELCOME alice")
    alice.windows.clear()
    received = hand(alice, Command("join", target="#rust"), Command("msg", b"hi", "#rust"))
    (first, joining), (second, said) = alice.windows
    assert first == Command("join", target="#rust") and joining[0] == "JOIN #rust alice"
    assert second == Command("msg", b"hi", "#rust") and said == []  # its event leaves with the read's block
    assert received[-1] == "MSG #rust alice hi"


def test_a_labeled_commands_events_are_inside_its_window_and_only_its() -> None:
    chat = make_chat()
    alice = irc_connect(chat, "alice")
    hand(alice, Command("join", target="#rust"))
    alice.windows.clear()
    labeled = Command("msg", b"two", "#rust")
    alice.labeled.append(labeled)
    received = hand(alice, Command("msg", b"one", "#rust"), labeled, Command("msg", b"three", "#rust"))
    said = [[line.partition(" ")[2] for line in lines] for _, lines in alice.windows]
    assert said == [[], ["MSG #rust alice two"], []]
    assert received == ["MSG #rust alice one", "MSG #rust alice two", "MSG #rust alice three"]


def test_the_lines_of_one_read_to_one_room_reach_a_member_as_one_block() -> None:
    chat = make_chat()
    alice, bob = irc_connect(chat, "alice"), irc_connect(chat, "bob")
    hand(alice, Command("join", target="#rust"))
    hand(bob, Command("join", target="#rust"))
    bob.blocks.clear()
    hand(alice, *(Command("msg", f"line {n}".encode(), "#rust") for n in range(5)))
    (block,) = bob.blocks
    assert block.count(b"\n") == 5 and bob.take()[-1] == "MSG #rust alice line 4"


def test_a_dm_does_not_overtake_what_was_said_before_it() -> None:
    chat = make_chat()
    alice, bob = irc_connect(chat, "alice"), irc_connect(chat, "bob")
    hand(alice, Command("join", target="#rust"))
    hand(bob, Command("join", target="#rust"))
    bob.take()
    hand(alice, Command("msg", b"to all", "#rust"), Command("msg", b"to you", "bob"), Command("me", b"waves", "bob"))
    assert [line.partition(" ")[0] for line in bob.take()] == ["MSG", "DM", "DM"]


def test_tags_go_on_the_events_of_a_command() -> None:
    chat = make_chat()
    alice, bob = irc_connect(chat, "alice"), connect(chat, "bob")
    hand(alice, Command("join", target="#lobby"))
    bob.take()
    hand(alice, Command("msg", b"psst", "#lobby", tags=b"notice;+draft/reply=7"))
    (tags, line), *_ = bob.take_events()
    assert line == "MSG #lobby alice psst" and tags["notice"] == "" and tags["+draft/reply"] == "7"
    hand(alice, Command("msg", b"hello", "bob", tags=b"notice"))
    (tags, line), *_ = bob.take_events()
    assert line == "DM alice bob hello" and "notice" in tags


def test_an_action_names_its_room_or_goes_to_a_nickname() -> None:
    chat = make_chat()
    alice, bob = irc_connect(chat, "alice"), connect(chat, "bob")
    hand(alice, Command("join", target="#lobby"), Command("join", target="#other"))
    bob.take()
    hand(alice, Command("me", b"waves", "#lobby"))  # not the current room (#other)
    assert bob.take() == ["ACTION #lobby alice waves"]
    hand(alice, Command("me", b"nods", "bob"))
    (tags, line), *_ = bob.take_events()
    assert line == "DM alice bob nods" and "action" in tags


def test_a_tagmsg_reaches_the_room_and_is_not_kept() -> None:
    chat = make_chat()
    alice, bob = irc_connect(chat, "alice"), connect(chat, "bob")
    hand(alice, Command("join", target="#lobby"))
    bob.take()
    hand(alice, Command("tagmsg", target="#lobby", tags=b"+typing=active"))
    (tags, line), *_ = bob.take_events()
    assert line == "TAGMSG #lobby alice" and tags["+typing"] == "active"
    lobby = chat.rooms.find("#lobby")
    assert lobby is not None and not [e for e in lobby.recent if e.kind == "tagmsg"]


def test_untopic_clears_a_topic_as_an_event() -> None:
    chat = make_chat()
    alice, bob = irc_connect(chat, "alice"), connect(chat, "bob")
    hand(alice, Command("join", target="#lobby"), Command("topic", b"old", "#lobby"))
    bob.take()
    hand(alice, Command("untopic", target="#lobby"))
    (tags, line), *_ = bob.take_events()
    assert line == "TOPIC #lobby alice" and "id" in tags
    room = chat.rooms.find("#lobby")
    assert room is not None and room.topic == ""


def test_a_commands_text_is_checked_as_a_lines() -> None:
    chat = make_chat()
    alice = irc_connect(chat, "alice")
    hand(alice, Command("join", target="#lobby"))
    assert hand(alice, Command("msg", b"bell\x07", "#lobby"))[0].startswith("ERR bad_encoding")


def test_a_held_command_is_traced_when_it_is_released() -> None:
    chat = make_chat(message_rate=1.0, message_burst=1)
    alice = irc_connect(chat, "alice")
    alice.windows.clear()
    hand(alice, Command("join", target="#a"), Command("join", target="#b"))
    assert [item for item, _ in alice.windows] == [Command("join", target="#a")]  # #b waits for a token
    clock_of(alice).advance(1.0)
    assert alice.session is not None
    alice.session.on_timer(clock_of(alice).now)
    (_, released) = alice.windows[1]
    assert released[0] == "JOIN #b alice"


def test_the_creator_of_a_room_is_who_made_it_while_there() -> None:
    chat = make_chat()
    alice, bob = connect(chat, "alice"), connect(chat, "bob")
    assert chat.rooms.find("#lobby").creator is None  # type: ignore[union-attr]  # permanent
    assert alice.session is not None and bob.session is not None
    alice.session.on_lines([b"/join #new"])
    bob.session.on_lines([b"/join #new"])
    room = chat.rooms.find("#new")
    assert room is not None and room.creator is alice.session
    alice.session.on_lines([b"/part #new"])
    assert room.creator is None  # nobody takes over
