"""The web transport's pure parts: server text frames and where a write may
cut them, the static files and their conditional answers, and the `web`
config section. (The ClientHello's ALPN: test_clienthello.py.)"""

from __future__ import annotations

import email.utils
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import CLIENT, SERVER, Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from chatd.config import load_config
from chatd.errors import ConfigError
from chatd.transport.wsframes import TextFrames, encode_text_frames, frame_end, read_text_frames
from chatd.web.files import HEADERS, STATIC, StaticFiles, http_date_seconds


@pytest.mark.parametrize(
    "lines", [[b"HELLO 3 chatd"], [b"", b"a" * 125, b"b" * 126, b"c" * 65535, b"d" * 65536], ["é €".encode() * 50]]
)
def test_text_frames_are_what_a_client_reads(lines: list[bytes]) -> None:
    framed = encode_text_frames(b"".join(line + b"\n" for line in lines))
    client = Connection(CLIENT)
    client.receive_data(framed)
    messages = [event.data for event in client.events() if isinstance(event, TextMessage)]
    assert messages == [line.decode() for line in lines]
    ends = []
    at = 0
    while at < len(framed):
        at = frame_end(framed, at)
        ends.append(at)
    assert at == len(framed) and len(ends) == len(lines)


def test_a_block_is_framed_once_for_all_its_recipients() -> None:
    frames = TextFrames()
    block = b"MSG #lobby alice hi\nMSG #lobby alice again\n"
    first = frames.frame(block)
    assert frames.frame(block) is first
    other = b"MSG #lobby alice hi\nMSG #lobby alice again\n"[:]
    assert frames.frame(bytes(bytearray(other))) == first  # equal content, another object: framed anew


def test_static_files_answers(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "app.js").write_text("export {}")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "logo.svg").write_text("<svg/>")
    (tmp_path / ".hidden").write_text("secret")
    files = StaticFiles.load(tmp_path)
    assert len(files) == 3
    index = files.answer("GET", "/", None, None)
    assert index.status == 200 and index.body == b"<!doctype html>"
    headers = dict(index.headers)
    assert headers[b"Content-Type"] == b"text/html; charset=utf-8"
    assert headers[b"Cache-Control"] == b"no-cache"
    assert dict(files.answer("GET", "/app.js", None, None).headers)[b"Content-Type"].startswith(b"text/javascript")
    assert files.answer("GET", "/img/logo.svg", None, None).status == 200
    for path in ("/.hidden", "/img", "/nope", "/index.html/"):
        assert files.answer("GET", path, None, None).status == 404, path
    etag = headers[b"ETag"]
    assert files.answer("GET", "/", etag, None).status == 304
    assert files.answer("GET", "/", b'"x", ' + etag, None).status == 304
    assert files.answer("GET", "/", b"W/" + etag, None).status == 304
    assert files.answer("GET", "/", b'"x"', headers[b"Last-Modified"]).status == 200  # If-None-Match decides
    assert files.answer("GET", "/", None, headers[b"Last-Modified"]).status == 304
    earlier = email.utils.formatdate(0, usegmt=True).encode()
    assert files.answer("GET", "/", None, earlier).status == 200
    assert files.answer("GET", "/", None, b"yesterday").status == 200
    # A date email.utils cannot turn into a time is no date: the condition is ignored.
    for date in (
        b"Mon, 01 Jan 2020 00:00:00 +99999999999999999999",
        b"Mon, 01 Jan 99999999 00:00:00 GMT",
        b"Sun, 06 Nov 1994 08:49:37 +2400",
        b"\xff\xfe",
    ):
        assert files.answer("GET", "/", None, date).status == 200, date


def test_http_dates() -> None:
    assert http_date_seconds(b"Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert http_date_seconds(b"Sun, 06 Nov 1994 08:49:37 -0000") == 784111777  # no zone: GMT
    assert http_date_seconds(b"Sun, 06 Nov 1994 10:49:37 +0200") == 784111777
    assert http_date_seconds(b"Mon, 01 Jan 2020 00:00:00 +99999999999999999999") is None


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=60),
        st.from_regex(
            rb"\A(Mon, )?[0-9]{1,12} (Jan|Feb|Xyz) [0-9]{1,12} [0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3})? ([+-][0-9]{1,24}|GMT|[A-Z]{1,4})\Z"
        ),
    )
)
def test_any_if_modified_since_is_a_time_or_none(value: bytes) -> None:
    seconds = http_date_seconds(value)
    assert seconds is None or isinstance(seconds, float)


def test_the_packaged_files_have_an_index() -> None:
    assert StaticFiles.load(STATIC).answer("GET", "/", None, None).status == 200
    names = {name for name, _ in HEADERS}
    assert names == {b"Content-Security-Policy", b"X-Content-Type-Options", b"Referrer-Policy"}


