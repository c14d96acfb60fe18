"""Operator commands for registered rooms over chatd's control socket:
`chatctl room list|show|owner|roles|role|flag|ban|unban|bans|drop`
(docs/operations.md "Room roles"; chatd/control.py documents each request
and reply).

The operator is above every role: these work on any room, a permanent one
too (`room owner '#lobby' alice` is how such a room gets an owner), and
nobody can lock the operator out. They find the socket, check it and report
failures as the other operator commands do (chatctl/control.py: the same
options, `--json`, exit statuses). Everything shown comes from users
(names, topics, ban reasons) and is sanitised for the terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

from chatctl.control import (
    EPILOG,
    EXIT_OK,
    EXIT_REFUSED,
    ControlError,
    add_socket_arguments,
    locate,
    operator_config,
    request,
)
from chatctl.render import sanitize

ROOM_HELP: Final = "the room, e.g. '#rust' (quote it: # starts a comment in shells)"

# action -> one-line help
_ACTIONS: Final[dict[str, str]] = {
    "list": "the registered rooms: owner, flags, members",
    "show": "a room's owner, flags, roles and bans",
    "owner": "give a room an owner (registering it: permanent rooms too), or hand it over",
    "roles": "who holds which role in a room",
    "role": "set an account's role in a room: owner, op, voice or member",
    "flag": "turn a flag on or off: topic_ops, private, moderated, accounts_only",
    "ban": "ban a nickname, account:NAME or an address/CIDR from a room; members it covers are removed",
    "unban": "lift a room's ban (the mask as `room bans` shows it)",
    "bans": "a room's bans",
    "drop": "end a room's registration: its roles, flags and bans go",
}


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """`chatctl room`'s actions and options (called by chatctl/cli.py)."""
    add_socket_arguments(parser)
    parser.epilog = EPILOG
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text in _ACTIONS.items():
        sub = actions.add_parser(action, help=help_text, description=help_text, epilog=EPILOG)
        add_socket_arguments(sub, suppress=True)  # after the action too, without undoing them before it
        if action != "list":
            sub.add_argument("room", help=ROOM_HELP)
        if action in ("owner", "role"):
            sub.add_argument("name", help="an account's name")
        if action == "role":
            sub.add_argument("role", choices=("owner", "op", "voice", "member"))
        elif action == "flag":
            sub.add_argument("flag", choices=("topic_ops", "private", "moderated", "accounts_only"))
            sub.add_argument("value", choices=("on", "off"))
        elif action in ("ban", "unban"):
            sub.add_argument("mask", help="a nickname, account:NAME, or an address or CIDR network")
        if action == "ban":
            sub.add_argument("--reason", default="", help="told to the members it removes, and logged")


def run(args: argparse.Namespace) -> int:
    command = f"room_{args.action}"
    try:
        path = locate(args, operator_config(args))
        reply = request(path, {"cmd": command, **_fields(args)}, args.timeout)
    except ControlError as exc:
        sys.stderr.write(f"chatctl: {exc}\n")
        return exc.status
    if not reply.get("ok"):
        sys.stderr.write(f"chatctl: the daemon refused: {reply.get('error')}\n")
        return EXIT_REFUSED
    result = reply.get("result")
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else _RENDER[args.action](result))
    return EXIT_OK


def _fields(args: argparse.Namespace) -> dict[str, object]:
    names = ("room", "name", "role", "flag", "value", "mask", "reason")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


# -- what is printed ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    return sanitize(str(value)) if value not in (None, "") else "-"


def _table(header: tuple[str, ...], body: Sequence[tuple[str, ...]], what: str) -> str:
    rows = [header, *body]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + f"\n{len(body)} {what}\n"


def _list(result: list[dict[str, Any]]) -> str:
    body = [(_text(r["room"]), _text(r["owner"]), " ".join(r["flags"]) or "-", str(r["members"])) for r in result]
    return _table(("ROOM", "OWNER", "FLAGS", "MEMBERS"), body, "registered room" + ("" if len(body) == 1 else "s"))


def _roles(result: list[dict[str, Any]]) -> str:
    return _table(
        ("NAME", "ROLE"),
        [(_text(r["name"]), r["role"]) for r in result],
        "account" + ("" if len(result) == 1 else "s") + " with a role",
    )


def _bans(result: list[dict[str, Any]]) -> str:
    body = [(_text(b["mask"]), _text(b["by"]), _text(b["set"]), _text(b["reason"])) for b in result]
    return _table(("MASK", "BY", "SET", "REASON"), body, "ban" + ("" if len(body) == 1 else "s"))


def _show(result: dict[str, Any]) -> str:
    head = [
        f"room:    {_text(result['room'])}",
        f"owner:   {_text(result['owner'])}",
        f"flags:   {' '.join(result['flags']) or '-'}",
        f"members: {result['members']}",
        f"topic:   {_text(result['topic'])}",
    ]
    return "\n".join(head) + "\n\n" + _roles(result["roles"]) + "\n" + _bans(result["bans"])


def _changed(result: dict[str, Any]) -> str:
    flags = " ".join(result["flags"]) or "no flags"
    return f"{_text(result['room'])}: owner {_text(result['owner'])}, {flags}\n"


def _banned(result: dict[str, Any]) -> str:
    removed = result.get("removed", 0)
    return f"banned {_text(result['mask'])}" + (f"; {removed} removed from the room\n" if removed else "\n")


_RENDER: Final[dict[str, Callable[[Any], str]]] = {
    "list": _list,
    "show": _show,
    "owner": _changed,
    "roles": _roles,
    "role": _changed,
    "flag": _changed,
    "ban": _banned,
    "unban": lambda result: f"lifted the ban of {_text(result['mask'])}\n",
    "bans": _bans,
    "drop": lambda result: f"{_text(result['room'])} is no longer registered\n",
}
