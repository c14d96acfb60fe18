"""Operator commands for accounts over chatd's control socket: `chatctl user
add|passwd|disable|enable|delete|list|sessions|revoke`, `chatctl invite
create|list|revoke` and `chatctl ban add|list|remove` (docs/operations.md,
"Accounts"; chatd/control.py documents each request and reply).

They find the socket, check it and report failures as the other operator
commands do (chatctl/control.py: same options, `--json`, exit statuses).
A password is read from the terminal without echo, or from stdin with
`--password-stdin`, never from the command line, and is hashed here with
argon2id at the cost of the config's `accounts.argon2` (chatd/passwords.py,
the daemon's own code): only the hash crosses the socket. Durations (`7d`,
`12h`, `30m`) are read by `parse_duration`, the one place that does.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from chatctl.control import (
    EPILOG,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    ControlError,
    add_socket_arguments,
    locate,
    operator_config,
    request,
)
from chatctl.credentials import (
    CredentialError,
    ask_password,
    check_password,
    read_password_line,
    refuse_password_option,
)
from chatctl.render import sanitize
from chatd.addresses import format_host_port
from chatd.config import Config
from chatd.config_accounts import AccountsConfig
from chatd.passwords import Argon2

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION: Final = re.compile(r"(?:\d{1,6}[smhdw])+")
_WILDCARDS: Final = ("", "0.0.0.0", "::")

# subcommand -> action -> one-line help
_ACTIONS: Final[dict[str, dict[str, str]]] = {
    "user": {
        "add": "add an account (its password is asked for, or read with --password-stdin)",
        "passwd": "set an account's password: its tokens are revoked, its connection closed",
        "disable": "disable an account: its connection is closed, its sign-ins refused",
        "enable": "enable a disabled account",
        "delete": "delete an account: tokens revoked, connection closed, the name stays reserved",
        "list": "list the accounts",
        "sessions": "an account's connection and tokens (tokens by id, never the token)",
        "revoke": "revoke an account's tokens: one, by its id, or all",
    },
    "invite": {
        "create": "create an invite code: printed once, with a link for the web client",
        "list": "list the invites (without their codes)",
        "revoke": "revoke an invite, by its id",
    },
    "ban": {
        "add": "ban an address or a network (CIDR); its connections are closed",
        "list": "list the bans",
        "remove": "remove a ban (the network exactly as `ban list` shows it)",
    },
}


def parse_duration(text: str) -> int:
    """`30m`, `12h`, `7d`, `2w`, or several (`1d12h`), as seconds.

    Raises:
        ValueError: anything else, with what is expected.
    """
    if not _DURATION.fullmatch(text):
        raise ValueError(f"expected a duration such as 30m, 12h, 7d or 1d12h (s, m, h, d, w), not {text!r}")
    seconds = sum(int(number) * _UNITS[unit] for number, unit in re.findall(r"(\d+)([smhdw])", text))
    if seconds <= 0:
        raise ValueError(f"a duration must be longer than 0 (got {text!r})")
    return seconds


def _duration_arg(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) < 1 << 40:
        raise argparse.ArgumentTypeError(f"must be a whole number, 1 or more (got {text!r})")
    return int(text)


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """`chatctl user|invite|ban`'s actions and options (called by chatctl/cli.py)."""
    add_socket_arguments(parser)
    parser.epilog = EPILOG
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text in _ACTIONS[name].items():
        sub = actions.add_parser(action, help=help_text, description=help_text, epilog=EPILOG)
        add_socket_arguments(sub, suppress=True)
        _add_action_arguments(f"{name} {action}", sub)


def _add_action_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    if command.startswith("user ") and command != "user list":
        parser.add_argument("name", help="the account's name")
    if command in ("user add", "user passwd"):
        parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
        refuse_password_option(parser, "type it when asked, or pipe it in with --password-stdin")
    elif command == "user revoke":
        parser.add_argument("token", nargs="?", default="", help="a token id from `user sessions` (default: all)")
    elif command == "invite create":
        parser.add_argument("--uses", type=_positive, default=1, help="how many accounts it makes (default 1)")
        parser.add_argument("--expires", type=_duration_arg, metavar="DURATION", help="e.g. 7d (default: never)")
        parser.add_argument("--note", default="", help="for you: who it is for (shown by `invite list`)")
        parser.add_argument("--url-host", metavar="HOST", help="the host name in the link (default: the server's)")
    elif command == "invite revoke":
        parser.add_argument("id", type=_positive, help="the invite's id, from `invite list`")
    elif command in ("ban add", "ban remove"):
        parser.add_argument("network", metavar="IP|CIDR", help="an address, or a network such as 198.51.100.0/24")
    if command in ("user disable", "ban add"):
        parser.add_argument("--reason", default="", help="told to whoever it closes out, and logged")
    if command == "ban add":
        parser.add_argument("--for", dest="for_s", type=_duration_arg, metavar="DURATION", help="e.g. 1d")


