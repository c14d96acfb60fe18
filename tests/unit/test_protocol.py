"""chatd/core/protocol.py (cleaning, parsing, formatting) and chatd/transport/framing.py
(LineBuffer) against docs/protocol.md.

Sans-I/O, so everything here runs on plain bytes: no sockets, no threads.
"""

from __future__ import annotations

import ast
import itertools
import re
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chatd.core import history, protocol
from chatd.core.protocol import (
    TOO_LONG,
    Command,
    HistoryQuery,
    check_nick,
    check_room,
    clean_line,
    format_error,
    format_line,
    format_users,
    parse_command,
    parse_history,
)
from chatd.errors import ProtocolError
from chatd.names import is_room, nick_key, room_key
from chatd.transport import framing
from chatd.transport.framing import LineBuffer

REPO = Path(__file__).resolve().parents[2]
PROTOCOL_MD = REPO / "docs" / "protocol.md"
LIMIT = 256  # the smallest max_line_bytes load_config accepts

# The codes in docs/protocol.md "Errors"; parse_command/clean_line may raise only these.
DOCUMENTED_ERR_CODES = frozenset(
    re.findall(r"^\| `([a-z_]+)` \|", PROTOCOL_MD.read_text().split("## Errors", 1)[1].split("\n## ", 1)[0], re.M)
)
DOCUMENTED_VERBS = frozenset(
    {"say", "me", "msg", "nick", "who", "ping", "quit", "help", "empty", "join", "part", "topic", "rooms", "history"}
    | {"login", "register", "resume", "remember", "passwd", "logout"}
    | {"room", "op", "deop", "voice", "devoice", "kick", "ban", "unban", "bans", "invite"}
)


def feed_all(buffer: LineBuffer, chunks: list[bytes]) -> list[bytes | None]:
    lines: list[bytes | None] = []
    for chunk in chunks:
        lines.extend(buffer.feed(chunk))
    return lines


def expected_lines(stream: bytes, limit: int) -> list[bytes | None]:
    """Reference framing: what LineBuffer must yield for `stream`, however it is chunked."""
    *complete, partial = stream.split(b"\n")
    lines: list[bytes | None] = [TOO_LONG if len(line) + 1 > limit else line for line in complete]
    if len(partial) >= limit:  # cannot fit even before its newline arrives: refused already
        lines.append(TOO_LONG)
    return lines


