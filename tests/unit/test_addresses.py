"""chatd/addresses.py: host:port written one way everywhere, and read back."""

from __future__ import annotations

import pytest

from chatd.addresses import format_host_port, split_host_port


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [
        ("127.0.0.1", 9464, "127.0.0.1:9464"),
        ("::1", 7443, "[::1]:7443"),
        ("2001:db8::5", 0, "[2001:db8::5]:0"),
        ("metrics.example.org", 80, "metrics.example.org:80"),
    ],
)
def test_an_address_is_written_one_way_and_read_back(host: str, port: int, text: str) -> None:
    assert format_host_port(host, port) == text
    assert split_host_port(text) == (host, port)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("::1:9464", "an IPv6 address goes in brackets"),
        ("[nope]:9464", "'nope' in brackets is not an IPv6 address"),
        ("300.1.1.1:9464", "'300.1.1.1' is not an IPv4 address"),
        ("127.0.0.1:65536", "the port must be 0..65535"),
        ("9464", "must be host:port or [IPv6]:port"),
    ],
)
def test_what_is_not_an_address_says_what_is_expected(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("[", r"\[").replace(".", r"\.")):
        split_host_port(text)
