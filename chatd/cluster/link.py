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

import select
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import redis.exceptions
from redis.backoff import NoBackoff
from redis.connection import ConnectionPool
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from chatd.cluster.errors import Interrupted, Unavailable
from chatd.cluster.scripts import Call, ReplyError, Script, pack

try:
    import hiredis

    _HIREDIS = True
except ImportError:  # the `cluster` extra brings it; without it, redis-py's own parser reads
    _HIREDIS = False

T = TypeVar("T")

# What a broken or unreachable connection raises: redis-py's own and the OS's.
_LINK_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

PARSER = "hiredis" if HIREDIS_AVAILABLE and _HIREDIS else "python"  # for `chatctl status`, the log
_RECV_BYTES = 65536


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
        self._wire: _Wire | _PyWire | None = None  # how the connection is written and read
        self._scripts = tuple(scripts)
        self.connects = 0  # successful connections so far (a reader checks the log after each)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        self._wire = None
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
        wire = self._ready(reconnect)
        replies = self._exchange(wire, commands)
        missing = [i for i, reply in enumerate(replies) if _noscript(reply)]
        if missing and self._scripts:
            _check_loaded(self._scripts, self._exchange(wire, [_load(script) for script in self._scripts]))
            for i, reply in zip(missing, self._exchange(wire, [commands[i] for i in missing]), strict=True):
                replies[i] = reply
        return replies

    def _ready(self, reconnect: bool) -> _Wire | _PyWire:
        wire = self._wire
        if wire is not None and wire.stale():
            self.close()
            wire = None
        if wire is None:
            if not reconnect:
                raise Unavailable("not connected to Redis")
            wire = self._connect()
            self.connects += 1
        return wire

    def _connect(self) -> _Wire | _PyWire:
        # NOTE: not the pool's make_connection(): the pool counts every connection it
        # ever made against max_connections (100) and refuses the 101st, and a link
        # reconnects for as long as Redis is away. The pool only reads the URL here.
        pool: Any = self._pool  # redis-py leaves connect() untyped
        conn: Any = pool.connection_class(**pool.connection_kwargs)
        try:
            conn.connect()
            wire: _Wire | _PyWire = _Wire(conn._sock) if _HIREDIS else _PyWire(conn)
            if self._scripts:
                _check_loaded(self._scripts, wire.exchange([_load(script) for script in self._scripts]))
        except _LINK_ERRORS as exc:
            conn.disconnect()
            raise Unavailable(f"cannot reach Redis: {exc}") from exc
        self._conn, self._wire = conn, wire
        return wire

    def _exchange(self, wire: _Wire | _PyWire, commands: Sequence[bytes]) -> list[object]:
        replies: list[object] = []
        try:
            wire.exchange(commands, replies)
        except _LINK_ERRORS as exc:
            self.close()
            error = Interrupted(f"lost Redis after sending {len(commands)} commands, {len(replies)} answered: {exc}")
            error.replies = replies
            raise error from exc
        return replies


class _Wire:
    """A connection's socket read with hiredis's reader directly: one
    `sendall` per batch, then as few `recv`s as the replies take, with none
    of redis-py's per-reply machinery (about 40% of a small batch's CPU
    here, docs/architecture.md "Costs measured here")."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._reader = hiredis.Reader()
        self._buffer = bytearray(_RECV_BYTES)
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    def stale(self) -> bool:
        """Whether the idle connection has something to read: with no command
        outstanding, that can only be its end (Redis restarted or closed it)."""
        return bool(self._poll.poll(0))

    def exchange(self, commands: Sequence[bytes], replies: list[object] | None = None) -> list[object]:
        """Send `commands`; their replies appended to `replies`, as they come.

        Raises:
            OSError, redis.exceptions.ConnectionError: the connection broke.
        """
        replies = [] if replies is None else replies
        sock, reader, buffer = self._sock, self._reader, self._buffer
        sock.sendall(b"".join(commands))
        want = len(replies) + len(commands)
        while len(replies) < want:
            reply = reader.gets()
            if reply is False:  # no whole reply buffered (RESP2 has no false)
                count = sock.recv_into(buffer)
                if not count:
                    raise redis.exceptions.ConnectionError("Redis closed the connection")
                reader.feed(buffer, 0, count)  # type: ignore[arg-type]  # any buffer works
            elif type(reply) is hiredis.ReplyError:
                replies.append(ReplyError(str(reply)))
            else:
                replies.append(reply)
        return replies


class _PyWire:
    """The same through redis-py's parser, where hiredis is not installed."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def stale(self) -> bool:
        try:
            return bool(self._conn.can_read(timeout=0))
        except _LINK_ERRORS:
            return True

    def exchange(self, commands: Sequence[bytes], replies: list[object] | None = None) -> list[object]:
        replies = [] if replies is None else replies
        self._conn.send_packed_command([b"".join(commands)], check_health=False)
        for _ in commands:
            replies.append(_read(self._conn))
        return replies


def _load(script: Script) -> bytes:
    return pack(b"SCRIPT", b"LOAD", script.source)


def _check_loaded(scripts: Sequence[Script], shas: list[object]) -> None:
    for script, sha in zip(scripts, shas, strict=True):
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