@st.composite
def chunked(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    cuts = sorted(draw(st.sets(st.integers(0, len(stream)), max_size=20)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def test_documented_err_codes_were_found() -> None:
    assert len(DOCUMENTED_ERR_CODES) >= 10, DOCUMENTED_ERR_CODES


def test_the_transport_and_the_core_agree_on_too_long() -> None:
    # The transport hands framing.TOO_LONG to the session, which tests for protocol.TOO_LONG.
    assert framing.TOO_LONG is protocol.TOO_LONG


def test_version_is_the_documents() -> None:
    title = re.match(r"# chatd wire protocol, version (\d+)\n", PROTOCOL_MD.read_text())
    assert title is not None
    assert protocol.VERSION == int(title.group(1)) == 5
    assert re.search(r"^S: HELLO 5 chatd ", PROTOCOL_MD.read_text(), re.M)  # the example too


def event(kind: str, room: str, text: bytes) -> bytes:
    """An event as chatd sends it live (id 9, at 2026-12-01T18:04:05.123Z)."""
    return history.event_line(history.Event(9, 1796148245123, room.lower(), room, "alice", kind, text), history.Clock())


def server_verbs_in_the_code() -> set[str]:
    """The verbs chatd/ sends: the first argument of each `format_line(...)`
    call, and bytes constants that are a verb alone or a verb and the rest of
    a line (`b"NICK\\n"`, `b"PONG %s\\n"`, history's `b"MSG"`)."""
    verbs = set()
    for source in (REPO / "chatd").rglob("*.py"):
        if "http" in source.name:
            continue  # HTTP servers (metrics, the web client): their b"GET" is not a chat verb
        if source.name.startswith("irc"):
            continue  # the IRC listener (docs/irc.md): its b"PRIVMSG" is IRC's, not the line protocol's
        if "cluster" in source.relative_to(REPO).parts:
            continue  # Redis commands (b"XREAD", b"EVALSHA"): not chat verbs either
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            called = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(called, "attr", getattr(called, "id", "")) == "format_line":
                first = node.args[0]
                assert isinstance(first, ast.Constant), f"{source}:{node.lineno}: a verb that is not a literal"
                verbs.add(first.value)
            elif isinstance(node, ast.Constant) and isinstance(node.value, bytes):
                if match := re.fullmatch(rb"([A-Z]+)( .*|\n)?", node.value, re.S):
                    verbs.add(match[1].decode())
    return verbs


def test_the_server_sends_exactly_the_documented_verbs() -> None:
    table = PROTOCOL_MD.read_text().split("## Server → client", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z]+)[ `]", table, re.M))
    assert {"HELLO", "MSG", "HISTORY", "BYE"} <= documented, table
    assert server_verbs_in_the_code() == documented


def test_history_lines_are_documented() -> None:
    """`HISTORY <target> <count> <more>` as the table and "History" write it,
    and the `history` tag in "Events and tags"."""
    doc = PROTOCOL_MD.read_text()
    assert "| `HISTORY <target> <count> <more>` |" in doc
    assert re.search(r"`<more>`\*\*\s+is\s+`end`.*?and\s+`more`\s+when", doc, re.S)
    assert "- `history`: present (no value)" in doc
    assert (
        history.event_line(history.Event(7, 0, "#a", "#a", "bob", "msg", b"hi"), history.Clock(), history=True)
        == b"@id=7;time=1970-01-01T00:00:00.000Z;history MSG #a bob hi\n"
    )


# -- LineBuffer -----------------------------------------------------------------------


@given(
    lines=st.lists(st.binary(max_size=LIMIT - 1).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    data=st.data(),
)
def test_any_chunking_yields_exactly_the_lines(lines: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    chunks = data.draw(chunked(stream))
    assert feed_all(LineBuffer(LIMIT), chunks) == lines


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=20),
            st.integers(LIMIT - 3, LIMIT + 3).map(lambda n: b"x" * n),
            st.integers(LIMIT + 4, 3 * LIMIT).map(lambda n: b"y" * n),
        ).map(lambda b: b.replace(b"\n", b"")),
        max_size=12,
    ),
    tail=st.binary(max_size=2 * LIMIT).map(lambda b: b.replace(b"\n", b"")),
    data=st.data(),
)
def test_any_chunking_matches_the_reference_framing_with_oversize_lines(
    lines: list[bytes], tail: bytes, data: st.DataObject
) -> None:
    stream = b"".join(line + b"\n" for line in lines) + tail
    buffer = LineBuffer(LIMIT)
    got: list[bytes | None] = []
    for chunk in data.draw(chunked(stream)):
        got.extend(buffer.feed(chunk))
        assert len(buffer._partial or b"") < LIMIT  # never holds more than one line's worth
    assert got == expected_lines(stream, LIMIT)


def test_crlf_lines_keep_their_cr_for_clean_line() -> None:
    lines = LineBuffer(LIMIT).feed(b"hello\r\nworld\r\n")
    assert lines == [b"hello\r", b"world\r"]
    assert [clean_line(line) for line in lines if line is not None] == [b"hello", b"world"]


def test_line_of_max_minus_one_bytes_plus_newline_is_accepted() -> None:
    content = b"a" * (LIMIT - 1)
    assert LineBuffer(LIMIT).feed(content + b"\n") == [content]


def test_line_of_max_bytes_plus_newline_is_too_long() -> None:
    assert LineBuffer(LIMIT).feed(b"a" * LIMIT + b"\n") == [TOO_LONG]


def test_crlf_counts_towards_the_limit() -> None:
    fits = b"a" * (LIMIT - 2) + b"\r"
    assert LineBuffer(LIMIT).feed(fits + b"\n") == [fits]
    assert LineBuffer(LIMIT).feed(b"a" * (LIMIT - 1) + b"\r\n") == [TOO_LONG]


def test_partial_line_of_max_minus_one_bytes_waits_for_its_newline() -> None:
    buffer = LineBuffer(LIMIT)
    assert buffer.feed(b"a" * (LIMIT - 1)) == []
    assert buffer.feed(b"\n") == [b"a" * (LIMIT - 1)]


def test_oversize_line_yields_one_too_long_and_the_next_line_survives() -> None:
    buffer = LineBuffer(LIMIT)
    assert buffer.feed(b"x" * (3 * LIMIT) + b"\nnext\n") == [TOO_LONG, b"next"]


def test_oversize_line_is_reported_before_its_newline_arrives() -> None:
    buffer = LineBuffer(LIMIT)
    assert buffer.feed(b"x" * LIMIT) == [TOO_LONG]


def test_oversize_line_split_across_many_feeds() -> None:
    buffer = LineBuffer(LIMIT)
    got: list[bytes | None] = []
    for _ in range(50):
        got.extend(buffer.feed(b"x" * 37))
    got.extend(buffer.feed(b"tail of the long line\nafter\n"))
    got.extend(buffer.feed(b"and more\n"))
    assert got == [TOO_LONG, b"after", b"and more"]


def test_tail_is_discarded_even_when_the_newline_comes_alone() -> None:
    buffer = LineBuffer(LIMIT)
    assert buffer.feed(b"x" * (LIMIT + 10)) == [TOO_LONG]
    assert buffer.feed(b"\n") == []
    assert buffer.feed(b"ok\n") == [b"ok"]


def test_two_oversize_lines_in_a_row_give_two_too_long() -> None:
    buffer = LineBuffer(LIMIT)
    big = b"x" * (LIMIT * 2)
    assert feed_all(buffer, [big, b"\n", big, b"\nok\n"]) == [TOO_LONG, TOO_LONG, b"ok"]


@pytest.mark.parametrize("chunk_size", [1, 255, 4096, 1 << 20])
def test_a_megabyte_without_newline_never_buffers_more_than_the_limit(chunk_size: int) -> None:
    buffer = LineBuffer(4096)
    data = b"z" * (1 << 20)
    got: list[bytes | None] = []
    if chunk_size == 1:
        data = data[:20000]  # byte by byte: the same path, a smaller megabyte
    for start in range(0, len(data), chunk_size):
        got.extend(buffer.feed(data[start : start + chunk_size]))
        assert len(buffer._partial or b"") < 4096
    assert got == [TOO_LONG]
    assert buffer.feed(b"\nhello\n") == [b"hello"]


def test_a_line_trickled_a_byte_at_a_time_costs_linear_time() -> None:
    """65,535 bytes and a newline at max_line_bytes 65536, one byte per read
    (a TLS record each): the partial line is never copied whole per read
    (O(n²), 0.78 s of CPU before) nor searched again (about 0.05 s now)."""
    limit = 65536
    line = bytes(range(256)).replace(b"\n", b"") * 258
    line = line[: limit - 1]
    data = [line[i : i + 1] for i in range(len(line))] + [b"\n"]  # sliced beforehand: not measured
    buffer = LineBuffer(limit)
    got: list[bytes | None] = []
    started = time.thread_time()
    for byte in data:
        got += buffer.feed(byte)
    spent = time.thread_time() - started
    assert got == [line]
    assert spent < 0.2, f"{spent:.2f} s of CPU for one {len(line)}-byte line fed a byte at a time"


def test_empty_feed_and_empty_lines() -> None:
    buffer = LineBuffer(LIMIT)
    assert buffer.feed(b"") == []
    assert buffer.feed(b"\n\n") == [b"", b""]


# -- clean_line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (b"hello", b"hello"),
        (b"hello\r", b"hello"),
        (b"", b""),
        (b"\r", b""),
        (b"tab\there", b"tab\there"),
        ("caf\u00e9 \u00fcber \u4e2d\u6587".encode(), "caf\u00e9 \u00fcber \u4e2d\u6587".encode()),
        ("\U0001f600 \U0001f44d\U0001f3fd".encode(), "\U0001f600 \U0001f44d\U0001f3fd".encode()),
        ("\u00e9\r".encode(), "\u00e9".encode()),
    ],
)
def test_clean_line_accepts_utf8_text(raw: bytes, clean: bytes) -> None:
    assert clean_line(raw) == clean


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff",
        b"abc\xc3",  # truncated sequence
        b"\xc0\xaf",  # overlong encoding of "/"
        b"\xed\xa0\x80",  # an encoded surrogate
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"latin-1 caf\xe9",
    ],
)
def test_clean_line_rejects_invalid_utf8(raw: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        clean_line(raw)
    assert info.value.code == protocol.BAD_ENCODING


@pytest.mark.parametrize("char", [c for c in range(0x20) if c != 0x09] + [0x7F])
def test_clean_line_rejects_c0_controls_and_del(char: int) -> None:
    with pytest.raises(ProtocolError) as info:
        clean_line(b"before" + bytes([char]) + b"after")
    assert info.value.code == protocol.BAD_ENCODING


@pytest.mark.parametrize("raw", [b"\x1b[2Jclear", b"a\r\r", b"a\rb", b"\x00"])
def test_clean_line_strips_only_one_trailing_cr(raw: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        clean_line(raw)
    assert info.value.code == protocol.BAD_ENCODING


@pytest.mark.parametrize("char", [chr(c) for c in range(0x80, 0xA0)])
def test_clean_line_rejects_c1_controls(char: str) -> None:
    with pytest.raises(ProtocolError) as info:
        clean_line(f"a{char}[31mred".encode())
    assert info.value.code == protocol.BAD_ENCODING


@pytest.mark.parametrize(
    "text",
    ["\u00a0", "\u00a9", "\u00c2", "\u0101", "\u0141", "\u20ac", "\u2028", "\U0001f600"],
)
def test_clean_line_accepts_text_whose_utf8_has_c1_like_bytes(text: str) -> None:
    # U+0101 is c4 81, U+20AC is e2 82 ac: continuation bytes in 0x80..0x9f are not C1.
    assert clean_line(text.encode()) == text.encode()


@given(st.text(max_size=20))
@example("\t\u0085")
@example("\u009f\u00a0")
@example("ok\r")
@example("\r\r")
def test_clean_line_refuses_exactly_the_control_characters(text: str) -> None:
    """Unicode category Cc is C0, DEL and C1: what docs/protocol.md refuses (bar tab)."""
    expected = text[:-1] if text.endswith("\r") else text
    control = any(unicodedata.category(c) == "Cc" and c != "\t" for c in expected)
    try:
        assert clean_line(text.encode()) == expected.encode()
    except ProtocolError as error:
        assert error.code == protocol.BAD_ENCODING
        assert control
    else:
        assert not control


# -- parse_command ----------------------------------------------------------------------

# One row per line of the "After registration" table, plus the edge cases of its prose.
VALID_COMMANDS = [
    (b"hello everyone", Command("say", b"hello everyone")),
    (b"  leading spaces kept", Command("say", b"  leading spaces kept")),
    (b"x/y not a command", Command("say", b"x/y not a command")),
    (b"//text", Command("say", b"/text")),
    (b"//me waves", Command("say", b"/me waves")),
    (b"//", Command("say", b"/")),
    (b"/me waves", Command("me", b"waves")),
    (b"/me waves at  everyone", Command("me", b"waves at  everyone")),
    (b"/msg bob hi bob", Command("msg", b"hi bob", "bob")),
    (b"/msg bob  two spaces", Command("msg", b" two spaces", "bob")),
    (b"/nick alicia", Command("nick", target="alicia")),
    (b"/nick  alicia ", Command("nick", target="alicia")),
    (b"/who", Command("who")),
    (b"/who ignored", Command("who")),
    (b"/ping", Command("ping")),
    (b"/ping 12345", Command("ping", b"12345")),
    (b"/quit", Command("quit")),
    (b"/quit gone for lunch", Command("quit", b"gone for lunch")),
    (b"/help", Command("help")),
    (b"", Command("empty")),
    # v2: rooms. A first word that starts with # names a room; the room's
    # validity is the session's to check (ERR room_invalid), not the parser's.
    (b"/msg #lobby hi all", Command("msg", b"hi all", "#lobby")),
    (b"/msg #lobby /not a command", Command("msg", b"/not a command", "#lobby")),
    (b"/join #rust", Command("join", target="#rust")),
    (b"/join  #Rust ", Command("join", target="#Rust")),
    (b"/join rust", Command("join", target="rust")),
    (b"/part", Command("part")),
    (b"/part #rust", Command("part", target="#rust")),
    (b"/part #rust see you later", Command("part", b"see you later", "#rust")),
    (b"/part see you later", Command("part", b"see you later")),
    (b"/topic", Command("topic")),
    (b"/topic #rust", Command("topic", target="#rust")),
    (b"/topic borrow checker questions", Command("topic", b"borrow checker questions")),
    (b"/topic #rust borrow checker questions", Command("topic", b"borrow checker questions", "#rust")),
    (b"/topic not #a room", Command("topic", b"not #a room")),
    (b"/rooms", Command("rooms")),
    (b"/rooms ignored", Command("rooms")),
    (b"/who #rust", Command("who", target="#rust")),
    (b"/who #rust ignored", Command("who", target="#rust")),
    # v3: history. The target and the rest; parse_history reads the rest.
    (b"/history #lobby", Command("history", b"", "#lobby")),
    (b"/history #lobby before 1042 2", Command("history", b"before 1042 2", "#lobby")),
    (b"/history  #Rust  after 7", Command("history", b" after 7", "#Rust")),  # parse_history splits it
    (b"/history bob 20", Command("history", b"20", "bob")),
    (b"/history lobby", Command("history", b"", "lobby")),  # not a room: a nick, checked later
    # v4: accounts. A password is the rest of the line, spaces and all.
    (b"/login alice correct horse battery", Command("login", b"correct horse battery", "alice")),
    (b"/login alice  leading space", Command("login", b" leading space", "alice")),
    (b"/register alice * correct horse", Command("register", b"correct horse", "alice", "*")),
    (b"/register alice K7Q2-XY correct horse", Command("register", b"correct horse", "alice", "K7Q2-XY")),
    (b"/resume Xy9-_abc", Command("resume", target="Xy9-_abc")),
    (b"/remember", Command("remember")),
    (b"/remember 7", Command("remember", b"7")),
    (b"/passwd new secret words", Command("passwd", b"new secret words")),
    (b"/logout", Command("logout")),
    (b"/logout all", Command("logout", b"all")),
    (b"//login alice pw", Command("say", b"/login alice pw")),
    # v5: room roles. The room is the target, a nickname or mask the option, a reason the text.
    (b"/room register #rust", Command("room", target="#rust", option="register")),
    (b"/room drop  #rust ", Command("room", target="#rust", option="drop")),
    (b"/room #rust", Command("room", target="#rust")),
    (b"/room #rust private on", Command("room", b"on", "#rust", "private")),
    (b"/room #rust  owner  bob", Command("room", b"bob", "#rust", "owner")),
    (b"/room #rust moderated", Command("room", target="#rust", option="moderated")),
    (b"/op #rust bob", Command("op", target="#rust", option="bob")),
    (b"/deop #rust bob", Command("deop", target="#rust", option="bob")),
    (b"/voice #rust bob", Command("voice", target="#rust", option="bob")),
    (b"/devoice  #rust  bob ", Command("devoice", target="#rust", option="bob")),
    (b"/kick #rust bob", Command("kick", target="#rust", option="bob")),
    (b"/kick #rust bob spamming  links", Command("kick", b"spamming  links", "#rust", "bob")),
    (b"/ban #rust account:bob trolling", Command("ban", b"trolling", "#rust", "account:bob")),
    (b"/ban #rust 2001:db8::/48", Command("ban", target="#rust", option="2001:db8::/48")),
    (b"/unban #rust 10.0.0.0/8", Command("unban", target="#rust", option="10.0.0.0/8")),
    (b"/bans #rust", Command("bans", target="#rust")),
    (b"/invite #rust bob", Command("invite", target="#rust", option="bob")),
    ("caf\u00e9 \U0001f600".encode(), Command("say", "caf\u00e9 \U0001f600".encode())),
    ("/me \U0001f44b".encode(), Command("me", "\U0001f44b".encode())),
]


@pytest.mark.parametrize(("raw", "command"), VALID_COMMANDS)
def test_parse_command(raw: bytes, command: Command) -> None:
    assert parse_command(raw) == command


def test_every_command_in_the_doc_table_is_covered() -> None:
    table = PROTOCOL_MD.read_text().split("### After registration", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"^\| `(/[a-z]+)", table, re.M))
    covered = {raw.split(b" ")[0].decode() for raw, _ in VALID_COMMANDS if raw.startswith(b"/")}
    assert documented, table
    assert documented <= covered


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"/me", protocol.MISSING_ARGUMENT),
        (b"/me ", protocol.MISSING_ARGUMENT),
        (b"/me   \t ", protocol.MISSING_ARGUMENT),
        (b"/msg", protocol.MISSING_ARGUMENT),
        (b"/msg ", protocol.MISSING_ARGUMENT),
        (b"/msg bob", protocol.MISSING_ARGUMENT),
        (b"/msg bob ", protocol.MISSING_ARGUMENT),
        (b"/msg bob    ", protocol.MISSING_ARGUMENT),
        (b"/nick", protocol.MISSING_ARGUMENT),
        (b"/nick   ", protocol.MISSING_ARGUMENT),
        (b"/msg #lobby", protocol.MISSING_ARGUMENT),
        (b"/msg #lobby ", protocol.MISSING_ARGUMENT),
        (b"/join", protocol.MISSING_ARGUMENT),
        (b"/join ", protocol.MISSING_ARGUMENT),
        (b"/join \t ", protocol.MISSING_ARGUMENT),
        (b"/history", protocol.MISSING_ARGUMENT),
        (b"/history ", protocol.MISSING_ARGUMENT),
        (b"/history   ", protocol.MISSING_ARGUMENT),
        (b"/login", protocol.MISSING_ARGUMENT),
        (b"/login alice", protocol.MISSING_ARGUMENT),
        (b"/login alice ", protocol.MISSING_ARGUMENT),
        (b"/register alice *", protocol.MISSING_ARGUMENT),
        (b"/register alice", protocol.MISSING_ARGUMENT),
        (b"/resume", protocol.MISSING_ARGUMENT),
        (b"/passwd", protocol.MISSING_ARGUMENT),
        (b"/room", protocol.MISSING_ARGUMENT),
        (b"/room  ", protocol.MISSING_ARGUMENT),
        (b"/room register", protocol.MISSING_ARGUMENT),
        (b"/room drop ", protocol.MISSING_ARGUMENT),
        (b"/op #rust", protocol.MISSING_ARGUMENT),
        (b"/op", protocol.MISSING_ARGUMENT),
        (b"/kick #rust ", protocol.MISSING_ARGUMENT),
        (b"/ban #rust", protocol.MISSING_ARGUMENT),
        (b"/unban #rust", protocol.MISSING_ARGUMENT),
        (b"/invite #rust", protocol.MISSING_ARGUMENT),
        (b"/bans", protocol.MISSING_ARGUMENT),
        (b"/Kick #rust bob", protocol.UNKNOWN_COMMAND),
        (b"/mode #rust +o bob", protocol.UNKNOWN_COMMAND),
        (b"/Login alice pw", protocol.UNKNOWN_COMMAND),
        (b"/History #lobby", protocol.UNKNOWN_COMMAND),
        (b"/JOIN #rust", protocol.UNKNOWN_COMMAND),
        (b"/Rooms", protocol.UNKNOWN_COMMAND),
        (b"/channels", protocol.UNKNOWN_COMMAND),
        (b"/foo", protocol.UNKNOWN_COMMAND),
        (b"/foo bar baz", protocol.UNKNOWN_COMMAND),
        (b"/", protocol.UNKNOWN_COMMAND),
        (b"/ hello", protocol.UNKNOWN_COMMAND),
        (b"/WHO", protocol.UNKNOWN_COMMAND),
        (b"/Me waves", protocol.UNKNOWN_COMMAND),
        (b"/QUIT", protocol.UNKNOWN_COMMAND),
        (b"/whois", protocol.UNKNOWN_COMMAND),
        (b"/me\twaves", protocol.UNKNOWN_COMMAND),  # arguments are separated by a space
        ("/caf\u00e9".encode(), protocol.UNKNOWN_COMMAND),
    ],
)
def test_parse_command_refuses(raw: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_command(raw)
    assert info.value.code == code
    assert info.value.text  # something for people, too


def test_unknown_command_text_names_the_command() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_command(b"/frobnicate now")
    assert "/frobnicate" in info.value.text


def test_help_lines_mention_every_command() -> None:
    help_text = "\n".join(protocol.HELP_LINES)
    for command in (
        "/me",
        "/msg",
        "/nick",
        "/who",
        "/ping",
        "/quit",
        "/help",
        "//",
        "/join",
        "/part",
        "/topic",
        "/rooms",
        "/history",
        "/room",
        "/op",
        "/deop",
        "/voice",
        "/devoice",
        "/kick",
        "/ban",
        "/unban",
        "/bans",
        "/invite",
    ):
        assert command in help_text


# -- parse_history ----------------------------------------------------------------------

# docs/protocol.md "History": `[before <id> | after <id>] [<limit>]`, limit 1 to 500, default 100.
PAGE_DEFAULT, PAGE_MAX = 100, 500


def test_page_limits_are_the_documents() -> None:
    assert (history.PAGE_DEFAULT, history.PAGE_MAX) == (PAGE_DEFAULT, PAGE_MAX)


@pytest.mark.parametrize(
    ("words", "query"),
    [
        (b"", HistoryQuery(None, None, PAGE_DEFAULT)),
        (b"2", HistoryQuery(None, None, 2)),
        (b"1", HistoryQuery(None, None, 1)),
        (b"500", HistoryQuery(None, None, 500)),
        (b"before 1042", HistoryQuery(1042, None, PAGE_DEFAULT)),
        (b"before 1042 2", HistoryQuery(1042, None, 2)),
        (b"after 7", HistoryQuery(None, 7, PAGE_DEFAULT)),
        (b"after 7 500", HistoryQuery(None, 7, 500)),
        (b"after 1", HistoryQuery(None, 1, PAGE_DEFAULT)),
        (b"  before   5   3  ", HistoryQuery(5, None, 3)),
    ],
)
def test_parse_history(words: bytes, query: HistoryQuery) -> None:
    assert parse_history(words, PAGE_DEFAULT, PAGE_MAX) == query


@pytest.mark.parametrize(
    ("words", "code"),
    [
        (b"before", protocol.MISSING_ARGUMENT),
        (b"after ", protocol.MISSING_ARGUMENT),
        (b"after -3", protocol.BAD_ARGUMENT),
        (b"before x", protocol.BAD_ARGUMENT),
        (b"before 1.5", protocol.BAD_ARGUMENT),
        (b"after 99999999999999999999999", protocol.BAD_ARGUMENT),
        (b"0", protocol.BAD_ARGUMENT),  # the limit is 1 to 500
        (b"501", protocol.BAD_ARGUMENT),
        (b"-1", protocol.BAD_ARGUMENT),
        (b"ten", protocol.BAD_ARGUMENT),
        (b"before 5 after 6", protocol.BAD_ARGUMENT),
        (b"after 5 10 more", protocol.BAD_ARGUMENT),
        (b"5 before 3", protocol.BAD_ARGUMENT),
        ("before \u0661".encode(), protocol.BAD_ARGUMENT),  # an Arabic-Indic digit is not an id
    ],
)
def test_parse_history_refuses(words: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_history(words, PAGE_DEFAULT, PAGE_MAX)
    assert info.value.code == code
    assert info.value.text


# The session hands parse_history the rest of a line that went through clean_line: UTF-8 text.
@given(
    st.one_of(
        st.text(max_size=40).map(str.encode),
        st.lists(st.sampled_from(["before", "after", "0", "1", "7", "500", "501", "-1", "x", "1e3"]), max_size=4).map(
            lambda words: " ".join(words).encode()
        ),
    )
)
def test_parse_history_of_anything_is_a_query_or_a_documented_error(words: bytes) -> None:
    try:
        query = parse_history(words, PAGE_DEFAULT, PAGE_MAX)
    except ProtocolError as error:
        assert error.code in DOCUMENTED_ERR_CODES
        assert error.code in {protocol.BAD_ARGUMENT, protocol.MISSING_ARGUMENT}
        return
    assert 1 <= query.limit <= PAGE_MAX
    assert query.before is None or query.after is None
    assert all(id_ is None or id_ >= 0 for id_ in (query.before, query.after))


_arbitrary_lines = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32).map(str.encode),
    st.tuples(
        st.sampled_from(
            [
                "",
                "/",
                "//",
                "/me",
                "/msg",
                "/nick",
                "/who",
                "/ping",
                "/quit",
                "/help",
                "/x",
                "/join",
                "/part",
                "/topic",
                "/rooms",
                "/msg #lobby",
                "/part #r",
                "/topic #",
                "/history",
                "/history #r",
                "/history bob",
                "/room",
                "/room register",
                "/op #r",
                "/kick #r",
                "/ban #r",
                "/bans",
            ]
        ),
        st.sampled_from(["", " ", "  ", "\t", "\r", " #", " #r "]),
        st.text(max_size=16),
    ).map(lambda t: "".join(t).encode()),
    st.tuples(st.just(b"/"), st.binary(max_size=16)).map(b"".join),
)