def run(args: argparse.Namespace) -> int:
    command = f"{args.command}_{args.action}"
    try:
        config = operator_config(args)
        path = locate(args, config)
        message = {"cmd": command, **_fields(command, args, config)}
        reply = request(path, message, args.timeout)
        if not reply.get("ok"):
            sys.stderr.write(f"chatctl: the daemon refused: {reply.get('error')}\n")
            return EXIT_REFUSED
        result = reply.get("result")
        if command == "invite_create" and isinstance(result, dict):
            # Never lose the code: it exists only in this reply. No link is no failure.
            result["link"] = _invite_link(args, config, path, str(result.get("code", "")))
    except ControlError as exc:
        sys.stderr.write(f"chatctl: {exc}\n")
        return exc.status
    except CredentialError as exc:
        sys.stderr.write(f"chatctl: {exc}; nothing was changed\n")
        return EXIT_USAGE
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else _RENDER[command](args, result))
    return EXIT_OK


def _fields(command: str, args: argparse.Namespace, config: Config | None) -> dict[str, object]:
    """The request's fields, from the arguments (and, for a password, the terminal or stdin)."""
    fields: dict[str, object] = {}
    if command.startswith("user_") and command != "user_list":
        fields["name"] = args.name
    if command in ("user_add", "user_passwd"):
        fields["password_hash"] = _password_hash(args, config.accounts if config is not None else AccountsConfig())
    elif command == "user_revoke" and args.token:
        fields["token"] = args.token
    elif command == "invite_create":
        fields |= {"uses": args.uses, "expires_s": args.expires, "note": args.note}
    elif command == "invite_revoke":
        fields["id"] = args.id
    elif command in ("ban_add", "ban_remove"):
        fields["network"] = args.network
    if command in ("user_disable", "ban_add"):
        fields["reason"] = args.reason
    if command == "ban_add":
        fields["for_s"] = args.for_s
    return {key: value for key, value in fields.items() if value is not None}


def _password_hash(args: argparse.Namespace, accounts: AccountsConfig) -> str:
    """The password, asked for (twice) or read from stdin, checked and hashed:
    an argon2id hash string at the config's cost (the daemon checks it is one)."""
    if args.password_stdin:
        password = read_password_line(sys.stdin, "stdin (--password-stdin)")
    else:
        try:
            password = ask_password(f"new password for {args.name}: ", confirm=True)
        except CredentialError as exc:
            if "no terminal" not in str(exc):
                raise
            raise CredentialError(f"{exc}: pipe it in with --password-stdin") from None
    check_password(password, accounts.password_min_length)
    return Argon2(accounts.argon2).hash(password)


def _invite_link(args: argparse.Namespace, config: Config | None, path: Path, code: str) -> str | None:
    """`https://HOST:PORT/#invite=CODE` for the web client (the fragment never
    reaches a server or a log); None when the web client is off or the
    daemon's address cannot be told.

    The host: `--url-host`, else the configured `server.host`, else (a
    wildcard) the first DNS name of the server's certificate, which is the
    name clients must use anyway.
    """
    if config is not None and not config.web.enabled:
        return None
    host: str | None = args.url_host
    port = config.server.port if config is not None else 0
    if host is None and config is not None:
        host = config.server.host if config.server.host not in _WILDCARDS else _certificate_name(config.tls.cert)
    if host is None or not port:
        # Where it listens in fact (port 0 in the config: a free one); its status says.
        try:
            reply = request(path, {"cmd": "status"}, args.timeout)
        except ControlError:
            return None
        result = reply.get("result")
        listening = str(result.get("listening", "")) if isinstance(result, dict) else ""
        bound_host, _, bound_port = listening.rpartition(":")
        if not port and bound_port.isdigit():
            port = int(bound_port)
        if host is None:
            host = bound_host if bound_host not in _WILDCARDS else socket.getfqdn()
    return f"https://{format_host_port(host, port)}/#invite={code}" if host and port else None


