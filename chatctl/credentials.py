"""Where chatctl's secrets come from and where they are kept: passwords asked
on a terminal without echo, read from stdin or from a file only its owner
can read, and the tokens of `chatctl connect --login` in 0600 files.

Passwords are never taken from the command line (they would show in `ps` and
in the shell's history). The operator's commands (chatctl/accounts.py) hash
them before anything leaves chatctl; `connect --login` sends them to the
server, over TLS, in its `/login` line. What to do with them is not here:
this module reads, checks and stores, and says what is wrong in a
`CredentialError` for the user.

Tokens live in `$XDG_CONFIG_HOME/chatctl/tokens/` (else
`~/.config/chatctl/tokens/`), a directory made 0700, one file per account and
server (`alice@chat.example.org:7443`), created 0600 with `os.open` and
replaced atomically. A file that others could read is refused, as a password
file is: its secret may have leaked, and chatctl will not use it unnoticed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import getpass
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from chatctl.signin import SignIn
from chatd.config_accounts import PASSWORD_MAX_BYTES  # docs/protocol.md, "Accounts"

_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


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


def config_dir() -> Path:
    """chatctl's directory in the user's configuration (XDG Base Directory)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "chatctl"


class TokenFile:
    """The token kept for one account on one server, in its 0600 file."""

    def __init__(self, server: str, account: str, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else config_dir() / "tokens"
        # Account names ignore case (docs/protocol.md); '/' cannot be in a host or a port.
        self.path = self.directory / f"{account.lower()}@{server.lower()}".replace("/", "_")

    def load(self) -> str | None:
        """The kept token; None when there is none or it has expired (its file is then removed).

        Raises:
            CredentialError: a file others could read, or not a token.
        """
        try:
            with open(self.path, encoding="utf-8") as stream:
                check_private(self.path, os.fstat(stream.fileno()), "the token file")
                token, _, expires = stream.readline().strip().partition(" ")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialError(f"cannot read the token file {self.path}: {exc}; remove it") from exc
        if not token or not set(token) <= _TOKEN_CHARS:
            raise CredentialError(f"the token file {self.path} holds no token; remove it")
        if _expired(expires):
            self.remove()
            return None
        return token

    def save(self, token: str, expires: str) -> None:
        """Keep `token`: a new 0600 file, then renamed over the old one.

        Raises:
            CredentialError: the directory or the file cannot be written.
        """
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            # chatctl's own directories 0700 (mkdir's parents=True would make them 0755).
            self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.mkdir(mode=0o700, exist_ok=True)
            info = self.directory.stat()
            if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.getuid():
                os.chmod(self.directory, 0o700)  # ours, and made by someone else's umask
            temporary.unlink(missing_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(f"{token} {expires}\n")
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise CredentialError(f"cannot keep the token in {self.path}: {exc.strerror or exc}") from exc

    def remove(self) -> bool:
        """Forget the kept token; whether there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise CredentialError(f"cannot remove the token file {self.path}: {exc.strerror or exc}") from exc
        return True


def _expired(expires: str) -> bool:
    try:
        when = datetime.datetime.fromisoformat(expires)
    except ValueError:
        return False  # no date we understand: the server will say whether it is still good
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when <= datetime.datetime.now(datetime.UTC)


@dataclass
class Login:
    """`chatctl connect --login` (or `--register`): the `SignIn` the session
    follows, the file its token is kept in, and the file its password comes
    from (script mode), for the front ends (chatctl/script.py,
    chatctl/interactive.py)."""

    signin: SignIn
    tokens: TokenFile
    password_file: Path | None = None

    def keep(self, token: str | None, expires: str) -> str:
        """Keep `token` (None: remove the kept one); returns a sentence for the user.

        Raises:
            CredentialError: the file cannot be written or removed.
        """
        if token is None:
            if self.tokens.remove():
                return f"the token kept in {self.tokens.path} is removed"
            return ""
        self.tokens.save(token, expires)
        return f"signed in as {self.signin.account}; reconnecting uses a token kept in {self.tokens.path}"