@given(_arbitrary_lines)
@example(b"/\xff")
@example("/nick \u00a0".encode())
@example(b"/msg \t x")
def test_parse_of_any_cleaned_line_is_a_command_or_a_documented_error(raw: bytes) -> None:
    try:
        command = parse_command(clean_line(raw))
    except ProtocolError as error:
        assert error.code in DOCUMENTED_ERR_CODES
        assert error.code in {protocol.BAD_ENCODING, protocol.UNKNOWN_COMMAND, protocol.MISSING_ARGUMENT}
        return
    assert isinstance(command, Command)
    assert command.verb in DOCUMENTED_VERBS
    command.text.decode("utf-8")  # text stays valid UTF-8
    if command.verb in ("part", "topic", "who") and command.target:
        assert is_room(command.target) and " " not in command.target  # the first word only


@given(st.text(max_size=40).filter(lambda s: not s.startswith("/")))
def test_plain_text_is_said_verbatim(text: str) -> None:
    raw = text.encode()
    try:
        cleaned = clean_line(raw)
    except ProtocolError:
        return
    assert parse_command(cleaned) == (Command("say", cleaned) if cleaned else Command("empty"))


# -- check_nick -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nick", ["a", "Z", "0", "_", "-", "alice", "Alice_Smith-2", "x" * 32, "___", "9lives", "-dash-"]
)
def test_check_nick_accepts(nick: str) -> None:
    assert check_nick(nick, 32) == nick