def _certificate_name(cert: Path) -> str | None:
    """The first DNS name of the server's certificate: the name clients use."""
    from cryptography import x509  # only here: no other command needs it

    try:
        certificate = x509.load_pem_x509_certificate(cert.read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    dns = names.get_values_for_type(x509.DNSName)
    return dns[0] if dns else None


# -- how replies read ----------------------------------------------------------------


def _when(value: Any, none: str = "-") -> str:
    return str(value).replace("T", " ").replace("+00:00", "Z") if value else none


def _table(header: tuple[str, ...], body: Sequence[tuple[str, ...]], what: str) -> str:
    """Columns padded to their widest cell (the last one is not); a count below."""
    rows = [header, *body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join([*(v.ljust(w) for v, w in zip(row, widths, strict=False)), row[-1]]).rstrip() for row in rows]
    count = len(rows) - 1
    return "\n".join(lines) + f"\n{count} {what}" + ("" if count == 1 else "s") + "\n"


def _text(value: Any) -> str:
    return sanitize(str(value or ""))


def _account_status(account: dict[str, Any]) -> str:
    if account.get("disabled"):
        return "disabled" + (f": {_text(account.get('reason'))}" if account.get("reason") else "")
    return "active"


def _sessions(args: argparse.Namespace, result: dict[str, Any]) -> str:
    online = result.get("connection")
    if online:
        how = f"signed in with {_text(online.get('method'))}"
        if online.get("token"):
            how += f", token {_text(online['token'])}"
        head = f"{args.name}: connected from {_text(online.get('peer'))} since {_when(online.get('since'))} ({how})"
    else:
        head = f"{args.name}: not connected"
    tokens = [
        (_text(t["id"]), _when(t.get("created")), _when(t.get("expires"), "never"), _when(t.get("last_used"), "never"))
        for t in result.get("tokens", [])
    ]
    return head + "\n" + _table(("TOKEN-ID", "CREATED", "EXPIRES", "LAST-USED"), tokens, "token")


def _invite_created(args: argparse.Namespace, result: dict[str, Any]) -> str:
    uses = result.get("uses_left")
    lines = [
        f"invite {result.get('id')}: {uses} use"
        + ("" if uses == 1 else "s")
        + f", expires {_when(result.get('expires'), 'never')}",
        f"code  {result.get('code')}",
    ]
    if result.get("link"):
        lines.append(f"link  {result['link']}")
    else:
        lines.append("(no link: the web client is off, or chatd's address is unknown; give the code itself)")
    lines.append("The code is shown this once: chatd keeps only its hash.")
    return "\n".join(lines) + "\n"


def _ban_added(args: argparse.Namespace, result: dict[str, Any]) -> str:
    closed = result.get("closed", 0)
    until = f"until {_when(result['expires'])}" if result.get("expires") else "until removed"
    return (
        f"banned {_text(result.get('network'))} {until}; {closed} connection"
        + ("" if closed == 1 else "s")
        + " closed\n"
    )


_Render = Callable[[argparse.Namespace, Any], str]
_RENDER: Final[dict[str, _Render]] = {
    "user_add": lambda a, r: f"added the account {_text(r['name'])}\n",
    "user_passwd": lambda a, r: f"changed the password of {_text(r['name'])}; {r['tokens_revoked']} token(s) revoked\n",
    "user_disable": lambda a, r: f"disabled {_text(r['name'])} ({_account_status(r)})\n",
    "user_enable": lambda a, r: f"enabled {_text(r['name'])}\n",
    "user_delete": lambda a, r: f"deleted {_text(r['name'])}; the name stays reserved\n",
    "user_list": lambda a, r: _table(
        ("NAME", "CREATED", "STATUS"),
        [(_text(u["name"]), _when(u["created"]), _account_status(u)) for u in r],
        "account",
    ),
    "user_sessions": _sessions,
    "user_revoke": lambda a, r: f"revoked {r['revoked']} token(s) of {a.name}\n",
    "invite_create": _invite_created,
    "invite_list": lambda a, r: _table(
        ("ID", "USES-LEFT", "USED", "EXPIRES", "NOTE"),
        [
            (str(i["id"]), str(i["uses_left"]), str(i["used"]), _when(i["expires"], "never"), _text(i["note"]))
            for i in r
        ],
        "invite",
    ),
    "invite_revoke": lambda a, r: f"revoked invite {r['id']}\n",
    "ban_add": _ban_added,
    "ban_list": lambda a, r: _table(
        ("NETWORK", "EXPIRES", "REASON"),
        [(_text(b["network"]), _when(b["expires"], "never"), _text(b["reason"])) for b in r],
        "ban",
    ),
    "ban_remove": lambda a, r: f"removed the ban of {_text(r['network'])}\n",
}
