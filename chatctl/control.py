"""Operator commands over chatd's control socket: status, who, rooms, kick, broadcast, reload.

The socket is found with `--socket PATH`, or read from the daemon's YAML
(`control.socket`) given with `--config`. Before connecting, the socket's
permissions are checked: a socket that others could use or that someone else
owns is refused, since answering it could mean talking to an impostor.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import socket
import stat
import sys
from pathlib import Path
from typing import Any

from chatctl.render import sanitize
from chatd.config import Config, default_config_path, load_config
from chatd.errors import ConfigError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_PERMISSION = 0, 1, 2, 3, 4
TOPIC_WIDTH = 40  # `chatctl rooms` cuts longer topics (--json has them whole)
EPILOG = "exit status: 0 ok, 1 refused by the daemon, 2 usage, 3 no daemon, 4 permissions"


class ControlError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    add_socket_arguments(parser)
    if name == "kick":
        parser.add_argument("nick")
        parser.add_argument("reason", nargs="*", help="shown to everyone")
    elif name == "broadcast":
        parser.add_argument("text", nargs="+", help="sent to everyone as an INFO line")
    parser.epilog = EPILOG


def add_socket_arguments(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """`--config`/`--socket`, `--json` and `--timeout`, which every operator command takes.

    `suppress`: for a parser below one that has them already (`chatctl user
    add`): an option given there overrides, one not given leaves the upper
    parser's value alone (argparse would otherwise put its default back).
    """
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, help=f"chatd's YAML file (default: {default_config_path()})", **unset)
    where.add_argument("--socket", type=Path, help="the control socket itself, instead of --config", **unset)
    parser.add_argument("--json", action="store_true", help="print the daemon's answer as JSON", **unset)
    timeout: dict[str, Any] = unset or {"default": 10.0}
    parser.add_argument("--timeout", type=_seconds, help="seconds to wait (default 10)", **timeout)


def run(args: argparse.Namespace) -> int:
    try:
        reply = request(locate(args, operator_config(args)), _build_request(args), args.timeout)
    except ControlError as exc:
        sys.stderr.write(f"chatctl: {exc}\n")
        return exc.status
    if not reply.get("ok"):
        sys.stderr.write(f"chatctl: the daemon refused: {reply.get('error')}\n")
        return EXIT_REFUSED
    result = reply.get("result")
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else _render(args.command, result))
    if args.command == "reload" and isinstance(result, dict) and not result.get("ok"):
        return EXIT_REFUSED
    return EXIT_OK


def request(path: Path, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request and return the daemon's reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
            data = b""
            # Up to the newline, not to EOF: a daemon that answers before reading the
            # whole request (a refusal) may reset the connection after its answer.
            while b"\n" not in data and (chunk := sock.recv(65536)):
                data += chunk
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(
                f"no chatd is listening on {path} ({exc.strerror}); is chatd running, "
                "and is control.socket set in its config?",
                EXIT_UNREACHABLE,
            ) from exc
        except PermissionError as exc:
            raise ControlError(f"not allowed to use {path}: {exc.strerror}", EXIT_PERMISSION) from exc
        except OSError as exc:
            raise ControlError(f"talking to chatd on {path} failed: {exc}", EXIT_UNREACHABLE) from exc
    try:
        reply = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise ControlError(f"chatd on {path} sent an answer that is not a JSON object", EXIT_UNREACHABLE)
    return reply


def locate(args: argparse.Namespace, config: Config | None) -> Path:
    """The control socket of `--socket`, or of `config` (`operator_config()`),
    once its permissions are checked.

    Raises:
        ControlError: no socket in the config or there, or one that is not safe to use.
    """
    path = _socket_path(args, config)
    _check_permissions(path)
    return path


def operator_config(args: argparse.Namespace) -> Config | None:
    """The daemon's config named by `--config` (or the default one); None with `--socket`.

    Raises:
        ControlError: the config cannot be read (status 2).
    """
    if args.socket:
        return None
    try:
        return load_config(args.config or default_config_path(), check_files=False)
    except ConfigError as exc:
        raise ControlError(f"config error: {exc}", EXIT_USAGE) from exc


def _socket_path(args: argparse.Namespace, config: Config | None) -> Path:
    if config is None:
        return Path(args.socket)
    if config.control.socket is None:
        raise ControlError(
            f"{config.path}: control.socket is not set, so chatd has no control socket; set it and restart chatd",
            EXIT_USAGE,
        )
    return config.control.socket


def _check_permissions(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError as exc:
        raise ControlError(
            f"no control socket at {path}; is chatd running with this config?", EXIT_UNREACHABLE
        ) from exc
    if not stat.S_ISSOCK(info.st_mode):
        raise ControlError(f"{path} is not a socket", EXIT_PERMISSION)
    if info.st_mode & 0o077:
        raise ControlError(
            f"{path} can be used by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            "refusing it: chatd creates it with mode 0600",
            EXIT_PERMISSION,
        )
    if info.st_uid not in (os.getuid(), 0) and os.getuid() != 0:  # root may ask any daemon
        raise ControlError(
            f"{path} belongs to uid {info.st_uid}, not to you; run chatctl as chatd's user",
            EXIT_PERMISSION,
        )


def _build_request(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "kick":
        return {"cmd": "kick", "nick": args.nick, "reason": " ".join(args.reason)}
    if args.command == "broadcast":
        return {"cmd": "broadcast", "text": " ".join(args.text)}
    return {"cmd": args.command}


def _render(command: str, result: Any) -> str:
    if command == "status":
        result = {key: _status_value(key, value) for key, value in result.items()}
        width = max(len(key) for key in result)
        return "".join(f"{key + ':':<{width + 1}} {value}\n" for key, value in result.items())
    if command == "who":
        return _render_who(result)
    if command == "rooms":
        return _render_rooms(result)
    if command == "kick":
        return f"kicked {result['kicked']}\n"
    if command == "broadcast":
        return f"sent to {result['recipients']} clients\n"
    if result.get("ok"):
        restart = result.get("restart_needed") or []
        note = f"; needs a restart for: {', '.join(restart)}" if restart else ""
        return f"configuration reloaded{note}\n"
    return f"reload failed, still running on the old configuration: {result.get('error')}\n"


def _status_value(key: str, value: Any) -> str:
    """One `chatctl status` figure as people read it; --json has the raw ones."""
    if key == "uptime_s":
        return _duration(float(value or 0))
    if key == "loop_lag_ms" and isinstance(value, dict):
        return ", ".join(f"{worker} {lag:g} ms" for worker, lag in value.items()) or "-"
    if key == "cert_expires":
        return _expiry(value)
    if key == "history" and value is None:
        return "off"
    if isinstance(value, dict):
        return ", ".join(f"{name} {_number(count)}" for name, count in value.items()) or "none"
    if "bytes" in key and isinstance(value, int) and value >= 1024:
        return f"{value} ({_size(value)})"
    return str(value)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _expiry(value: Any) -> str:
    if not isinstance(value, str):
        return "unknown"
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return value
    days = (when - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400
    return f"{value} (in {days:.0f} days)" if days >= 0 else f"{value} (EXPIRED {-days:.0f} days ago)"


def _size(count: int) -> str:
    size, unit = count / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def _render_who(clients: list[dict[str, Any]]) -> str:
    """One line per client; on a cluster node, every node's clients with their
    node (those of other nodes have no peer, connection time or idle time here)."""
    nodes = any("node" in c for c in clients)
    rows = [("NICK", "PEER", "CONNECTED", "IDLE", *(("NODE",) if nodes else ()))]
    for c in clients:
        here = bool(c["peer"])
        row = (c["nick"], c["peer"] or "-", c["connected_since"] or "-", _duration(c["idle_s"]) if here else "-")
        rows.append((*row, *((str(c.get("node", "")),) if nodes else ())))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + f"\n{len(clients)} connected\n"


def _render_rooms(rooms: list[dict[str, Any]]) -> str:
    """One line per room: its name, member count, topic (cut to `TOPIC_WIDTH`)
    and members, so that `chatctl rooms | grep alice` shows alice's rooms."""
    rows = [("ROOM", "USERS", "TOPIC", "MEMBERS")]
    for room in rooms:
        # Topics and nicknames come from users: nothing in them may drive the terminal.
        topic = sanitize(str(room.get("topic") or "")) or "-"
        if len(topic) > TOPIC_WIDTH:
            topic = topic[: TOPIC_WIDTH - 1] + "…"
        members = [sanitize(str(nick)) for nick in room["members"]]
        rows.append((sanitize(str(room["room"])), str(len(members)), topic, " ".join(members)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join([*(v.ljust(w) for v, w in zip(row[:3], widths, strict=True)), row[3]]).rstrip() for row in rows]
    return "\n".join(lines) + f"\n{len(rooms)} room" + ("" if len(rooms) == 1 else "s") + "\n"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 3600:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number of seconds between 0 and 3600 (got {text!r})")
    return value


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