@pytest.mark.parametrize(
    "nick",
    [
        "",
        "x" * 33,
        "al ice",
        " alice",
        "alice ",
        "alice\n",
        "alice\t",
        "al.ice",
        "al@ice",
        "al/ice",
        "/alice",
        "al:ice",
        "caf\u00e9",
        "\u00c5ngstr\u00f6m",
        "\u0430lice",  # Cyrillic a
        "\u212a",  # Kelvin sign, lower() is "k"
        "\uff41",  # fullwidth a
        "\u0661",  # Arabic-Indic digit one
        "\U0001f600",
        "alice\u200b",  # zero-width space
    ],
)
def test_check_nick_refuses(nick: str) -> None:
    with pytest.raises(ProtocolError) as info:
        check_nick(nick, 32)
    assert info.value.code == protocol.NICK_INVALID
    assert "32" in info.value.text


@pytest.mark.parametrize(("length", "ok"), [(1, True), (5, True), (6, False)])
def test_check_nick_honours_max_length(length: int, ok: bool) -> None:
    if ok:
        assert check_nick("n" * length, 5) == "n" * length
    else:
        with pytest.raises(ProtocolError):
            check_nick("n" * length, 5)


@given(st.text(max_size=40))
def test_check_nick_agrees_with_the_documented_rule(nick: str) -> None:
    valid = 1 <= len(nick) <= 32 and all(c in "_-" or (c.isascii() and c.isalnum()) for c in nick)
    try:
        check_nick(nick, 32)
    except ProtocolError:
        assert not valid
    else:
        assert valid


