"""Where chatctl's secrets come from: passwords asked on a terminal without
echo, read from stdin or from a file only its owner can read.

Passwords are never taken from the command line (they would show in `ps` and
in the shell's history). The operator's commands (chatctl/accounts.py) hash
them before anything leaves chatctl; `connect --login` sends them to the
server, over TLS, in its `/login` line. What to do with them is not here:
this module reads, checks and stores, and says what is wrong in a
`CredentialError` for the user.
"""

from __future__ import annotations

import argparse
import getpass
import os
import stat
import sys
from pathlib import Path
from typing import Any, TextIO

from chatd.config_accounts import PASSWORD_MAX_BYTES  # docs/protocol.md, "Accounts"


class CredentialError(Exception):
    """A password or token that cannot be had or used; the text says what to do."""


def refuse_password_option(parser: argparse.ArgumentParser, instead: str) -> None:
    """A hidden `--password` that is refused with a sentence (`instead`: what
    to do). Without it, argparse would take `--password X` for an
    abbreviation of a longer option (`--password-file X`) or call it
    unrecognized."""

    class Refuse(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
            parser.error(
                "a password is never taken from the command line (it would show in `ps` and in the "
                f"shell's history); {instead}"
            )

    parser.add_argument("--password", nargs="?", action=Refuse, help=argparse.SUPPRESS)


def ask_password(prompt: str, confirm: bool = False) -> str:
    """Ask on the terminal without echo (twice with `confirm`).

    Raises:
        CredentialError: no terminal to ask on, an empty password, or two that differ.
    """
    if not (sys.stdin.isatty() and _has_terminal()):
        raise CredentialError("there is no terminal to ask for the password on")
    password = getpass.getpass(prompt)
    if not password:
        raise CredentialError("the password is empty")
    if confirm and getpass.getpass("the same password again: ") != password:
        raise CredentialError("the two passwords differ; nothing was changed")
    return password


def _has_terminal() -> bool:
    try:
        with open("/dev/tty", "rb"):  # getpass reads there, not from stdin
            return True
    except OSError:
        return False


def read_password_line(stream: TextIO, what: str) -> str:
    """The first line of `stream`, without its line ending: a password.

    Raises:
        CredentialError: nothing there, or an empty line.
    """
    line = stream.readline()
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise CredentialError(f"{what} holds no password (an empty first line, or nothing)")
    return password


def read_password_file(path: Path) -> str:
    """The password in the first line of `path`, a file only its owner can read.

    Raises:
        CredentialError: unreadable, readable by others, or empty.
    """
    try:
        check_private(path, path.stat(), "--password-file")  # before opening: a FIFO would block
        with open(path, encoding="utf-8") as stream:
            return read_password_line(stream, f"--password-file {path}")
    except OSError as exc:
        raise CredentialError(f"cannot read --password-file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CredentialError(f"--password-file {path} is not UTF-8 text") from exc


def check_private(path: Path, info: os.stat_result, what: str) -> None:
    """Refuse a file that someone other than its owner may read, or that is not ours.

    Raises:
        CredentialError: saying how to fix it.
    """
    if not stat.S_ISREG(info.st_mode):
        raise CredentialError(f"{what} {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise CredentialError(
            f"{what} {path} can be read by others (mode {mode:04o}); "
            f"run `chmod 600 {path}` (and change the secret if others may have read it)"
        )
    if info.st_uid != os.getuid():
        raise CredentialError(f"{what} {path} belongs to uid {info.st_uid}, not to you; use a file of your own")


def check_password(password: str, min_length: int) -> None:
    """The server's rules for a password (docs/protocol.md "Accounts"), which it
    cannot check itself when it only sees the hash.

    Raises:
        CredentialError: too short or too long.
    """
    if len(password) < min_length:
        raise CredentialError(f"the password is shorter than {min_length} characters (accounts.password_min_length)")
    if len(password.encode("utf-8", "surrogateescape")) > PASSWORD_MAX_BYTES:
        raise CredentialError(f"the password is longer than {PASSWORD_MAX_BYTES} bytes")
