"""chatctl's command line: one subcommand per concern, each in its own module.

Each module named in `_SUBCOMMANDS` provides `add_arguments(name, parser)` and
`run(args) -> int` (the exit status). Only the module of the subcommand being
run is imported, so `chatctl gen-certs` never pays for (or depends on) the
terminal client's imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from chatd import __version__

# subcommand -> (module, one-line help)
_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "gen-certs": ("chatctl.gencerts", "create a CA, a server certificate and client certificates"),
    "connect": ("chatctl.client", "connect to a chatd server and chat"),
    "status": ("chatctl.control", "show the daemon's status (control socket)"),
    "who": ("chatctl.control", "list connected clients (control socket)"),
    "rooms": ("chatctl.control", "list rooms with their members and topics (control socket)"),
    "kick": ("chatctl.control", "disconnect a client (control socket)"),
    "broadcast": ("chatctl.control", "send an INFO line to everyone (control socket)"),
    "reload": ("chatctl.control", "reload the daemon's configuration (control socket)"),
    "user": ("chatctl.accounts", "add, change, disable, delete and list accounts (control socket)"),
    "invite": ("chatctl.accounts", "create, list and revoke invite codes (control socket)"),
    "ban": ("chatctl.accounts", "ban and unban addresses and networks (control socket)"),
    "room": ("chatctl.room", "registered rooms: owners, roles, flags, bans (control socket)"),
    "history": ("chatctl.export", "export a room's stored history (reads chatd's database)"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the `selected` subcommand's module adds its options."""
    parser = argparse.ArgumentParser(
        prog="chatctl", description="Certificates, the terminal client and operator commands for chatd."
    )
    parser.add_argument("--version", action="version", version=f"chatctl {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in _SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module_name).add_arguments(name, sub)
        sub.set_defaults(module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((arg for arg in argv if arg in _SUBCOMMANDS), None)
    args = build_parser(selected).parse_args(argv)
    module = importlib.import_module(args.module)
    try:
        status: int = module.run(args)
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