def test_nick_key_is_case_insensitive() -> None:
    assert nick_key("Alice") == nick_key("ALICE") == nick_key("alice")
    assert nick_key("alice") != nick_key("alice_")


# -- the optional room of /part, /topic and /who ------------------------------------------


@pytest.mark.parametrize(
    ("rest", "room", "text"),
    [
        (b"", "", b""),
        (b"#r", "#r", b""),
        (b"#r text here", "#r", b"text here"),
        (b"#r   ", "#r", b""),
        (b"#r  two spaces  ", "#r", b"two spaces"),
        (b"text #r", "", b"text #r"),
        (b"  text  ", "", b"text"),
        (b"#", "#", b""),  # looks like a room: refused later as room_invalid
        (b"#not/a/room text", "#not/a/room", b"text"),
        ("#caf\u00e9 x".encode(), "#caf\u00e9", b"x"),
    ],
)
def test_optional_room_takes_a_first_word_that_starts_with_a_hash(rest: bytes, room: str, text: bytes) -> None:
    assert protocol._optional_room(rest) == (room, text)


@pytest.mark.parametrize(("verb", "rest"), [("part", b"#r bye"), ("topic", b"#r new topic"), ("who", b"#r")])
def test_part_topic_and_who_share_the_optional_room_rule(verb: str, rest: bytes) -> None:
    command = parse_command(b"/%s %s" % (verb.encode(), rest))
    room, text = protocol._optional_room(rest)
    assert command == Command(verb, b"" if verb == "who" else text, room)


