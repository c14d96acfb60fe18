"""Link: one connection to Redis, owned by one thread, over redis-py with hiredis.

redis-py connects (URL, authentication, database, Unix socket or TCP) and
parses replies (hiredis when installed: the `cluster` extra brings it); the
commands themselves arrive pre-encoded (chatd/cluster/scripts.py), so a batch
of any size is one write and its replies one read loop, with none of
redis-py's per-command machinery on the way.

Failures are sorted for the caller (chatd/cluster/errors.py): `Unavailable`
when nothing was sent (reconnecting failed; a dead idle connection is noticed
*before* sending), `Interrupted` when the connection broke after sending.
Retrying is the caller's choice, with chatd/cluster/backoff.py; the link
reconnects on its next use. An error reply is a value (`ReplyError`) in the
list; a `NOSCRIPT` one (Redis restarted, or SCRIPT FLUSH) loads the scripts
and sends those calls again: they had not run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import redis.exceptions
from redis.backoff import NoBackoff
from redis.connection import ConnectionPool
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from chatd.cluster.errors import Interrupted, Unavailable
from chatd.cluster.scripts import Call, ReplyError, Script, pack

T = TypeVar("T")

# What a broken or unreachable connection raises: redis-py's own and the OS's.
_LINK_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

PARSER = "hiredis" if HIREDIS_AVAILABLE else "python"  # for `chatctl status` and the start-up log


class Link:
    def __init__(self, url: str, *, name: str, timeout: float, scripts: Iterable[Script] = ()) -> None:
        """`name`: the client name Redis shows (CLIENT LIST); `timeout`: for
        connecting and for each read, in seconds."""
        self._pool = ConnectionPool.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            client_name=name,
            retry=Retry(NoBackoff(), 0),  # the caller retries, with its own backoff
            health_check_interval=0,
            protocol=2,  # RESP2 replies, as the decoders here read them (redis-py 8 may choose RESP3)
        )
        self._conn: Any = None  # redis.connection.AbstractConnection, typed loosely by redis-py
        self._scripts = tuple(scripts)
        self.connects = 0  # successful connections so far (a reader checks the log after each)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()

    def run(self, call: Call[T]) -> T:
        """Send one call, wait for its reply, decode it.

        Raises:
            Unavailable, Interrupted, Refused, Fenced, ClusterError.
        """
        return call.decode(self.execute([call.command])[0])

    def connect(self) -> None:
        """Connect now if not connected, or if the connection has died idle.

        Raises:
            Unavailable: Redis cannot be reached.
        """
        self._ready(reconnect=True)

    def execute(self, commands: Sequence[bytes], reconnect: bool = True) -> list[object]:
        """Send `commands` in one write; their replies, in order. With
        `reconnect` false, a link that is not connected raises Unavailable
        instead of connecting (a reader checks the log after each connect).

        Raises:
            Unavailable: nothing was sent.
            Interrupted: sent; the replies (`.replies`: those that came) did not all come.
        """
        conn = self._ready(reconnect)
        replies = self._exchange(conn, commands)
        missing = [i for i, reply in enumerate(replies) if _noscript(reply)]
        if missing and self._scripts:
            self._load_scripts(conn)
            for i, reply in zip(missing, self._exchange(conn, [commands[i] for i in missing]), strict=True):
                replies[i] = reply
        return replies

    def _ready(self, reconnect: bool) -> Any:
        conn = self._conn
        if conn is not None and self._stale(conn):
            self.close()
            conn = None
        if conn is None:
            if not reconnect:
                raise Unavailable("not connected to Redis")
            conn = self._connect()
            self._conn = conn
            self.connects += 1
        return conn

    def _connect(self) -> Any:
        # NOTE: not the pool's make_connection(): the pool counts every connection it
        # ever made against max_connections (100) and refuses the 101st, and a link
        # reconnects for as long as Redis is away. The pool only reads the URL here.
        pool: Any = self._pool  # redis-py leaves connect() untyped
        conn: Any = pool.connection_class(**pool.connection_kwargs)
        try:
            conn.connect()
            if self._scripts:
                self._load_scripts(conn)
        except _LINK_ERRORS as exc:
            conn.disconnect()
            raise Unavailable(f"cannot reach Redis: {exc}") from exc
        return conn

    @staticmethod
    def _stale(conn: Any) -> bool:
        """Whether an idle connection has something to read: with no command
        outstanding that can only be its end (Redis restarted or closed it)."""
        try:
            return bool(conn.can_read(timeout=0))
        except _LINK_ERRORS:
            return True

    def _exchange(self, conn: Any, commands: Sequence[bytes]) -> list[object]:
        replies: list[object] = []
        try:
            conn.send_packed_command([b"".join(commands)], check_health=False)
            for _ in commands:
                replies.append(_read(conn))
        except _LINK_ERRORS as exc:
            self.close()
            error = Interrupted(f"lost Redis after sending {len(commands)} commands, {len(replies)} answered: {exc}")
            error.replies = replies
            raise error from exc
        return replies

    def _load_scripts(self, conn: Any) -> None:
        commands = [pack(b"SCRIPT", b"LOAD", script.source) for script in self._scripts]
        conn.send_packed_command([b"".join(commands)], check_health=False)
        for script in self._scripts:
            sha = _read(conn)
            if isinstance(sha, ReplyError) or sha != script.sha:
                raise redis.exceptions.ConnectionError(f"SCRIPT LOAD {script.name}: {sha!r}")


def _read(conn: Any) -> object:
    try:
        reply: object = conn.read_response()
    except redis.exceptions.NoScriptError as exc:  # redis-py drops the error code from the message
        return ReplyError(f"NOSCRIPT {exc}")
    except redis.exceptions.ResponseError as exc:
        return ReplyError(str(exc))
    return reply


def _noscript(reply: object) -> bool:
    return isinstance(reply, ReplyError) and reply.message.startswith("NOSCRIPT")
