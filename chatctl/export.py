"""`chatctl history export #room`: a room's stored events, for operators.

The database is found as the other operator commands find the control socket:
through chatd's YAML (`--config`, `history.path`). It is read with
`chatd.storage.sqlite.read_events`, read-only, while chatd runs: SQLite's WAL
mode lets a reader see every committed event without stopping the writer.
Events that chatd has not yet written (at most `history.flush_ms` old) are not
in the file yet.

`--format jsonl` (the default) prints one JSON object per event, with the keys
id, time (UTC, as the protocol writes it), room, nick, kind and text;
`--format text` one line per event for people. `--since` takes a date, a date
and time (UTC unless it names a zone) or a duration back from now (`90m`,
`2h`, `7d`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TextIO

from chatctl.render import sanitize
from chatd.config import default_config_path, load_config
from chatd.core.history import Event
from chatd.errors import ConfigError
from chatd.storage.sqlite import read_events

EXIT_OK, EXIT_NOTHING, EXIT_USAGE, EXIT_NO_DATABASE = 0, 1, 2, 3
_ROOM: Final = re.compile(r"#[A-Za-z0-9_-]{1,32}")  # docs/protocol.md, "Line format"
_DURATION: Final = re.compile(r"(\d+)\s*([smhdw])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

EPILOG: Final = """\
exit status: 0 ok (also when nothing was said since --since), 1 nothing to
export (history is off, or the room has never been stored), 2 usage (a bad
room name, --since or config), 3 the database is missing or cannot be read.
"""


class ExportError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="print a room's stored events",
        description="Print a room's stored events, oldest first.",
        epilog=EPILOG,
    )
    export.add_argument("room", help="the room, e.g. '#lobby' (quote it: # starts a shell comment)")
    export.add_argument(
        "--since",
        metavar="TIME",
        help="only events from then on: 2026-12-01, 2026-12-01T18:00 (UTC unless a zone is given), or 2h, 7d",
    )
    export.add_argument(
        "--format",
        choices=("jsonl", "text"),
        default="jsonl",
        help="jsonl: one JSON object per event (default); text: one line per event",
    )
    export.add_argument("--config", type=Path, help=f"chatd's YAML file (default: {default_config_path()})")


def run(args: argparse.Namespace) -> int:
    try:
        room = _check_room(args.room)
        since_ms = parse_since(args.since, datetime.now(UTC)) if args.since else None
        path = _database(args.config)
        count = export(path, room, since_ms, args.format, sys.stdout)
    except ExportError as exc:
        sys.stderr.write(f"chatctl: {exc}\n")
        return exc.status
    except BrokenPipeError:
        # Whoever read the output has gone (`| head`): fine, and quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK
    if not count and args.since:
        sys.stderr.write(f"chatctl: nothing was said in {room} since {args.since}\n")
    return EXIT_OK


def parse_since(text: str, now: datetime) -> int:
    """`--since` as milliseconds since the Unix epoch.

    Args:
        text: `2026-12-01`, `2026-12-01T18:00[:00[.000]]` (or with a space),
            optionally with `Z` or an offset (UTC if none), or a duration back
            from `now`: a number and s, m, h, d or w (`90m`, `2h`, `7d`).
        now: an aware datetime.

    Raises:
        ExportError: what was expected (status 2).
    """
    text = text.strip()
    duration = _DURATION.fullmatch(text)
    if duration:
        amount, unit = int(duration.group(1)), duration.group(2)
        try:
            when = now - timedelta(**{_UNITS[unit]: amount})
        except OverflowError:
            raise ExportError(f"--since {text!r}: that is too long ago", EXIT_USAGE) from None
        return int(when.timestamp() * 1000)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(
            f"--since {text!r}: expected a date (2026-12-01), a date and time "
            "(2026-12-01T18:00, UTC unless it gives a zone), or a duration back from now (2h, 7d)",
            EXIT_USAGE,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def export(path: Path, room: str, since_ms: int | None, form: str, out: TextIO) -> int:
    """Write `room`'s events (from `since_ms` on) to `out`; returns how many.

    Raises:
        ExportError: the database cannot be read, or has never stored the room.
    """
    key = room.lower()
    count = 0
    try:
        for event in read_events(path, key, since_ms):
            out.write(format_event(event, form))
            count += 1
        if not count and (since_ms is None or next(read_events(path, key), None) is None):
            raise ExportError(f"{path} holds no events of {room}: it has never been stored there", EXIT_NOTHING)
    except sqlite3.Error as exc:
        raise ExportError(_explain(path, exc), EXIT_NO_DATABASE) from None
    out.flush()
    return count


def format_event(event: Event, form: str) -> str:
    """One event as a line of `--format` `form`, with its newline."""
    when = datetime.fromtimestamp(event.time_ms / 1000, UTC)
    text = event.text.decode("utf-8", "replace")
    if form == "jsonl":
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{event.time_ms % 1000:03d}Z"
        record = {
            "id": event.id,
            "time": stamp,
            "room": event.room,
            "nick": event.nick,
            "kind": event.kind,
            "text": text,
        }
        return json.dumps(record, ensure_ascii=False) + "\n"
    nick, text = sanitize(event.nick), sanitize(text)
    said = {
        "msg": f"<{nick}> {text}",
        "action": f"* {nick} {text}",
        "topic": f"-- {nick} set the topic: {text}" if text else f"-- {nick} cleared the topic",
    }.get(event.kind, f"[{sanitize(event.kind)}] <{nick}> {text}")
    return f"{when:%Y-%m-%d %H:%M:%S}Z {sanitize(event.room)} {said}\n"


def _check_room(text: str) -> str:
    if not _ROOM.fullmatch(text):
        hint = " (quote it: an unquoted # starts a shell comment)" if not text.startswith("#") else ""
        raise ExportError(f"{text!r} is not a room name: # then 1-32 letters, digits, _ or -{hint}", EXIT_USAGE)
    return text


def _database(config_path: Path | None) -> Path:
    path = config_path or default_config_path()
    try:
        config = load_config(path, check_files=False)
    except ConfigError as exc:
        raise ExportError(f"config error: {exc}", EXIT_USAGE) from exc
    history = config.history
    if not history.enabled:
        raise ExportError(
            f"{config.path}: history.enabled is false: this chatd keeps no history to export", EXIT_NOTHING
        )
    if not history.path.exists():
        raise ExportError(
            f"no history database at {history.path} (history.path in {config.path}); has chatd run with this config?",
            EXIT_NO_DATABASE,
        )
    return history.path


def _explain(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    if "not a database" in text:
        return f"{path} is not an SQLite database ({text})"
    if "unable to open" in text or "readonly" in text or "permission" in text.lower():
        return f"cannot read {path} ({text}); run chatctl as chatd's user"
    return f"reading {path} failed ({text})"