# -- check_room, room_key -----------------------------------------------------------------


@pytest.mark.parametrize("room", ["#a", "#lobby", "#Lobby", "#a-b_c9", "#0", "#-", "#" + "x" * 32])
def test_check_room_accepts(room: str) -> None:
    assert check_room(room) == room


@pytest.mark.parametrize(
    "room",
    [
        "",
        "#",
        "lobby",
        "&lobby",
        "##lobby",
        "#" + "x" * 33,
        "#a b",
        " #a",
        "#a ",
        "#a\n",
        "#a.b",
        "#a,b",
        "#a:b",
        "#a/b",
        "#caf\u00e9",
        "#\u0430",  # Cyrillic a
        "#\U0001f600",
    ],
)
def test_check_room_refuses(room: str) -> None:
    with pytest.raises(ProtocolError) as info:
        check_room(room)
    assert info.value.code == protocol.ROOM_INVALID
    assert "32" in info.value.text


@given(st.text(max_size=40))
@example("#" + "a" * 32)
@example("#" + "a" * 33)
def test_check_room_agrees_with_the_documented_rule(name: str) -> None:
    rest = name[1:]
    valid = (
        name.startswith("#") and 1 <= len(rest) <= 32 and all(c in "_-" or (c.isascii() and c.isalnum()) for c in rest)
    )
    try:
        check_room(name)
    except ProtocolError:
        assert not valid
    else:
        assert valid


