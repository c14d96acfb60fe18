"""Exceptions shared across chatd. Imports nothing from chatd."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem, worded for the operator: file, key, expectation."""


class StartupError(Exception):
    """The daemon cannot start for a reason outside the config file (e.g. port in use)."""


class ProtocolError(Exception):
    """A client line that is refused with `ERR <code> <text>`."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
