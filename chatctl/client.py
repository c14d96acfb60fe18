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

With `--login ACCOUNT` (or `--register ACCOUNT`) the session signs in to an
account instead of taking a nickname (chatctl/signin.py); the password is
asked for here, before connecting, or read from `--password-file`, and the
token that brings the client back is kept in a 0600 file
(chatctl/credentials.py; docs/client.md, "Signing in").
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from pathlib import Path
from typing import Final

from chatctl.connection import Address, ClientError, Dialer, Exit, LineChannel, client_context
from chatctl.credentials import (
    CredentialError,
    Login,
    TokenFile,
    ask_password,
    read_password_file,
    refuse_password_option,
)
from chatctl.script import ScriptMode, report
from chatctl.signin import SignIn

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
    6  nickname refused (taken or invalid; in script mode), or signing
       in refused (wrong password, token refused with no password at hand)
    7  the server dropped the connection (kicked, shutdown, ...), or you
       stopped reconnecting with Ctrl-C
  130  interrupted (Ctrl-C in script mode)

Interactive mode when stdin and stdout are terminals; script mode otherwise,
or with --raw: stdin lines are sent, server lines are printed as they are
(with control characters made visible when stdout is a terminal).
Interactive keys: Ctrl-N/Ctrl-P switch rooms, Tab completes nicknames and
rooms, PageUp scrolls back through history; /help lists them.
A lost connection is reconnected (interactive mode; script mode with
--reconnect), the rooms rejoined and what was missed fetched; given several
servers (the nodes of one network), it goes to the next. See
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
        "addresses",
        type=_address_arg,
        nargs="+",
        metavar="HOST[:PORT]",
        help=f"the chatd server; the port defaults to {DEFAULT_PORT}; IPv6 as [::1]:{DEFAULT_PORT}. "
        "Several: nodes of one network, tried in turn; a lost connection goes to the next",
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--nick", help="your nickname (required in script mode; asked for when interactive)")
    who.add_argument(
        "--login",
        metavar="ACCOUNT",
        help="sign in to this account: its password is asked for (no echo) or read from --password-file; "
        "a token kept in ~/.config/chatctl/tokens/ signs in again without it",
    )
    who.add_argument(
        "--register", metavar="ACCOUNT", help="register this account (with --invite CODE if the server needs one)"
    )
    parser.add_argument("--invite", metavar="CODE", help="the invite code for --register")
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="PATH",
        help="script mode: the password, on the first line of a file only you can read (chmod 600)",
    )
    refuse_password_option(parser, "type it when asked, or use --password-file in script mode")
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
        login = _login(args)
        nick = _check_nick(args.nick, required=not interactive and login is None)
        dialer = Dialer(args.addresses, client_context(args.ca, args.cert, args.key), args.timeout)
        sock = dialer.connect()
        reconnect = interactive if args.reconnect is None else args.reconnect
        if interactive:
            from chatctl.interactive import run_interactive  # prompt_toolkit only when needed

            return run_interactive(sock, nick, dialer if reconnect else None, login)
        return ScriptMode(LineChannel(sock), nick or "", dialer=dialer if reconnect else None, login=login).run()
    except ClientError as exc:
        report(exc.message)
        return int(exc.status)


def _login(args: argparse.Namespace) -> Login | None:
    """The account of `--login`/`--register`, with its kept token and its
    password (asked for now when there is no token, or read from
    `--password-file`); None without either option.

    Raises:
        ClientError: usage errors, and a password that cannot be had (status 2).
    """
    account = args.login or args.register
    if account is None:
        for option, value in (("--invite", args.invite), ("--password-file", args.password_file)):
            if value is not None:
                raise ClientError(Exit.USAGE, f"{option} goes with --login or --register")
        return None
    option = "--login" if args.login else "--register"
    if args.invite is not None and args.register is None:
        raise ClientError(Exit.USAGE, "--invite goes with --register (--login signs in to an account that exists)")
    if not _NICK.fullmatch(account):
        raise ClientError(Exit.USAGE, f"{option} {account!r}: account names are nicknames: letters, digits, _ and -")
    try:
        tokens = TokenFile(str(args.addresses[0]), account)  # one network, one token
        token = tokens.load()
        password = None
        if args.password_file is not None:
            password = read_password_file(args.password_file)  # also when a token is kept: its mode is checked now
        elif token is None:
            password = ask_password(f"password for {account}: ", confirm=args.register is not None)
    except CredentialError as exc:
        hint = "; in script mode pass --password-file PATH" if "no terminal" in str(exc) else ""
        raise ClientError(Exit.USAGE, f"{exc}{hint}") from None
    invite = (args.invite or "*") if args.register else None
    return Login(SignIn(account, password=password, token=token, invite=invite), tokens, args.password_file)


def _check_nick(nick: str | None, required: bool) -> str | None:
    if nick is None:
        if required:
            raise ClientError(Exit.USAGE, "--nick is required when stdin is not a terminal (or with --raw)")
        return None
    if not _NICK.fullmatch(nick):
        raise ClientError(Exit.USAGE, f"--nick {nick!r}: nicknames are letters, digits, _ and - only")
    return nick
