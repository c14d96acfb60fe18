"""Server: the listener, accepting (admission's policy is chatd/admission.py),
the connection registry, reload, the operator actions and the stop sequence.

Threads: the `chatd-io-N` workers accept from the shared listener in their
own loops (`accept_from`), and each new socket goes to the least busy
worker, which runs the TLS handshake and everything after it (see worker.py
and docs/architecture.md). All of them are daemon threads, stopped by
`stop(grace)` with explicit, logged deadlines: a stuck thread can never keep
the process from exiting, which is what an operator under systemd wants from
SIGTERM. (cheroot makes the other choice, non-daemon threads plus
force-closing; with a deadline join the outcome is the same and a hang is
impossible.)
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import errno
import itertools
import math
import os
import re
import socket
import ssl
import threading
import time
from typing import Protocol

import structlog

from chatd import __version__
from chatd.admission import Admission
from chatd.config import Config, LimitsConfig, load_config
from chatd.core import protocol
from chatd.core.chat import Chat
from chatd.core.history import EventStore
from chatd.core.session import Session
from chatd.errors import ConfigError
from chatd.log import configure_logging
from chatd.outlet import Outlet
from chatd.stats import Snapshot, StatsSource, StoreStats, Tally, headline, take_snapshot
from chatd.storage.lookups import LookupThread
from chatd.tls import HTTP_ALPN, certificate_expiry, server_context
from chatd.transport.codec import Codec
from chatd.transport.endpoint import Endpoint
from chatd.transport.http import HttpCodec
from chatd.transport.lines import LineCodec
from chatd.transport.listening import listen_on
from chatd.transport.tlsstream import TLSStream
from chatd.transport.websocket import TextFrames
from chatd.transport.worker import Worker
from chatd.web.files import StaticFiles

log = structlog.get_logger(__name__)

_MAX_PENDING_REJECTS = 256  # rejected clients still being told why; beyond this, just close
_ACCEPT_BATCH = 64
KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 15, "TCP_KEEPCNT": 4}
_RESTART_KEYS = (
    "server.host",
    "server.port",
    "server.io_threads",
    "control.socket",
    "history.enabled",
    "history.path",
    "metrics.listen",
)
# C0, DEL and C1 (a terminal takes \x9b as CSI): what client text may not contain either.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ACCEPT_FAILED_EVERY = 1.0  # seconds between `accept_failed` lines; the rest are counted


@dataclasses.dataclass(frozen=True)
class Site:
    """What a browser's connection is served (chatd.transport.http.Site)."""

    files: StaticFiles
    allowed_origins: frozenset[str]
    frames: TextFrames  # shared by every WebSocket, for the whole life of the server


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a reload replaces, as one object, so that no connection sees a new
    config with an old certificate (or web client) or the other way round."""

    config: Config
    tls_context: ssl.SSLContext
    site: Site
    cert_expiry: float | None = None  # the certificate's notAfter (Unix time), for the metrics


class StartupError(Exception):
    """The daemon cannot start for a reason outside the config file (e.g. port in use)."""


class Notifier(Protocol):
    def reloading(self) -> None: ...
    def ready(self, status: str | None = None) -> None: ...


class Server:
    def __init__(
        self, config: Config, tls_context: ssl.SSLContext, notifier: Notifier, store: EventStore | None = None
    ) -> None:
        """Raises:
        StartupError: the web client's files cannot be read.
        """
        self._frames = TextFrames()
        try:
            site = self._site(config)
        except OSError as exc:
            raise StartupError(f"cannot read the web client's files: {exc.strerror or exc} ({exc.filename})") from exc
        self.settings = Settings(config, tls_context, site, certificate_expiry(config.tls.cert))
        self.chat = Chat(config, store, lookups=LookupThread(store) if store is not None else None)
        self.stopping = False
        self.address: tuple[str, int] = ("", 0)
        self._notifier = notifier
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()  # SIGHUP (main thread) and chatctl (control thread)
        self._accept_failures = 0
        self._accept_failed_logged = -math.inf
        self._connections: dict[int, Endpoint] = {}
        self._admission = Admission(config.limits)  # under _lock
        self._rejecting = 0
        self._ids = itertools.count(1)
        self._totals = {"messages_in": 0, "messages_out": 0, "rate_limited": 0}
        self._handshake_failures = 0
        self._rejected = 0
        self._accepted = 0  # admitted; refused ones by reason in _refused
        self._refused: collections.Counter[str] = collections.Counter()
        self._reloads: collections.Counter[str] = collections.Counter()  # under _reload_lock
        # Components with figures of their own for /metrics and status (see StatsSource).
        self.stats_sources: dict[str, StatsSource] = {}
        self.metrics_address: str | None = None  # where /metrics is served, once it is
        if self.chat.keeps_history:
            self.stats_sources["history"] = StoreStats(self.chat.history.store)
        self._all_closed = threading.Event()
        self._listener: socket.socket | None = None
        count = config.server.io_threads or len(os.sched_getaffinity(0))
        self._workers = [Worker(self, index) for index in range(count)]

    @property
    def config(self) -> Config:
        return self.settings.config

    @property
    def tls_context(self) -> ssl.SSLContext:
        return self.settings.tls_context

    @property
    def limits(self) -> LimitsConfig:
        return self.settings.config.limits

    def _site(self, config: Config) -> Site:
        """The web client as `config` says, its files read now (none when it is off).

        Raises:
            OSError: a file cannot be read.
        """
        files = StaticFiles.load() if config.web.enabled else StaticFiles({})
        return Site(files, frozenset(config.web.allowed_origins), self._frames)

    def healthy(self) -> bool:
        """Every I/O worker is running (a crashed one withholds the systemd watchdog)."""
        return self.stopping or all(worker.running for worker in self._workers)

    @property
    def name(self) -> str:
        return self.config.server.name

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Bind, start the threads and return the bound (host, port).

        Raises:
            StartupError: the address cannot be bound.
        """
        self._listener = self._listen()
        self.address = self._listener.getsockname()[:2]
        for worker in self._workers:
            worker.start()
            worker.watch_listener(self._listener)
        log.info("listening", host=self.address[0], port=self.address[1], io_threads=len(self._workers))
        return self.address

    def _listen(self) -> socket.socket:
        host, port = self.config.server.host, self.config.server.port
        try:
            listener = listen_on(host, port, backlog=1024)
        except OSError as exc:
            raise StartupError(
                f"{self.config.path}: server.port: cannot listen on {host} port {port}: "
                f"{exc.strerror or exc} (is another server using it?)"
            ) from exc
        tune_listener(listener)
        return listener

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, say `BYE shutdown` to everyone, close, join threads."""
        self.stopping = self.chat.stopping = True
        log.info("shutdown", clients=len(self.chat.nicks), connections=len(self._connections))
        self._close_listener(grace)
        for worker in self._workers:
            worker.for_each_connection(lambda conn: conn.begin_close("shutdown"))
        with self._lock:
            if not self._connections and not self._admission.admitted:
                self._all_closed.set()
        self._all_closed.wait(grace)
        for worker in self._workers:
            worker.stop()
        deadline = time.monotonic() + grace
        stuck = [w.name for w in self._workers if not w.join(max(0.0, deadline - time.monotonic()))]
        if stuck or self._connections:
            log.warning("sessions_still_running", count=len(self._connections), threads=stuck)
        self.chat.close()

    # -- accepting (on the workers' threads) -----------------------------------------------

    def accept_from(self, acceptor: Worker) -> bool:
        """Accept what is waiting, up to a batch, on `acceptor`'s thread; True if
        out of descriptors or memory."""
        assert self._listener is not None
        for _ in range(_ACCEPT_BATCH):
            if self.stopping:
                return False
            try:
                sock, peer = self._listener.accept()
            except BlockingIOError:
                return False  # another worker took it, or nothing is left
            except OSError as exc:
                # EMFILE/ENFILE/ENOBUFS/ENOMEM: out of resources; ECONNABORTED: the
                # client gave up in the backlog. Log and keep serving.
                self._accept_failed(exc)
                return exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
            self._admit(sock, peer, acceptor)
        return False

    def _accept_failed(self, exc: OSError) -> None:
        """Log at most one `accept_failed` a second, with how many failed since."""
        now = time.monotonic()
        with self._lock:
            self._accept_failures += 1
            if now - self._accept_failed_logged < _ACCEPT_FAILED_EVERY:
                return
            count, self._accept_failures = self._accept_failures, 0
            self._accept_failed_logged = now
        log.warning("accept_failed", error=exc.strerror or str(exc), count=count)

    def _close_listener(self, grace: float) -> None:
        """Every worker stops accepting, then the port closes: new clients are refused."""
        assert self._listener is not None
        unwatched = []
        for worker in self._workers:
            done = threading.Event()
            worker.unwatch_listener(done)
            unwatched.append(done)
        deadline = time.monotonic() + grace
        for done in unwatched:
            done.wait(max(0.0, deadline - time.monotonic()))
        self._listener.close()

    def _admit(self, sock: socket.socket, peer: tuple[str, int], acceptor: Worker) -> None:
        ip = peer[0]
        told = True
        now = time.monotonic()
        with self._lock:
            reject = self._admission.admit(ip, now)
            if reject is None:
                self._accepted += 1
            elif self._rejecting >= _MAX_PENDING_REJECTS:
                self._rejected += 1
                told = False
            else:
                self._rejecting += 1
            if reject is not None:
                self._refused[reject] += 1
            conn_id = next(self._ids)
        if not told:
            sock.close()
            log.info("rejected", peer=f"{ip}:{peer[1]}", reason=reject, told=False)
            return
        sock.setblocking(False)  # the rest of its options came from the listener
        # The least busy running worker; the one that accepted when it is as idle
        # as any (then nothing crosses threads).
        running = [w for w in self._workers if w.running] or [acceptor]
        worker = min(running, key=lambda w: len(w.connections))
        if len(acceptor.connections) <= len(worker.connections):
            worker = acceptor
        if not worker.adopt(sock, peer, conn_id, reject) and not acceptor.adopt(sock, peer, conn_id, reject):
            sock.close()  # both stopped meanwhile: nobody is left to serve it
            self.release(ip, reject)

    # -- registry (called by workers) -------------------------------------------------

    def open_endpoint(
        self, worker: Worker, sock: socket.socket, peer: tuple[str, int], conn_id: int, reject: str | None
    ) -> Endpoint:
        """A new client's endpoint, on `worker`'s thread; its codec comes after the handshake."""
        settings = self.settings
        alpn = HTTP_ALPN.encode() if settings.config.web.enabled else None
        tls = TLSStream(sock, settings.tls_context, worker.scratch, alpn)
        endpoint = Endpoint(self, worker, tls, peer, conn_id, reject)
        with self._lock:
            self._connections[endpoint.id] = endpoint
        return endpoint

    def open_codec(self, endpoint: Endpoint, alpn: str | None) -> Codec:
        """Lines and a chat session for a client that negotiated no ALPN (the line
        protocol); HTTP for one that negotiated `http/1.1` (a browser), whose
        session comes with its WebSocket."""
        if alpn == HTTP_ALPN:

            def open_session(outlet: Outlet) -> Session:
                return Session(self.chat, outlet, endpoint.context)

            return HttpCodec(endpoint, self.settings.site, open_session)
        session = Session(self.chat, endpoint, endpoint.context)
        endpoint.app = session
        return LineCodec(endpoint, session)

    def unregister(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._connections.pop(endpoint.id, None)
            self._totals["messages_in"] += endpoint.app.messages_in
            self._totals["messages_out"] += endpoint.messages_out
            self._totals["rate_limited"] += endpoint.app.rate_limited
        self.release(endpoint.ip, endpoint.reject)

    def release(self, ip: str, reject: str | None) -> None:
        """Give back the admission slot taken in `_admit`."""
        with self._lock:
            if reject is not None:
                self._rejecting -= 1
            else:
                self._admission.release(ip)
            if self.stopping and not self._connections and not self._admission.admitted:
                self._all_closed.set()

    def note_handshake_failure(self) -> None:
        with self._lock:
            self._handshake_failures += 1

    def note_rejected(self, endpoint: Endpoint, reason: str) -> None:
        with self._lock:
            self._rejected += 1
        log.info("rejected", session=endpoint.id, peer=endpoint.peer, reason=reason, told=True)

    # -- reload ---------------------------------------------------------------------------

    def reload(self) -> dict[str, object]:
        """Re-read the config file and apply what can change live.

        Limits, log settings, the server name, the web settings and files, and
        the TLS certificate (for new connections) change at once; listener and thread settings are reported as
        needing a restart. A bad file changes nothing.
        """
        with self._reload_lock:
            return self._reload()

    def _reload(self) -> dict[str, object]:
        self._notifier.reloading()
        try:
            new = load_config(self.config.path)
            context = server_context(new.tls, new.path, web=new.web.enabled)
            site = self._site(new)
        except (ConfigError, OSError) as exc:
            self._reloads["failure"] += 1
            error = str(exc) if isinstance(exc, ConfigError) else f"cannot read the web client's files: {exc}"
            log.error("config_reload_failed", error=error)
            self._notifier.ready()
            return {"ok": False, "error": error, "restart_needed": []}
        old = self.config
        restart = [key for key in _RESTART_KEYS if _get(old, key) != _get(new, key)]
        server = dataclasses.replace(
            new.server, host=old.server.host, port=old.server.port, io_threads=old.server.io_threads
        )
        history = dataclasses.replace(new.history, enabled=old.history.enabled, path=old.history.path)
        kept = dataclasses.replace(new, server=server, control=old.control, history=history, metrics=old.metrics)
        self.settings = Settings(kept, context, site, certificate_expiry(new.tls.cert))
        with self._lock:
            self._admission.apply(new.limits)
        self._reloads["success"] += 1
        configure_logging(new.log)
        self.chat.configure(self.config)
        for worker in self._workers:
            worker.for_each_connection(lambda conn: conn.limits_changed())
        log.info("config_reloaded", path=str(new.path), restart_needed=restart)
        self._notifier.ready()
        return {"ok": True, "error": None, "restart_needed": restart}

    # -- operator actions (the control socket) ---------------------------------------------

    def status(self) -> dict[str, object]:
        with self._lock:
            live = list(self._connections.values())
            totals = dict(self._totals)
            failures, rejected = self._handshake_failures, self._rejected
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self._started, 1),
            "listening": f"{self.address[0]}:{self.address[1]}",
            "config_file": str(self.config.path),
            "clients": len(self.chat.nicks),
            "rooms": len(self.chat.rooms),
            "connections": len(live),
            "messages_in": totals["messages_in"] + sum(c.app.messages_in for c in live),
            "messages_out": totals["messages_out"] + sum(c.messages_out for c in live),
            "tls_handshake_failures": failures,
            "rejected": rejected,
            "history": self.chat.history.store.stats() if self.chat.keeps_history else None,
            "metrics": self.metrics_address or "off",
            **headline(self.snapshot()),
        }

    def snapshot(self) -> Snapshot:
        """Every figure for /metrics and `chatctl status`, read now (chatd/stats.py)."""
        with self._lock:
            live = list(self._connections.values())
            tally = Tally(
                accepted=self._accepted,
                refused=dict(self._refused),
                handshake_failures=self._handshake_failures,
                reloads=dict(self._reloads),
                closed=dict(self._totals),
            )
        return take_snapshot(tally, live, self._workers, self.chat, self.settings.cert_expiry, self.stats_sources)

    def who(self) -> list[dict[str, object]]:
        now = time.monotonic()
        clients = []
        for client in self.chat.nicks.members():
            since = datetime.datetime.fromtimestamp(client.connected_at, datetime.UTC)
            clients.append(
                {
                    "nick": client.nick,
                    "peer": client.peer,
                    "connected_since": since.isoformat(timespec="seconds"),
                    "idle_s": round(now - client.last_active, 1),
                }
            )
        return sorted(clients, key=lambda c: str(c["nick"]).lower())

    def rooms(self) -> list[dict[str, object]]:
        return [
            {"room": room.name, "members": sorted(room.nicks(), key=str.lower), "topic": room.topic}
            for room in self.chat.rooms.all()
        ]

    def kick(self, nick: str, reason: str) -> bool:
        client = self.chat.nicks.find(nick)
        if client is None:
            return False
        client.close("kicked", _one_line(reason))
        return True

    def broadcast(self, text: str) -> int:
        return self.chat.broadcast(protocol.format_line("INFO", _one_line(text)))


def _one_line(text: str) -> str:
    """Operator text goes on the wire inside one line: no control characters."""
    return _CONTROL_CHARS.sub(" ", text).strip()


def tune_listener(listener: socket.socket) -> None:
    """Options every accepted socket inherits from the listener (Linux copies
    them at accept), so a connection costs no setsockopt() calls of its own."""
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Dead peers are found by TCP keepalive (docs/protocol.md), not app-level PING.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        if hasattr(socket, name):
            listener.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _get(config: Config, dotted: str) -> object:
    section, key = dotted.split(".")
    return getattr(getattr(config, section), key)
