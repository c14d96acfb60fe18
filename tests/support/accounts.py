"""Accounts for tests (docs/protocol.md "Accounts"): signing in on a real
chatd, asking its control socket, reading its database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import argon2

from chatctl.control import request
from tests.support.chatclient import ChatClient

# Cheap argon2id for tests that are not about the cost (the hash is still argon2id).
FAST_ARGON2 = {"memory_kib": 256, "time_cost": 1, "parallelism": 1}


def greeted(daemon: Any, **client: Any) -> ChatClient:
    """A connected client past `HELLO`, `ACCOUNTS` and `NICK`."""
    c: ChatClient = daemon.client(**client)
    c.expect_greeting()
    return c


def signed_in(daemon: Any, line: str, nick: str, **client: Any) -> ChatClient:
    """Connect, send `line` (`/login ...`, `/register ...`, `/resume ...`) and
    take `WELCOME <nick>` and the autojoin lines."""
    c = greeted(daemon, **client)
    c.send(line)
    c.expect(f"WELCOME {nick} ", timeout=30)
    c.nick = nick
    c.autojoin = c.take_joins()
    return c


def refused(c: ChatClient, line: str, code: str, timeout: float = 30) -> str:
    """Send `line` before registration: `ERR <code> ...`, then `NICK` again; returns the ERR."""
    c.send(line)
    error = c.expect(f"ERR {code} ", timeout)
    c.expect("NICK", timeout)
    return error


def control(daemon: Any, cmd: str, **fields: Any) -> dict[str, Any]:
    """One control request (the daemon needs `control.socket`); its reply."""
    return request(Path(daemon.config["control"]["socket"]), {"cmd": cmd, **fields})


def ok(daemon: Any, cmd: str, **fields: Any) -> Any:
    reply = control(daemon, cmd, **fields)
    assert reply["ok"] is True, reply
    return reply["result"]


def argon2id(password: str, memory_kib: int = 256, time_cost: int = 1) -> str:
    """A hash as chatctl makes it, for `user_add`."""
    return argon2.PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=1).hash(password)


def database(daemon: Any) -> Path:
    return Path(daemon.config_path).parent / "data" / "chatd.db"


def rows(daemon: Any, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Read the daemon's database (WAL: alongside the running daemon)."""
    conn = sqlite3.connect(f"file:{database(daemon)}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
