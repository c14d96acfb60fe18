"""chatd/origin.py: an origin is `http(s)://host[:port]` and nothing else,
compared as one key however it is spelled."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.origin import origin_or_none, parse_origin


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("https://chat.example.org", "https://chat.example.org"),
        ("HTTPS://Chat.Example.ORG:443", "https://chat.example.org"),
        ("http://example.org:80", "http://example.org"),
        ("http://example.org:443", "http://example.org:443"),
        ("https://localhost:7443", "https://localhost:7443"),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
        ("https://[::1]:7443", "https://[::1]:7443"),
        ("https://[0:0:0:0:0:0:0:1]", "https://[::1]"),
        ("https://[2001:DB8::1]:443", "https://[2001:db8::1]"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
        ("https://my_host.internal", "https://my_host.internal"),
    ],
)
def test_origins_and_their_keys(text: str, key: str) -> None:
    assert parse_origin(text) == key
    assert origin_or_none(text) == key


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # userinfo, a path, a query, a fragment: more than an origin
        ("https://evil.example@localhost:7443", "has more than scheme, host and port"),
        ("https://user:pw@localhost", "has more than scheme, host and port"),
        ("https://@localhost", "has more than scheme, host and port"),
        ("https://localhost/", "has more than scheme, host and port"),
        ("https://localhost:7443/chat", "has more than scheme, host and port"),
        ("https://localhost?x", "has more than scheme, host and port"),
        ("https://localhost#x", "has more than scheme, host and port"),
        ("https://localhost\\@evil.example", "has more than scheme, host and port"),
        # not an origin at all
        ("null", "is not an origin"),
        ("", "is not an origin"),
        ("ftp://example.org", "is not an origin"),
        ("https://", "is not an origin"),
        ("https:example.org", "is not an origin"),
        ("//example.org", "is not an origin"),
        ("https://exa mple.org", "is not an origin"),
        ("https://a https://b", "has more than scheme, host and port"),
        ("https://example.org:", "is not an origin"),
        ("https://example.org:0", "the port must be 1-65535"),
        ("https://example.org:99999", "the port must be 1-65535"),
        ("https://example.org:123456", "is not an origin"),
        ("https://example.org:+80", "is not an origin"),
        ("https://[::1", "is not an origin"),
        ("https://[1.2.3.4]", "not an IPv6 address"),
        ("https://::1", "is not an origin"),
        ("https://bücher.example", "is not an origin"),
        ("https://example.org\r\n", "is not an origin"),
        ("https://.example.org", "is not an origin"),
    ],
)
def test_what_is_not_exactly_an_origin(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("(", r"\(")):
        parse_origin(text)
    assert origin_or_none(text) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_an_origin_or_refused(text: str) -> None:
    key = origin_or_none(text)
    if key is not None:
        assert parse_origin(key) == key  # a key is an origin, and its own key
        assert not any(mark in key.partition("://")[2] for mark in "@/?#")
