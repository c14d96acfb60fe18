"""Logging: the single `structlog.configure()` call, made once at start-up.

Events go to stderr, one per line: JSON for machines (`format: json`, or
`auto` when stderr is not a terminal, e.g. under journald) or the console
renderer for people. Reloading the config calls `configure_logging` again.

A crash event (`session_crashed` and the like) carries the exception and its
stack, and never the stack's local variables: both renderers would show them
by default (structlog's `dict_tracebacks` always, the console renderer when
rich or better-exceptions is installed), and on the message path the locals
are users' messages and DMs, which chatd never logs.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from chatd.config import LogConfig


def configure_logging(cfg: LogConfig, stream: TextIO | None = None) -> None:
    """Apply `cfg`. Loggers are not cached, so a reload changes level and format live."""
    stream = stream or sys.stderr
    use_json = cfg.format == "json" or (cfg.format == "auto" and not stream.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_json:
        tracebacks = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        processors += [tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors += [
            structlog.dev.ConsoleRenderer(colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback)
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[cfg.level.upper()]),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