def test_room_key_is_case_insensitive() -> None:
    assert room_key("#Lobby") == room_key("#LOBBY") == room_key("#lobby") == "#lobby"
    assert room_key("#lobby") != room_key("#lobby_")


@pytest.mark.parametrize(("target", "room"), [("#lobby", True), ("#", True), ("lobby", False), ("", False)])
def test_is_room_looks_at_the_first_character(target: str, room: bool) -> None:
    assert is_room(target) is room


# -- formatting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "wire"),
    [
        (format_line("NICK"), b"NICK\n"),
        (format_line("WELCOME", "alice", "Welcome to chatd, alice!"), b"WELCOME alice Welcome to chatd, alice!\n"),
        (format_line("HELLO", "3", "chatd 0.3.0"), b"HELLO 3 chatd 0.3.0\n"),
        (format_line("HISTORY", "#lobby", "1", "end"), b"HISTORY #lobby 1 end\n"),
        (format_line("HISTORY", "#lobby", "2", "more"), b"HISTORY #lobby 2 more\n"),
        (format_line("HISTORY", "bob", "0", "end"), b"HISTORY bob 0 end\n"),
        (format_line("JOIN", "#lobby", "alice"), b"JOIN #lobby alice\n"),
        (format_line("PART", "#rust", "alice", ""), b"PART #rust alice\n"),
        (format_line("PART", "#rust", "alice", "see you later"), b"PART #rust alice see you later\n"),
        (format_line("TOPIC", "#rust", "*", ""), b"TOPIC #rust *\n"),
        (format_line("TOPIC", "#rust", "alice", "borrow checker"), b"TOPIC #rust alice borrow checker\n"),
        (format_line("CURRENT", "#rust"), b"CURRENT #rust\n"),
        (format_line("CURRENT", "*"), b"CURRENT *\n"),
        (format_line("ROOM", "#lobby", "2", ""), b"ROOM #lobby 2\n"),
        (format_line("ROOM", "#rust", "1", "borrow checker"), b"ROOM #rust 1 borrow checker\n"),
        (format_line("ROOMS", "2"), b"ROOMS 2\n"),
        (format_line("LEAVE", "alice", "quit"), b"LEAVE alice quit\n"),
        (format_line("LEAVE", "alice", "quit gone for lunch"), b"LEAVE alice quit gone for lunch\n"),
        (format_line("RENAME", "alice", "alicia"), b"RENAME alice alicia\n"),
        (format_line("PONG"), b"PONG\n"),
        (format_line("PONG", "tok"), b"PONG tok\n"),
        (format_line("INFO", "You are already alice."), b"INFO You are already alice.\n"),
        (format_line("BYE", "kicked spamming links"), b"BYE kicked spamming links\n"),
        (format_line("INFO", "caf\u00e9 \U0001f600"), "INFO caf\u00e9 \U0001f600\n".encode()),
        (
            event("msg", "#lobby", b"hello everyone"),
            b"@id=9;time=2026-12-01T18:04:05.123Z MSG #lobby alice hello everyone\n",
        ),
        (
            event("msg", "#lobby", b"/not a command"),
            b"@id=9;time=2026-12-01T18:04:05.123Z MSG #lobby alice /not a command\n",
        ),
        (event("action", "#Rust", b"waves"), b"@id=9;time=2026-12-01T18:04:05.123Z ACTION #Rust alice waves\n"),
        (
            format_error(ProtocolError("nick_taken", "The nickname bob is taken.")),
            b"ERR nick_taken The nickname bob is taken.\n",
        ),
        (format_users("#lobby", ["alice"]), b"USERS #lobby alice\n"),
        (format_users("#lobby", ["carol", "Bob", "alice", "Dave"]), b"USERS #lobby alice Bob carol Dave\n"),
        (format_users("#Rust", ["b_", "B", "a-", "A"]), b"USERS #Rust A a- B b_\n"),
    ],
)
def test_format_produces_the_documented_wire_line(line: bytes, wire: bytes) -> None:
    assert line == wire


