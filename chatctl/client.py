"""`chatctl connect`: the terminal client's arguments, and its script mode.

`run()` parses what `add_arguments()` declared, opens the verified TLS
connection (chatctl/connection.py) and hands it to one of the two modes:
`ScriptSession` here (`--raw`, or stdin not a terminal), or the terminal UI
of chatctl/interactive.py, which is imported only when it runs because every
chatctl subcommand imports this module to build its parser and
prompt_toolkit is slow to import. Both modes keep what the server told them
in a `ClientState` (chatctl/state.py).

# NOTE: one thread owns the SSL socket in both modes (docs/architecture.md,
# openssl/openssl#20446). Script mode is one thread with a selector over the
# socket and stdin. Never add a reader or writer thread here.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import selectors
import sys
import time
from typing import BinaryIO, Final

from chatctl.connection import (
    QUIT_TIMEOUT,
    READ_SIZE,
    Address,
    ClientError,
    Exit,
    LineChannel,
    Outcome,
    bye_outcome,
    client_context,
    dropped_outcome,
    open_connection,
)
from chatctl.render import sanitize
from chatctl.state import ClientState, split_line

DEFAULT_PORT: Final = 7443
DEFAULT_TIMEOUT: Final = 10.0
STDIN_HIGH_WATER: Final = 256 * 1024  # stop reading stdin while this much waits to be sent
_NICK = re.compile(r"[A-Za-z0-9_-]+")  # docs/protocol.md; the length limit is the server's


EPILOG: Final = """\
exit status:
    0  the session ended normally (/quit, Ctrl-D, end of input)
    1  an unexpected error
    2  bad arguments or unusable certificate files
    3  the server could not be reached (refused, unreachable, timed out)
    4  TLS verification failed (server certificate not trusted or for
       another name, or the server refused our client certificate)
    5  not a TLS server, or the TLS handshake failed (wrong port?)
    6  nickname refused (taken or invalid; in script mode)
    7  the server dropped the connection (kicked, shutdown, ...)
  130  interrupted (Ctrl-C in script mode)

