"""chatd/log.py: what the two renderers write, above all for a crash."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Literal

import pytest
import structlog

from chatd.config import LogConfig
from chatd.log import configure_logging

SECRET = "the password is swordfish"


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _crash(stream: io.StringIO, fmt: Literal["json", "console"]) -> str:
    configure_logging(LogConfig(level="info", format=fmt), stream)
    log = structlog.get_logger("test")

    def on_message(text: str) -> None:
        words = text.split()  # locals that hold a user's message, as on the message path
        raise RuntimeError(f"a bug after {len(words)} words")

    try:
        on_message(SECRET)
    except RuntimeError:
        log.exception("session_crashed", session=7)
    return stream.getvalue()


def test_a_json_crash_event_has_the_stack_but_no_locals() -> None:
    # Issue 19: dict_tracebacks kept every frame's locals, users' messages among them.
    event = json.loads(_crash(io.StringIO(), "json"))
    assert event["event"] == "session_crashed" and event["session"] == 7
    [exception] = event["exception"]
    assert (exception["exc_type"], exception["exc_value"]) == ("RuntimeError", "a bug after 4 words")
    assert [frame["name"] for frame in exception["frames"]][-2:] == ["_crash", "on_message"]
    assert all("locals" not in frame for frame in exception["frames"])
    assert "swordfish" not in json.dumps(event)


def test_a_console_crash_event_has_the_stack_but_no_locals() -> None:
    text = _crash(io.StringIO(), "console")
    assert "session_crashed" in text and "Traceback (most recent call last)" in text
    assert "in on_message" in text and "RuntimeError: a bug after 4 words" in text
    assert "swordfish" not in text


def test_the_console_renderer_is_told_to_leave_locals_out() -> None:
    # Its default shows locals whenever rich or better-exceptions is installed.
    configure_logging(LogConfig(level="info", format="console"), io.StringIO())
    [renderer] = [p for p in structlog.get_config()["processors"] if isinstance(p, structlog.dev.ConsoleRenderer)]
    assert renderer.exception_formatter is structlog.dev.plain_traceback
