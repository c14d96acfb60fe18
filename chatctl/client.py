"""`chatctl connect`: the terminal client's arguments.

`run()` parses what `add_arguments()` declared, opens the verified TLS
connection (chatctl/connection.py) and hands it to one of the two modes:
script mode (chatctl/script.py: `--raw`, or stdin not a terminal), or the
terminal UI of chatctl/interactive.py, which is imported only when it runs
because every chatctl subcommand imports this module to build its parser and
prompt_toolkit is slow to import. Both modes keep what the server told them
in a `ClientState` (chatctl/state.py). The interactive one reconnects by
itself after a lost connection; script mode only with `--reconnect`
(docs/client.md, "Reconnecting in script mode", says why).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from typing import Final

from chatctl.connection import Address, ClientError, Dialer, Exit, LineChannel, client_context
from chatctl.script import ScriptMode, report

DEFAULT_PORT: Final = 7443
DEFAULT_TIMEOUT: Final = 10.0
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
    7  the server dropped the connection (kicked, shutdown, ...), or you
       stopped reconnecting with Ctrl-C
  130  interrupted (Ctrl-C in script mode)

Interactive mode when stdin and stdout are terminals; script mode otherwise,
or with --raw: stdin lines are sent, server lines are printed as they are
(with control characters made visible when stdout is a terminal).
Interactive keys: Ctrl-N/Ctrl-P switch rooms, Tab completes nicknames and
rooms, PageUp scrolls back through history; /help lists them.
A lost connection is reconnected (interactive mode; script mode with
--reconnect), the rooms rejoined and what was missed fetched. See
docs/client.md.
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
        "address",
        type=_address_arg,
        metavar="HOST[:PORT]",
        help=f"the chatd server; the port defaults to {DEFAULT_PORT}; IPv6 as [::1]:{DEFAULT_PORT}",
    )
    parser.add_argument("--nick", help="your nickname (required in script mode; asked for when interactive)")
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help="CA certificate(s) to verify the server with (default: the system's trust store)",
    )
    parser.add_argument("--cert", metavar="FILE", help="client certificate (PEM), if the server asks for one")
    parser.add_argument("--key", metavar="FILE", help="the client certificate's private key (PEM)")
    parser.add_argument(
        "--raw",
        action="store_true",
        help="script mode even on a terminal: send stdin lines, print server lines verbatim",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout_arg,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"limit for connecting and for the TLS handshake (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--reconnect",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="after a lost connection, connect again, rejoin the rooms and fetch what was missed "
        "(default: on in interactive mode, off in script mode)",
    )


def run(args: argparse.Namespace) -> int:
    """Run `chatctl connect`; returns the exit status."""
    interactive = not args.raw and sys.stdin.isatty() and sys.stdout.isatty()
    try:
        nick = _check_nick(args.nick, required=not interactive)
        dialer = Dialer(args.address, client_context(args.ca, args.cert, args.key), args.timeout)
        sock = dialer.connect()
        reconnect = interactive if args.reconnect is None else args.reconnect
        if interactive:
            from chatctl.interactive import run_interactive  # prompt_toolkit only when needed

            return run_interactive(sock, nick, dialer if reconnect else None)
        return ScriptMode(LineChannel(sock), nick or "", dialer=dialer if reconnect else None).run()
    except ClientError as exc:
        report(exc.message)
        return int(exc.status)


def _check_nick(nick: str | None, required: bool) -> str | None:
    if nick is None:
        if required:
            raise ClientError(Exit.USAGE, "--nick is required when stdin is not a terminal (or with --raw)")
        return None
    if not _NICK.fullmatch(nick):
        raise ClientError(Exit.USAGE, f"--nick {nick!r}: nicknames are letters, digits, _ and - only")
    return nick
