"""chatd/transport/irc.py: the codec's fast path for a plain `PRIVMSG
<target> :<text>` (and NOTICE) gives what the general path (the parser and
ircin's `_message`) gives, for the lines it takes and for those it leaves
to the general path. Each line is read twice, by a codec as it is and by one
whose fast path is turned off, and everything the session is handed and
everything the client is sent must be the same. The session and endpoint
are stand-ins that answer every command with two errors (461 shows which
command the codec thinks it answers, 401 which target, and a NOTICE gets
neither)."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import pytest

from chatd.outlet import Command
from chatd.transport.irc import IrcCodec
from chatd.transport.ircout import EXTENDED_JOIN, Frames, Person
from chatd.transport.ircreg import Settings
from tests.support.ircstandins import StandInEndpoint, StandInSession

LINES = [
    b"PRIVMSG #a :hello",
    b"PRIVMSG #a :hello\r",
    b"NOTICE #a :hello",
    b"NOTICE bob :hello there",
    b"PRIVMSG bob :hi : there :: x",
    b"PRIVMSG #nosuch :to a room that is not there",
    b"PRIVMSG nobody :to a nickname that is not there",
    b"@+draft/reply=1 PRIVMSG #a :tagged",
    b"@label=L1 PRIVMSG #a :labeled",
    b"@label=L2 NOTICE #a :labeled notice",
    b":alice!u@h PRIVMSG #a :with a source",
    b"PRIVMSG #a hello",
    b"PRIVMSG #a :",
    b"PRIVMSG #a :   ",
    b"NOTICE #a :",
    b"PRIVMSG #a : leading space",
    b"PRIVMSG #a :trailing space ",
    b"PRIVMSG #a :\x01ACTION waves\x01",
    b"PRIVMSG #a :\x01ACTION\x01",
    b"NOTICE #a :\x01ACTION waves\x01",
    b"PRIVMSG #a :\x01VERSION\x01",
    b"PRIVMSG #a :caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    b"PRIVMSG #a :bad \xff utf-8",
    b"NOTICE #a :bad \xff utf-8",
    b"PRIVMSG #a :overlong \xc0\xaf",
    b"PRIVMSG #a :bold \x02text\x02",
    b"PRIVMSG #a :colour \x0304,01red",
    b"PRIVMSG #a :tab\there",
    b"PRIVMSG #a :del\x7f",
    b"PRIVMSG #a :c1 \xc2\x85 control",
    b"PRIVMSG #a :zero\xe2\x80\x8bwidth",
    b"PRIVMSG #a :x\r\r",
    b"PRIVMSG #a,#b :two targets",
    b"PRIVMSG #a,,bob :an empty target",
    b"PRIVMSG #caf\xc3\xa9 :a target in UTF-8",
    b"PRIVMSG #\xff :a target not UTF-8",
    b"privmsg #a :lower case",
    b"Privmsg #a :mixed case",
    b"PRIVMSG  #a :two spaces before the target",
    b"PRIVMSG #a  :two spaces before the text",
    b"PRIVMSG #a\t:tab before the text",
    b"PRIVMSG :only text",
    b"PRIVMSG",
    b"PRIVMSG ",
    b"PRIVMSG #a",
    b"PRIVMSG #a :" + b"x" * 498,  # 510 bytes: the longest line allowed
    b"PRIVMSG #a :" + b"x" * 498 + b"\r",
    b"PRIVMSG #a :" + b"x" * 499,  # 511: one too many (417)
    b"PRIVMSG #a :" + b"x" * 499 + b"\r",
    b"PRIVMSG #a :" + b"x" * 500,
    b"NOTICE #a :" + b"x" * 499,  # 510
    b"NOTICE #a :" + b"x" * 500,  # 511
    b"PRIVMSG #a :" + b"x" * 700,
    b"PRIVMSG #a :" + b"x" * 5000,  # longer than any line: cut by the line buffer
    b"PRIVMSGX #a :not a PRIVMSG",
    b"NOTICES #a :not a NOTICE",
    b"PING :between",
]


class AnsweringSession(StandInSession):
    """Records what it is handed; answers each command with two errors, in
    its window, as the chat session does (`begin`, deliver, `end`)."""

    def __init__(self, codecs: list[IrcCodec], handed: list[object]) -> None:
        self.codecs = codecs
        self.handed = handed

    def on_lines(self, lines: Sequence[bytes | Command | None]) -> None:
        codec = self.codecs[0]
        for item in lines:
            self.handed.append(item)
            if isinstance(item, Command) and item.verb == "quit":
                codec.endpoint.open = False  # type: ignore[attr-defined]  # as the session's close does
            self.handed.append(codec.wants_events(item))
            codec.begin(item)
            codec.deliver(b"ERR missing_argument Say what.\nERR no_such_nick No such nick.\n")
            codec.end()


class RecordingEndpoint(StandInEndpoint):
    def __init__(self, sent: list[object]) -> None:
        super().__init__()
        self.sent = sent

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        self.sent.append((data, lines))


def _codec(registered: bool, caps: set[str], fast: bool) -> tuple[IrcCodec, list[object]]:
    """A codec and the list of everything it hands over and sends, in order."""
    record: list[object] = []
    directory = SimpleNamespace(room_exists=lambda room: room == "#a", person=lambda nick: None)
    frames = Frames(directory=directory, server="irc.test")  # type: ignore[arg-type]
    codecs: list[IrcCodec] = []
    settings = Settings("irc.test", "test", "0", "today", 16, 10, 0)
    codec = IrcCodec(RecordingEndpoint(record), settings, frames, lambda _: AnsweringSession(codecs, record))  # type: ignore[arg-type]
    codecs.append(codec)
    if not fast:
        codec._said = lambda raw: False  # type: ignore[method-assign]
    if registered:
        codec.state.registered = True
        codec.state.rename("alice")
    codec.state.set_caps(caps)
    return codec, record


def _read(data: bytes, registered: bool = True, caps: frozenset[str] = frozenset()) -> tuple[list[object], bool]:
    """What the general path and the fast path make of `data`, and whether
    the fast path took any of its lines."""
    results = []
    for fast in (False, True):
        codec, record = _codec(registered, set(caps), fast)
        taken: list[bytes] = []
        said = codec._said

        def spy(raw: bytes, said=said, taken=taken) -> bool:  # type: ignore[no-untyped-def]
            done = said(raw)
            if done:
                taken.append(raw)
            return done

        codec._said = spy  # type: ignore[method-assign]
        codec.on_data(data)
        results.append(record)
    assert results[1] == results[0]
    return results[1], bool(taken)


@pytest.mark.parametrize("line", LINES, ids=repr)
@pytest.mark.parametrize("caps", [frozenset(), frozenset({"labeled-response", "batch", "message-tags"})], ids=str)
def test_a_line_reads_the_same_on_the_fast_path_as_on_the_general_one(line: bytes, caps: frozenset[str]) -> None:
    _read(line + b"\n", caps=caps)


def test_a_read_of_many_lines_reads_the_same_on_both_paths() -> None:
    record, taken = _read(b"".join(line + b"\n" for line in LINES))
    assert taken and sum(isinstance(item, Command) for item in record) > 20


def test_no_line_after_the_one_that_closes_the_connection_is_handed_over() -> None:
    record, taken = _read(b"PRIVMSG #a :one\r\nQUIT :bye\r\nPRIVMSG #a :two\r\nPRIVMSG #a :three\r\n")
    assert taken
    assert [item.text for item in record if isinstance(item, Command)] == [b"one", b"bye"]


def test_before_registration_a_privmsg_is_refused_on_both_paths() -> None:
    record, taken = _read(b"PRIVMSG #a :hello\r\n", registered=False)
    assert not taken and b" 451 " in record[0][0]  # type: ignore[index]


def test_the_fast_path_takes_the_plain_lines() -> None:
    """The lines of the fan-out (bench/INSTRUCTIONS.md, "IRC clients") are its."""
    longest = b"PRIVMSG #a :" + b"x" * 498
    for line in (b"PRIVMSG #bench :m1-2 xxxx", b"NOTICE bob :hi\r", b"PRIVMSG #a :caf\xc3\xa9", longest):
        assert _read(line + b"\n")[1], line
    for line in (b"PRIVMSG #a :\x01ACTION x\x01", b"@label=x PRIVMSG #a :hi", b"PRIVMSG #a,#b :hi"):
        assert not _read(line + b"\n")[1], line


# -- a room's block, translated (ircout.py `Frames._messages`) -----------------------------

_T1, _T2 = b"time=2026-12-07T16:00:00.001Z", b"time=2026-12-07T16:00:00.002Z"
BLOCKS = [
    b"@id=1;%s MSG #a bob hello\n" % _T1,
    b"@id=1;%s MSG #a bob hello\n@id=2;%s MSG #a bob two words  and  spaces\n" % (_T1, _T2),
    b"@id=1;%s MSG #a bob hello\n@id=2;%s MSG #a carol hi\n" % (_T1, _T2),  # two senders
    b"@id=1;%s MSG #a bob one\n@id=2;%s;notice MSG #a bob two\n@id=3;%s MSG #a bob three\n" % (_T1, _T2, _T2),
    b"@id=1;%s MSG #a bob one\n@id=2;%s MSG #a bob @id=3;%s MSG #a bob three\n" % (_T1, _T2, _T2),
    b"@id=1;%s MSG #a bob one\n@id=2;%s MSG #ab bob two\n" % (_T1, _T2),  # the room's name a prefix of the next's
    b"@id=1;%s MSG #a-b bob one\n@id=2;%s MSG #a-b bob two\\ \\1 \\g<0>\n" % (_T1, _T2),
    b"@id=1;%s MSG #a Bob hello\n" % _T1,  # the nickname as shown, its key in lower case
    b"@id=1;%s MSG #a ghost hello\n" % _T1,  # a sender the directory does not know
    b"@id=1;%s MSG #a bob caf\xc3\xa9 :colon\n" % _T1,
    b"@id=1;%s;+draft/reply=7 MSG #a bob a client tag\n" % _T1,
    b"@id=1;%s;notice MSG #a bob a notice\n" % _T1,
    b"@id=1;%s;action MSG #a bob an action\n" % _T1,
    b"@id=1;%s;history MSG #a bob from history\n" % _T1,
    b"@time=2026-12-07T16:00:00.001Z;id=1 MSG #a bob tags the other way round\n",
    b"@id=1;notice;%s MSG #a bob a notice, its tag before the time\n" % _T1,
    b"@id=1;%s MSG #b bob hello\n@id=2;%s MSG #b bob in another room\n" % (_T1, _T2),
    b"@id=;%s MSG #a bob an empty id\n" % _T1,
    b"@id=1;time= MSG #a bob an empty time\n",
    b"@id=1 MSG #a bob no time\n",
    b"MSG #a bob no tags\n",
    b"@id=1;%s MSG #a bob\n" % _T1,  # no text
    b"@id=1;%s MSG #a bob \n" % _T1,  # an empty text
    b"@id=1;%s ACTION #a bob waves\n" % _T1,
    b"@id=1;%s TOPIC #a bob a topic\n" % _T1,
    b"@id=1;%s MSG #a bob hello\n@id=2;%s ACTION #a bob waves\n" % (_T1, _T2),
    b"@id=1;%s MSG #a bob hello\n@id=2;%s JOIN #a carol\n" % (_T1, _T2),
    b"@id=1;%s JOIN #a carol\n@id=2;%s MSG #a carol hello\n" % (_T1, _T2),
    b"@id=1;%s DM bob alice hello\n" % _T1,
    b"ERR no_such_room No such room.\n",
]


class Directory:
    def __init__(self) -> None:
        self.people = {
            "bob": Person("bob", "~bob", "10.0.0.1", "Bob", account="bobacct"),
            "carol": Person("carol", "chatd", "10.0.0.2", "Carol"),
        }

    def person(self, nick: str) -> Person | None:
        return self.people.get(nick.lower())


@pytest.mark.parametrize("block", BLOCKS, ids=repr)
def test_a_block_translates_the_same_on_the_fast_path_as_on_the_general_one(block: bytes) -> None:
    for profile in range(16):  # every set of server-time, message-tags, extended-join, account-tag
        fast = Frames(Directory(), "irc.test")  # type: ignore[arg-type]
        general = Frames(Directory(), "irc.test")  # type: ignore[arg-type]
        general._messages = lambda lines, profile: None  # type: ignore[method-assign]
        general._one_senders = lambda data, profile: None  # type: ignore[method-assign]
        assert fast.translate(block, profile) == general.translate(block, profile), profile


def test_a_read_of_one_sender_is_translated_in_one_pass() -> None:
    """`_one_senders` takes a block of one sender's messages to one room (what
    the fan-out's blocks are) for a client without tags (profile 0, or only
    extended-join), and no other."""
    frames = Frames(Directory(), "irc.test")  # type: ignore[arg-type]
    one = b"@id=1;%s MSG #a bob hello\n@id=2;%s MSG #a bob  two  words \n" % (_T1, _T2)
    for profile in range(16):
        untagged = profile in (0, EXTENDED_JOIN)
        assert (frames._one_senders(one, profile) is not None) is untagged, profile
        assert frames._one_senders(BLOCKS[2], profile) is None  # two senders


def test_the_fast_path_translates_the_fan_outs_blocks() -> None:
    frames = Frames(Directory(), "irc.test")  # type: ignore[arg-type]
    lines = (b"@id=1;%s MSG #a bob hello\n@id=2;%s MSG #a carol hi\n" % (_T1, _T2)).split(b"\n")[:-1]
    for profile in range(16):
        assert frames._messages(lines, profile) is not None
