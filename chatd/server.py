"""Server: the wiring. The I/O workers, the hand-off of each accepted socket
to a worker, the codec each listener's clients get, and the start and stop
sequences.

The listening sockets and the accept loop are chatd/listeners.py's; the
registry of connections (with the counters of rare events: accepts, refusals,
handshake failures) is chatd/connections.py's; whether a client is served is
chatd/admission.py's policy, which the registry consults; a reload is
chatd/reload.py's, which hands the server new `Settings` to `apply`; what the
operator's commands read and do is chatd/operations.py's, from `snapshot()`.

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

import os
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING

import structlog

from chatd.config import Config, LimitsConfig
from chatd.connections import Connections
from chatd.core import protocol
from chatd.core.chat import Chat
from chatd.core.history import EventStore
from chatd.core.session import Session
from chatd.errors import StartupError
from chatd.irc_listener import IrcListener
from chatd.jobthreads import JobThreads
from chatd.listeners import KEEPALIVE as KEEPALIVE
from chatd.listeners import Listeners
from chatd.listeners import tune_listener as tune_listener
from chatd.notify import Notifier
from chatd.outlet import Outlet
from chatd.priority import BackgroundPriority
from chatd.reload import Reloader, Settings, read_settings
from chatd.stats import Snapshot, StatsSource, StoreStats, take_snapshot
from chatd.storage.lookups import LookupThread
from chatd.tls import HTTP_ALPN, memory_warnings
from chatd.transport.codec import Codec
from chatd.transport.endpoint import Endpoint
from chatd.transport.http import HttpCodec
from chatd.transport.lines import LineCodec
from chatd.transport.tlsstream import TLSStream
from chatd.transport.worker import Worker
from chatd.transport.wsframes import TextFrames

if TYPE_CHECKING:  # argon2 is imported only when accounts are on (chatd/cli.py), redis-py for a node
    from chatd.account_service import AccountService
    from chatd.cluster.node import Node

log = structlog.get_logger(__name__)


class Server:
    """The daemon's parts, put together: what workers (`Service`) and endpoints
    (`Host`) call back, and what the operations and the reload read."""

    def __init__(
        self,
        config: Config,
        tls_context: ssl.SSLContext,
        notifier: Notifier,
        store: EventStore | None = None,
        accounts: AccountService | None = None,
        priority: BackgroundPriority | None = None,
    ) -> None:
        """`accounts`: registered nicknames (chatd/account_service.py), or none.
        `priority`: what the handshake threads lower themselves with.

        Raises:
        StartupError: the web client's files cannot be read.
        """
        try:
            self.settings = read_settings(config, tls_context, TextFrames())
        except OSError as exc:
            raise StartupError(f"cannot read the web client's files: {exc.strerror or exc} ({exc.filename})") from exc
        self.accounts = accounts
        self.chat = Chat(
            config,
            store,
            lookups=LookupThread(store) if store is not None else None,
            accounts=accounts.accounts if accounts is not None else None,
            registry=accounts.registry if accounts is not None else None,
        )
        self.stopping = False
        self.address: tuple[str, int] = ("", 0)
        self.started = time.monotonic()
        self._connections = Connections(config.limits)
        # Components with figures of their own for /metrics and status (see StatsSource).
        self.stats_sources: dict[str, StatsSource] = {}
        self.metrics_address: str | None = None  # where /metrics is served, once it is
        if self.chat.keeps_history:
            self.stats_sources["history"] = StoreStats(self.chat.history.store)
        # A node of a network (issue 24): the chat's bus goes through Redis.
        self.node: Node | None = None
        if config.cluster is not None:
            from chatd.cluster.node import Node  # only here: it imports redis-py

            self.node = Node(config, self.chat)
            self.chat.bus = self.node.bus
            self.stats_sources["cluster"] = self.node
        self._listeners = Listeners()
        self.irc = IrcListener(config, self.chat) if config.irc.listen is not None else None
        count = config.server.io_threads or len(os.sched_getaffinity(0))
        interval = config.server.write_interval_ms / 1000
        threads = config.server.handshake_threads
        self._handshake_threads = (
            JobThreads("chatd-handshake", threads, priority.lower if priority is not None else None)
            if threads
            else None
        )
        self._workers = [
            Worker(self, index, interval, handshake_threads=self._handshake_threads) for index in range(count)
        ]
        self.reloader = Reloader(self, notifier)

    @property
    def config(self) -> Config:
        return self.settings.config

    @property
    def limits(self) -> LimitsConfig:
        return self.settings.config.limits

    def healthy(self) -> bool:
        """Every I/O worker is running (a crashed one withholds the systemd watchdog)."""
        return self.stopping or all(worker.running for worker in self._workers)

    def ready(self) -> bool:
        """What `/healthz` says: running, healthy, and a node only while it
        serves with its reader near the log's head."""
        return not self.stopping and self.healthy() and (self.node is None or self.node.healthy())

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Bind, start the threads and return the bound (host, port).

        Raises:
            StartupError: the address cannot be bound; Redis cannot be reached.
            ConfigError: (a node) Redis keeps nothing on disk; the node name is taken.
        """
        if self.node is not None:
            from chatd.cluster.node import StartError

            try:
                self.node.start()
            except StartError as exc:
                raise StartupError(str(exc)) from exc
        self.address = self._listeners.open_chat(self.config)
        irc = self._listeners.open_irc(self.config, self.irc) if self.irc is not None else None
        if self._handshake_threads is not None:
            self._handshake_threads.start()
        for worker in self._workers:
            worker.start()
            for listener in self._listeners.sockets():
                worker.watch_listener(listener)
        if irc is not None:
            host, port = irc.getsockname()[:2]
            log.info("irc_listening", host=host, port=port, server_name=self.config.irc.name)
        log.info("listening", host=self.address[0], port=self.address[1], io_threads=len(self._workers))
        for warning in memory_warnings(self.settings.tls_context):
            log.warning("tls_buffers_kept", reason=warning)
        return self.address

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, say `BYE shutdown` to everyone, close, join threads."""
        self.stopping = self.chat.stopping = True
        self._connections.begin_stop()
        log.info("shutdown", clients=len(self.chat.nicks), connections=len(self._connections))
        self._close_listener(grace)
        for worker in self._workers:
            worker.for_each_connection(lambda conn: conn.begin_close("shutdown"))
        self._connections.wait_closed(grace)
        for worker in self._workers:
            worker.stop()
        if self.accounts is not None:
            self.accounts.stop()
        if self.node is not None:
            self.node.stop()  # after the sessions' leaves were queued
        deadline = time.monotonic() + grace
        stuck = [w.name for w in self._workers if not w.join(max(0.0, deadline - time.monotonic()))]
        if stuck or len(self._connections):
            log.warning("sessions_still_running", count=len(self._connections), threads=stuck)
        if self._handshake_threads is not None:
            self._handshake_threads.stop()  # after the workers: none hands a step over now
        self.chat.close()

    def _close_listener(self, grace: float) -> None:
        """Every worker stops accepting, then the port closes: new clients are refused."""
        unwatched = []
        for worker in self._workers:
            done = threading.Event()
            worker.unwatch_listener(done)
            unwatched.append(done)
        deadline = time.monotonic() + grace
        for done in unwatched:
            done.wait(max(0.0, deadline - time.monotonic()))
        self._listeners.close()

    # -- accepting (on the workers' threads) -----------------------------------------------

    def accept_from(self, acceptor: Worker, listener: int) -> bool:
        """Accept what is waiting on `listener` (a descriptor), up to a batch, on
        `acceptor`'s thread; True if out of descriptors or memory."""

        def admit(sock: socket.socket, peer: tuple[str, int], kind: str) -> None:
            self._admit(sock, peer, acceptor, kind)

        return self._listeners.accept(listener, lambda: self.stopping, admit)

    def _admit(self, sock: socket.socket, peer: tuple[str, int], acceptor: Worker, kind: str) -> None:
        ip = peer[0]
        now = time.monotonic()
        banned = self.chat.accounts is not None and self.chat.accounts.banned(ip) is not None
        fenced = self.node is not None and not self.node.serving  # try another node
        refusal = protocol.BANNED if banned else protocol.SERVER_FULL if fenced else None
        conn_id, reject, told = self._connections.admit(ip, now, refusal)
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
        if not worker.adopt(sock, peer, conn_id, reject, kind) and not acceptor.adopt(
            sock, peer, conn_id, reject, kind
        ):
            sock.close()  # both stopped meanwhile: nobody is left to serve it
            self.release(ip, reject)

    # -- registry (called by workers) -------------------------------------------------

    def open_endpoint(
        self, worker: Worker, sock: socket.socket, peer: tuple[str, int], conn_id: int, reject: str | None, kind: str
    ) -> Endpoint:
        """A new client's endpoint, on `worker`'s thread; its codec comes after the handshake."""
        settings = self.settings
        alpn = HTTP_ALPN.encode() if settings.config.web.enabled and kind == "chat" else None
        tls = TLSStream(sock, settings.tls_context, worker.scratch, alpn)
        endpoint = Endpoint(self, worker, tls, peer, conn_id, reject, kind)
        self._connections.add(endpoint)
        return endpoint

    def open_codec(self, endpoint: Endpoint, alpn: str | None) -> Codec:
        """Lines and a chat session for a client that negotiated no ALPN (the line
        protocol); HTTP for one that negotiated `http/1.1` (a browser), whose
        session comes with its WebSocket; IRC for a client of the IRC listener."""
        if endpoint.kind == "irc" and self.irc is not None:
            return self.irc.open_codec(endpoint)
        if alpn == HTTP_ALPN:

            def open_session(outlet: Outlet) -> Session:
                return Session(self.chat, outlet, endpoint.context)

            return HttpCodec(endpoint, self.settings.site, open_session)
        session = Session(self.chat, endpoint, endpoint.context)
        return LineCodec(endpoint, session)

    def unregister(self, endpoint: Endpoint) -> None:
        self._connections.remove(endpoint)

    def release(self, ip: str, reject: str | None) -> None:
        """Give back the admission slot taken in `_admit`."""
        self._connections.release(ip, reject)

    def note_handshake_failure(self) -> None:
        self._connections.note_handshake_failure()

    def note_rejected(self, endpoint: Endpoint, reason: str) -> None:
        self._connections.note_rejected()
        log.info("rejected", session=endpoint.id, peer=endpoint.peer, reason=reason, told=True)

    # -- reload (chatd/reload.py) ----------------------------------------------------------

    def reload(self) -> dict[str, object]:
        """Re-read the config file and apply what can change live (Reloader.reload)."""
        return self.reloader.reload()

    def apply(self, settings: Settings) -> None:
        """A reload's settings: new connections get them at once (their TLS
        context, web client, limits); admission, the chat and every connection
        take the new limits."""
        self.settings = settings
        self._connections.apply(settings.config.limits)
        self.chat.configure(settings.config)
        if self.irc is not None:
            self.irc.configure(settings.config)
        if self.accounts is not None:
            self.accounts.configure(settings.config)
        for worker in self._workers:
            worker.set_write_interval(settings.config.server.write_interval_ms / 1000)
            worker.for_each_connection(lambda conn: conn.limits_changed())

    # -- figures (for /metrics and chatd/operations.py) -----------------------------------

    def snapshot(self) -> Snapshot:
        """Every figure for /metrics and `chatctl status`, read now (chatd/stats.py)."""
        tally, live = self._connections.tally(self.reloader.counts())
        figures = self.accounts.figures() if self.accounts is not None else None
        return take_snapshot(
            tally, live, self._workers, self.chat, self.settings.cert_expiry, self.stats_sources, figures
        )

    def close_from(self, network: str, reason: str, text: str) -> int:
        """Close every connection from an address in `network` (a new ban):
        `BYE <reason> <text>`; returns how many."""
        return self._connections.close_from(network, reason, text)