def test_format_error_of_each_refusal_is_one_line() -> None:
    for raw in (b"/foo", b"/me", b"\xff"):
        with pytest.raises(ProtocolError) as info:
            parse_command(clean_line(raw))
        line = format_error(info.value)
        assert line.startswith(b"ERR " + info.value.code.encode() + b" ")
        assert line.endswith(b"\n") and line.count(b"\n") == 1


@pytest.mark.parametrize("verb", ["part", "topic", "who"])
def test_an_optional_room_after_extra_spaces_is_still_the_room(verb: str) -> None:
    command = parse_command(f"/{verb}   #rust  some words ".encode())
    assert command.target == "#rust"
    assert command.text == (b"" if verb == "who" else b"some words")


# -- the grammar: one row per slash command -----------------------------------------------


def test_help_lists_the_grammar_in_its_order() -> None:
    assert protocol.HELP_LINES[2:] == tuple(syntax.help for syntax in protocol.GRAMMAR.values())
    for verb, syntax in protocol.GRAMMAR.items():
        assert syntax.form.startswith(f"/{verb}"), verb


@pytest.mark.parametrize(
    ("raw", "verb"),
    [
        (b"/quit", "quit"),
        (b"/quit see you", "quit"),
        (b"/join #rust", "join"),
        (b"/msg", "msg"),  # named, even with its arguments missing
        (b"/quitx", None),
        (b"/quit\tnow", None),  # arguments are separated by a space
        (b"/QUIT", None),
        (b"//quit", None),
        (b"/", None),
        (b"alice", None),
        (b"", None),
    ],
)
def test_command_verb_names_a_slash_command_of_the_grammar_or_none(raw: bytes, verb: str | None) -> None:
    assert protocol.command_verb(raw) == verb
