"""chatd's command line: config → logging → TLS → Server, signals, exit codes.

The only place that exits the process or writes a config error to stderr.
Signals are blocked in every thread and taken synchronously by the main
thread with `sigtimedwait`, so no handler ever runs in the middle of a
worker's work: SIGTERM/SIGINT stop, SIGHUP reloads.
"""

from __future__ import annotations

import argparse
import errno
import os
import resource
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from chatd import __version__
from chatd.addresses import format_host_port
from chatd.config import Config, default_config_path, load_config
from chatd.core.history import EventStore
from chatd.errors import ConfigError, StartupError
from chatd.log import configure_logging
from chatd.notify import Notifier
from chatd.priority import BackgroundPriority
from chatd.server import Server
from chatd.tls import server_context

if TYPE_CHECKING:
    from chatd.account_service import AccountService
    from chatd.control import ControlServer
    from chatd.metrics_http import MetricsServer

log = structlog.get_logger(__name__)

EX_OK = 0
EX_UNAVAILABLE = 69  # os.EX_UNAVAILABLE: could not bind; systemd may retry
EX_CONFIG = 78  # os.EX_CONFIG: the unit's RestartPreventExitStatus stops a crash loop
SHUTDOWN_GRACE = 5.0
STATUS_INTERVAL = 10.0
# Descriptors chatd holds besides one per client: its listeners, epoll and
# wake-up pairs, the log, the history database and its journal.
DESCRIPTOR_RESERVE = 64
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
# The main thread's clock: SIGALRM every status interval (`_serve`). Waited for
# with the others, so that the wait has no timeout of its own: CPython 3.11's
# `sigtimedwait` answers an unfilled siginfo, its signal number whatever was
# on the stack, when a wait interrupted (a debugger or profiler attaching
# stops the process) finds its timeout past; chatd read that as SIGTERM, SIGHUP
# or an unknown signal, and stopped or crashed. `sigwaitinfo` just waits again.
_WAITED = _SIGNALS | {signal.SIGALRM}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatd", description="A self-hosted TLS chat daemon.")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML configuration file (default: {default_config_path()})",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration and certificates, then exit (0 ok, 78 bad)",
    )
    parser.add_argument("--version", action="version", version=f"chatd {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config or default_config_path())
        context = server_context(config.tls, config.path, web=config.web.enabled)
    except ConfigError as exc:
        sys.stderr.write(f"chatd: config error: {exc}\n")
        return EX_CONFIG
    if args.check_config:
        sys.stdout.write(f"chatd: {config.path}: configuration OK\n")
        return EX_OK
    configure_logging(config.log)
    raise_descriptor_limit(config.limits.max_clients)
    if os.geteuid() == 0:
        log.warning("running_as_root", hint="run chatd as an unprivileged user (see systemd/chatd.service)")
    # Block before any thread starts, so that every thread inherits the mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)
    notifier = Notifier.from_environ()
    background = BackgroundPriority()  # one for all, so a refusal is logged once
    try:
        server = Server(
            config,
            context,
            notifier,
            _open_history(config, background),
            _open_accounts(config, background),
            background,
        )
    except ConfigError as exc:
        sys.stderr.write(f"chatd: config error: {exc}\n")
        return EX_CONFIG
    except StartupError as exc:
        sys.stderr.write(f"chatd: {exc}\n")
        return EX_UNAVAILABLE
    # Ready before the chat port opens (it imports prometheus_client); bound after it.
    metrics = _metrics_server(config, server)
    try:
        server.start()
    except StartupError as exc:
        sys.stderr.write(f"chatd: {exc}\n")
        return EX_UNAVAILABLE
    except ConfigError as exc:  # a node's Redis keeps nothing on disk, or its name is taken
        sys.stderr.write(f"chatd: config error: {exc}\n")
        return EX_CONFIG
    control = None
    try:
        control = _start_control(config, server)
        if metrics:
            _start_metrics(config, server, metrics)
    except ConfigError as exc:
        if control:
            control.stop()
        server.stop(0)
        sys.stderr.write(f"chatd: config error: {exc}\n")
        return EX_CONFIG
    notifier.ready(_status_line(server))
    try:
        _serve(server, notifier)
    finally:
        notifier.stopping()
        if control:
            control.stop()
        server.stop(SHUTDOWN_GRACE)  # /healthz says 503 meanwhile
        if metrics:
            metrics.stop()  # a no-op if it never started
        log.info("stopped")
    return EX_OK


def raise_descriptor_limit(max_clients: int) -> None:
    """Raise the soft RLIMIT_NOFILE towards what `max_clients` needs, as far as
    the hard limit allows, and warn (`descriptor_limit_low`) when that is not
    enough. A shell's soft limit of 1,024 would otherwise stop chatd near a
    thousand clients, each further one waiting for a descriptor (EMFILE)."""
    needed = max_clients + DESCRIPTOR_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except OSError:  # refused, as systemd/chatd.service's filter refuses @resources
            wanted = soft
    if wanted < needed:
        log.warning(
            "descriptor_limit_low",
            limit=wanted,
            max_clients=max_clients,
            hint="one descriptor per client: raise LimitNOFILE= (systemd/chatd.service) or `ulimit -Hn`",
        )


def _open_history(config: Config, background: BackgroundPriority) -> EventStore | None:
    if not config.history.enabled:
        return None
    from chatd.storage.sqlite import open_store

    return open_store(config.history, config.path, background)


def _open_accounts(config: Config, background: BackgroundPriority) -> AccountService | None:
    if not config.accounts.enabled:
        return None
    from chatd.account_service import open_account_service  # argon2 only when accounts are on

    return open_account_service(config, background)


def _start_control(config: Config, server: Server) -> ControlServer | None:
    if config.control.socket is None:
        return None
    from chatd.control import ControlServer  # only when configured: it is optional
    from chatd.operations import Operations

    accounts = None
    if server.chat.accounts is not None:
        from chatd.account_operations import AccountOperations

        accounts = AccountOperations(server.chat.accounts, server, lambda: server.config.limits.max_nick_length)
    rooms = None
    if server.chat.registry is not None:
        from chatd.room_operations import RoomOperations

        rooms = RoomOperations(server.chat)
    control = ControlServer(config.control.socket, Operations(server, server.node), accounts, rooms)
    try:
        control.start()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{config.path}: control.socket: cannot listen on {config.control.socket}: {exc}") from exc
    return control


def _metrics_server(config: Config, server: Server) -> MetricsServer | None:
    address = config.metrics.address
    if address is None:
        return None
    # Only when configured: prometheus_client is imported by these alone.
    from chatd import metrics
    from chatd.metrics_http import Handler, MetricsServer

    registry = metrics.build_registry(server.snapshot)
    handler = Handler(
        lambda: metrics.render(registry),
        metrics.CONTENT_TYPE,
        server.ready,
    )
    return MetricsServer(address, handler)


def _start_metrics(config: Config, server: Server, listener: MetricsServer) -> None:
    try:
        host, port = listener.start()
    except OSError as exc:
        # socket.create_server() adds the address to strerror; the errno's text is enough here.
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or str(exc)
        hint = " (is another chatd or exporter using it?)" if exc.errno == errno.EADDRINUSE else ""
        raise ConfigError(
            f"{config.path}: metrics.listen: cannot listen on {config.metrics.listen}: {reason}{hint}"
        ) from exc
    server.metrics_address = format_host_port(host, port)


def _serve(server: Server, notifier: Notifier) -> None:
    """Wait for signals; reload on SIGHUP; return on SIGTERM or SIGINT."""
    watchdog = notifier.watchdog_interval
    interval = min(watchdog, STATUS_INTERVAL) if watchdog else STATUS_INTERVAL
    withheld = False
    signal.setitimer(signal.ITIMER_REAL, interval, interval)
    try:
        while True:
            signo = signal.sigwaitinfo(_WAITED).si_signo
            if signo == signal.SIGALRM:
                healthy = server.healthy()
                if watchdog and healthy:
                    notifier.watchdog()
                elif watchdog and not withheld:
                    # An I/O worker died: let systemd restart the service (WatchdogSec).
                    log.error("watchdog_withheld", reason="an I/O worker stopped")
                withheld = not healthy
                notifier.status(_status_line(server))
                continue
            if signo == signal.SIGHUP:
                log.info("signal_received", signal="SIGHUP")
                server.reload()
                continue
            log.info("signal_received", signal=signal.Signals(signo).name)
            return
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _status_line(server: Server) -> str:
    host, port = server.address
    return f"{len(server.chat.nicks)} clients on {host}:{port}"


if __name__ == "__main__":
    sys.exit(main())