Interactive mode when stdin and stdout are terminals; script mode otherwise,
or with --raw: stdin lines are sent, server lines are printed as they are
(with control characters made visible when stdout is a terminal).
Interactive keys: Ctrl-N/Ctrl-P switch rooms, Tab completes nicknames and
rooms; /help lists them. See docs/client.md.
"""


def parse_address(text: str) -> Address:
    """`HOST[:PORT]`, `[IPv6][:PORT]` or a bare IPv6 address; the port defaults to 7443.

    Raises:
        ValueError: with a message fit for argparse.
    """
    host, port_text = text, ""
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPV6]:PORT")
        port_text = after[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif text.count(":") > 1:
        try:
            ipaddress.IPv6Address(text)  # bare IPv6, no port
        except ValueError:
            raise ValueError(f"{text!r}: write IPv6 addresses with a port as [ADDRESS]:PORT") from None
    if not host:
        raise ValueError(f"{text!r}: the host is missing")
    if port_text == "" and text.endswith(":"):
        raise ValueError(f"{text!r}: the port is missing")
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{text!r}: the port must be a number 1-65535")
        return Address(host, int(port_text))
    return Address(host, DEFAULT_PORT)


def _address_arg(text: str) -> Address:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _timeout_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0-3600 (got {text!r})")
    return value


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Add `chatctl connect`'s options to its subparser (called by chatctl/cli.py)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "address", type=_address_arg, metavar="HOST[:PORT]",
        help=f"the chatd server; the port defaults to {DEFAULT_PORT}; IPv6 as [::1]:{DEFAULT_PORT}",
    )
    parser.add_argument(
        "--nick", help="your nickname (required in script mode; asked for when interactive)"
    )
    parser.add_argument(
        "--ca", metavar="FILE",
        help="CA certificate(s) to verify the server with (default: the system's trust store)",
    )
    parser.add_argument("--cert", metavar="FILE", help="client certificate (PEM), if the server asks for one")
    parser.add_argument("--key", metavar="FILE", help="the client certificate's private key (PEM)")
    parser.add_argument(
        "--raw", action="store_true",
        help="script mode even on a terminal: send stdin lines, print server lines verbatim",
    )
    parser.add_argument(
        "--timeout", type=_timeout_arg, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"limit for connecting and for the TLS handshake (default {DEFAULT_TIMEOUT:g})",
    )


def run(args: argparse.Namespace) -> int:
    """Run `chatctl connect`; returns the exit status."""
    interactive = not args.raw and sys.stdin.isatty() and sys.stdout.isatty()
    try:
        nick = _check_nick(args.nick, required=not interactive)
        context = client_context(args.ca, args.cert, args.key)
        sock = open_connection(args.address, context, args.timeout)
        if interactive:
            from chatctl.interactive import run_interactive  # prompt_toolkit only when needed

            return run_interactive(sock, nick)
        return ScriptSession(LineChannel(sock), nick or "").run()
    except ClientError as exc:
        _error(exc.message)
        return int(exc.status)


def _error(message: str) -> None:
    sys.stderr.write(f"chatctl: {message}\n")
    sys.stderr.flush()


def _check_nick(nick: str | None, required: bool) -> str | None:
    if nick is None:
        if required:
            raise ClientError(Exit.USAGE, "--nick is required when stdin is not a terminal (or with --raw)")
        return None
    if not _NICK.fullmatch(nick):
        raise ClientError(
            Exit.USAGE, f"--nick {nick!r}: nicknames are letters, digits, _ and - only"
        )
    return nick


class ScriptSession:
    """Script mode: stdin lines out, server lines verbatim to stdout, one thread.

    One selector watches the socket and stdin (fd 0, read with `os.read`).
    Registration is automatic: the nickname is sent when `NICK` arrives (after
    `HELLO` from a v2 server, first from a v1 server), and stdin is read only
    after `WELCOME`, so no input line is mistaken for a nickname. A second
    `NICK` means the nickname was refused: exit 6. At end of input `/quit` is
    sent and the session ends at the server's `BYE`.
    """

    def __init__(
        self,
        channel: LineChannel,
        nick: str,
        stdin_fd: int = 0,
        stdout: BinaryIO | None = None,
    ) -> None:
        self.channel = channel
        self.nick = nick  # the one asked for; the server's answer is in state
        self.stdin_fd = stdin_fd
        self.stdout = stdout if stdout is not None else sys.stdout.buffer
        self._sanitize_output = self.stdout.isatty()
        self.state = ClientState()
        self._nick_sent = False
        self._last_error = ""
        self._stdin_open = True
        self._stdin_partial = b""
        self._quit_deadline: float | None = None
        self._after_bye: Outcome | None = None  # what to report once BYE (or EOF) arrives

    def run(self) -> int:
        """Returns the exit status; failures are reported on stderr, one sentence."""
        try:
            try:
                outcome = self._loop()
            except KeyboardInterrupt:
                # Ctrl-C: leave politely (/quit, wait for BYE); a second Ctrl-C gives up.
                self._quit(Outcome(Exit.INTERRUPTED))
                try:
                    outcome = self._loop()
                except (ClientError, KeyboardInterrupt):
                    outcome = Outcome(Exit.INTERRUPTED)
        except ClientError as exc:
            outcome = Outcome(exc.status, exc.message)
        finally:
            self.channel.close()
        if outcome.message:
            _error(outcome.message)
        return int(outcome.status)

    def _quit(self, then: Outcome) -> None:
        """Send /quit and end with `then` when BYE arrives (or on timeout)."""
        if self._quit_deadline is None:
            self.channel.send_line(b"/quit")
            self._quit_deadline = time.monotonic() + QUIT_TIMEOUT
        self._after_bye = then
        self._stdin_open = False

    def _loop(self) -> Outcome:
        selector = selectors.PollSelector() if hasattr(selectors, "PollSelector") else selectors.DefaultSelector()
        # NOTE: poll, not epoll: epoll refuses regular files, and `< file` is a normal stdin here.
        with selector:
            selector.register(self.channel.fileno(), selectors.EVENT_READ)
            stdin_watched = False
            while True:
                # Read first: the handshake may have left lines in OpenSSL's buffer,
                # where the selector cannot see them.
                outcome = self._read_socket()
                if outcome is not None:
                    return outcome
                self.channel.flush()
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.channel.wants_write else 0)
                selector.modify(self.channel.fileno(), events)
                want_stdin = (
                    self.state.registered and self._stdin_open and self.channel.backlog < STDIN_HIGH_WATER
                )
                if want_stdin != stdin_watched:
                    if want_stdin:
                        selector.register(self.stdin_fd, selectors.EVENT_READ)
                    else:
                        selector.unregister(self.stdin_fd)
                    stdin_watched = want_stdin
                timeout = None
                if self._quit_deadline is not None:
                    timeout = max(0.0, self._quit_deadline - time.monotonic())
                ready = selector.select(timeout)
                if not ready and self._quit_deadline is not None and time.monotonic() >= self._quit_deadline:
                    raise ClientError(
                        Exit.DROPPED, f"the server did not answer /quit within {QUIT_TIMEOUT:g} s"
                    )
                for key, _mask in ready:
                    if key.fd == self.stdin_fd:
                        self._read_stdin()

    def _read_stdin(self) -> None:
        try:
            data = os.read(self.stdin_fd, READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            if self._stdin_partial:
                self.channel.send_line(self._stdin_partial)
                self._stdin_partial = b""
            self._quit(Outcome(Exit.OK))
            return
        *lines, self._stdin_partial = (self._stdin_partial + data).split(b"\n")
        for line in lines:
            line = line.removesuffix(b"\r")
            if line:
                self.channel.send_line(line)

    def _read_socket(self) -> Outcome | None:
        lines = self.channel.read_lines()
        for line in lines:
            self._print(line)
            outcome = self._handle(line.decode("utf-8", "replace"))
            if outcome is not None:
                return outcome
        if self.channel.closed:
            if self._after_bye is not None and self._after_bye.status != Exit.OK:
                return self._after_bye
            return dropped_outcome()
        return None

    def _handle(self, line: str) -> Outcome | None:
        self.state.on_line(line)
        verb, rest = split_line(line)
        if verb == "NICK":
            if self._nick_sent:
                self._quit(self._nick_refused())
            else:
                self.channel.send_line(self.nick.encode())
                self._nick_sent = True
        elif verb == "ERR":
            self._last_error = rest
        elif verb == "BYE":
            outcome = bye_outcome(rest)
            if self._after_bye is not None and self._after_bye.status != Exit.OK:
                return self._after_bye  # we asked to leave because of an error: report that
            return outcome
        return None

    def _nick_refused(self) -> Outcome:
        code, _, text = self._last_error.partition(" ")
        if code == "nick_taken":
            why = "is taken"
        else:
            why = "was refused" + (f" ({sanitize(text)})" if text else "")
        return Outcome(Exit.NICK_REFUSED, f"the nickname {self.nick!r} {why}; choose another with --nick")

    def _print(self, line: bytes) -> None:
        if self._sanitize_output:
            line = sanitize(line.decode("utf-8", "replace")).encode("utf-8")
        try:
            self.stdout.write(line + b"\n")
            self.stdout.flush()
        except BrokenPipeError:
            # Whoever reads our output has gone (`| head`): stop printing, leave politely.
            # Python's recipe: point stdout at /dev/null so the exit-time flush cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
            os.close(devnull)
            self._quit(Outcome(Exit.OTHER))