def _config(tmp_path: Path, web: str) -> Path:
    for name in ("server.crt", "server.key"):
        (tmp_path / name).write_text("dummy")
    path = tmp_path / "chatd.yaml"
    path.write_text(f"tls: {{cert: server.crt, key: server.key}}\nweb: {web}\n")
    return path


def test_web_config(tmp_path: Path) -> None:
    config = load_config(
        _config(tmp_path, "{enabled: false, allowed_origins: ['https://Chat.Example.org:443/', 'http://[::1]:8080']}")
    )
    assert config.web.enabled is False
    assert config.web.allowed_origins == ("https://chat.example.org", "http://[::1]:8080")
    assert load_config(_config(tmp_path, "{}")).web.enabled is True


@pytest.mark.parametrize(
    ("web", "error"),
    [
        ("{enabled: yes please}", "web.enabled: must be true or false"),
        ("{allowed_origins: https://x}", "web.allowed_origins: must be a list of origins"),
        ("{allowed_origins: ['ftp://x']}", "web.allowed_origins: 'ftp://x' is not an origin"),
        ("{allowed_origins: ['https://x/chat']}", "web.allowed_origins: 'https://x/chat' has more than"),
        ("{allowed_origins: ['https://me@x']}", "web.allowed_origins: 'https://me@x' has more than"),
        ("{allowed_origins: ['https://x:99999']}", "web.allowed_origins: 'https://x:99999' is not an origin"),
        ("{origins: []}", "web.origins: unknown key (known: enabled, allowed_origins)"),
    ],
)
def test_web_config_errors(tmp_path: Path, web: str, error: str) -> None:
    with pytest.raises(ConfigError, match=f": {error}".replace("(", r"\(").replace(")", r"\)")):
        load_config(_config(tmp_path, web))


@pytest.mark.parametrize("texts", [["hi"], ["", "a" * 125, "b" * 126, "é" * 300], ["x" * 4096]])
def test_read_text_frames_reads_what_a_browser_sends(texts: list[str]) -> None:
    client = Connection(CLIENT)
    data = b"".join(client.send(TextMessage(text)) for text in texts)
    payloads, taken, partial = read_text_frames(data, 4096)
    assert [p.decode() for p in payloads] == texts and taken == len(data) and not partial
    for cut in range(1, len(data)):  # however the bytes are cut, nothing is lost or doubled
        first, at, waiting = read_text_frames(data[:cut], 4096)
        rest, _, _ = read_text_frames(data[at:], 4096)
        assert waiting == (at < cut)  # the rest is the start of a text frame
        assert [p.decode() for p in first + rest] == texts


@pytest.mark.parametrize(
    "frame",
    [
        Connection(CLIENT).send(Ping(b"x")),  # control frames
        Connection(CLIENT).send(BytesMessage(b"binary")),
        Connection(CLIENT).send(TextMessage("part", message_finished=False)),  # a fragment
        b"\x81\x05hello",  # unmasked
        Connection(CLIENT).send(TextMessage("y" * 5000)),  # over the limit
        b"\x81\x82\x00\x00\x00\x00\xff\xfe",  # not UTF-8
        b"\x81\xfe\x00\x05\x00\x00\x00\x00hello",  # a length in 2 bytes that fits in 7
        b"\x81\xff" + (5).to_bytes(8, "big") + b"\x00\x00\x00\x00hello",  # ... or in 8
    ],
)
def test_read_text_frames_leaves_anything_else_to_wsproto(frame: bytes) -> None:
    hello = Connection(CLIENT).send(TextMessage("hello"))
    payloads, taken, partial = read_text_frames(hello + frame + hello, 4096)
    assert payloads == [b"hello"] and taken == len(hello) and not partial


@pytest.mark.parametrize(
    "frame",
    [
        b"\x81\xfe\x00\x05\x00\x00\x00\x00hello",
        b"\x81\xfe\x00\x7d\x00\x00\x00\x00" + b"x" * 125,
        b"\x81\xff" + (65535).to_bytes(8, "big") + b"\x00\x00\x00\x00" + b"x" * 65535,
    ],
)
def test_a_length_in_more_bytes_than_it_needs_is_what_wsproto_refuses(frame: bytes) -> None:
    """read_text_frames is as strict as wsproto, which it hands such frames to."""
    assert read_text_frames(frame, 1 << 20) == ([], 0, False)
    server = Connection(SERVER)
    server.receive_data(frame)
    events = list(server.events())
    assert len(events) == 1 and isinstance(events[0], CloseConnection) and events[0].code == 1002
