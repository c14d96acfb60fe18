"""`chatctl gen-certs`: its options, and what it tells the user it wrote.

The certificates themselves (a private CA, the server's, the clients') are
made and written by chatctl/certs.py; this module is only the command line
around `write_pki`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chatctl.certs import DEFAULT_HOSTS, MAX_DAYS, CertError, write_pki


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Add the options of `chatctl gen-certs` (`name`) to its subparser."""
    parser.epilog = (
        "Writes ca.crt and ca.key (only if DIR has no CA yet), server.crt and server.key, and "
        "client-NAME.crt and client-NAME.key per --client. Keys get mode 0600. Existing files "
        "are never replaced without --force."
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory for the files, created with mode 0700 if missing",
    )
    parser.add_argument(
        "--host",
        dest="hosts",
        action="append",
        metavar="NAME",
        help="DNS name or IP address clients reach the server by; repeatable (default: "
        f"{', '.join(DEFAULT_HOSTS)}). Without --host, --client keeps an existing server.crt",
    )
    parser.add_argument(
        "--client",
        dest="clients",
        action="append",
        default=[],
        metavar="NAME",
        help="also write client-NAME.crt/.key for client authentication; NAME is the "
        "nickname (1-32 of A-Z a-z 0-9 _ -); repeatable",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=365,
        metavar="N",
        help=f"validity of server and client certificates, 1..{MAX_DAYS} days "
        "(default: %(default)s); a new CA gets 10 years",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace existing server and client files. An existing CA (ca.crt, ca.key) is "
        "reused even with --force, so clients that trust it keep working; to create a new "
        "CA, remove both files first",
    )


_DESCRIPTIONS = {
    "ca.key": "CA private key: keep it secret",
    "ca.crt": "CA certificate: clients trust the server with --ca",
}


def _describe(path: Path) -> str:
    kind = "private key" if path.suffix == ".key" else "certificate"
    return _DESCRIPTIONS.get(path.name, f"{path.stem.replace('-', ' ', 1)} {kind}")


def run(args: argparse.Namespace) -> int:
    """Run `chatctl gen-certs`: exit status 0, or 2 with one error line on stderr."""
    try:
        written = write_pki(args.out, args.hosts, args.clients, args.days, args.force)
    except CertError as exc:
        print(f"chatctl: error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path} ({_describe(path)})")
    return 0
