"""chatd/cli.py: the descriptor limit raised for `limits.max_clients` at start."""

from __future__ import annotations

import resource

import pytest
from structlog.testing import capture_logs

from chatd import cli


class Limits:
    def __init__(self, soft: int, hard: int) -> None:
        self.soft, self.hard = soft, hard

    def get(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    refused = False

    def set(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE and limits[1] == self.hard
        if self.refused:
            raise PermissionError(1, "Operation not permitted")
        self.soft = limits[0]


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Limits:
    fake = Limits(1024, 1048576)  # a Debian login shell's
    monkeypatch.setattr(cli.resource, "getrlimit", fake.get)
    monkeypatch.setattr(cli.resource, "setrlimit", fake.set)
    return fake


def test_the_soft_limit_is_raised_to_what_max_clients_needs(limits: Limits) -> None:
    with capture_logs() as logs:
        cli.raise_descriptor_limit(10000)
    assert limits.soft == 10000 + cli.DESCRIPTOR_RESERVE
    assert logs == []


def test_a_limit_already_high_enough_stays(limits: Limits) -> None:
    limits.soft = 65536
    cli.raise_descriptor_limit(10000)
    assert limits.soft == 65536


def test_a_hard_limit_too_low_is_used_and_reported(limits: Limits) -> None:
    limits.hard = 4096
    with capture_logs() as logs:
        cli.raise_descriptor_limit(10000)
    assert limits.soft == 4096
    assert [(e["event"], e["log_level"], e["limit"], e["max_clients"]) for e in logs] == [
        ("descriptor_limit_low", "warning", 4096, 10000)
    ]


def test_a_refused_raise_keeps_the_limit_and_is_reported(limits: Limits) -> None:
    """Under systemd/chatd.service's SystemCallFilter setrlimit fails with EPERM:
    chatd starts all the same and says what to raise."""
    limits.refused = True
    with capture_logs() as logs:
        cli.raise_descriptor_limit(100000)
    assert limits.soft == 1024
    assert [(e["event"], e["limit"]) for e in logs] == [("descriptor_limit_low", 1024)]
