"""Reload: what SIGHUP and `chatctl reload` replace, and how.

A reload reads the config file again and builds one new `Settings` (the
config, the TLS context, the web client's files and origins, the
certificate's expiry), so that no connection sees a new config with an old
certificate or the other way round; the server applies it (`Reconfigurable`:
the settings for new connections, limits to admission, the chat and every
connection), then logging takes the new `log` settings. A file that does not
load changes nothing. The keys in `RESTART_KEYS` keep their old values until
a restart, and the reply names those that changed.

What lives elsewhere: parsing and validating the file (chatd/config.py), the
TLS context (chatd/tls.py), what each piece does with new limits (its own
`configure` or `limits_changed`).
"""

from __future__ import annotations

import collections
import dataclasses
import ssl
import threading
from typing import Protocol

import structlog

from chatd.config import Config, load_config
from chatd.errors import ConfigError
from chatd.log import configure_logging
from chatd.notify import Notifier
from chatd.tls import certificate_expiry, server_context
from chatd.transport.wsframes import TextFrames
from chatd.web.files import StaticFiles

log = structlog.get_logger(__name__)

# Keys that only a restart changes: the listeners, the threads, the history file.
RESTART_KEYS = (
    "server.host",
    "server.port",
    "server.io_threads",
    "server.handshake_threads",
    "server.reuse_port",
    "control.socket",
    "history.enabled",
    "history.path",
    "metrics.listen",
    "irc.listen",
    "accounts.enabled",
    "accounts.auth_threads",
)


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


def read_settings(config: Config, tls_context: ssl.SSLContext, frames: TextFrames) -> Settings:
    """The settings `config` describes, the web client's files read now (none
    when it is off).

    Raises:
        OSError: a file of the web client cannot be read.
    """
    files = StaticFiles.load() if config.web.enabled else StaticFiles({})
    site = Site(files, frozenset(config.web.allowed_origins), frames)
    return Settings(config, tls_context, site, certificate_expiry(config.tls.cert))


class Reconfigurable(Protocol):
    """What a reload changes (chatd.server.Server)."""

    @property
    def settings(self) -> Settings: ...

    def apply(self, settings: Settings) -> None:
        """Use `settings` from now on: for new connections, and their limits for all."""


class Reloader:
    """Reloads, one at a time (SIGHUP on the main thread and `chatctl reload` on
    the control thread may ask together), counted for the metrics and told to
    systemd (`RELOADING=1`, then `READY=1`)."""

    def __init__(self, target: Reconfigurable, notifier: Notifier) -> None:
        self._target = target
        self._notifier = notifier
        self._lock = threading.Lock()
        self._results: collections.Counter[str] = collections.Counter()  # under _lock

    def counts(self) -> dict[str, int]:
        """Reloads so far by result (success, failure). Read without the lock,
        so that a scrape never waits for a reload: a copy of a few ints."""
        return dict(self._results)

    def reload(self) -> dict[str, object]:
        """Re-read the config file and apply what can change live.

        Limits, log settings, the server name, the web settings and files, and
        the TLS certificate (for new connections) change at once; the
        `RESTART_KEYS` are reported as needing a restart. A bad file changes
        nothing.

        Returns:
            {"ok": bool, "error": str | None, "restart_needed": [dotted keys]}
        """
        with self._lock:
            self._notifier.reloading()
            try:
                return self._reload()
            finally:
                self._notifier.ready()

    def _reload(self) -> dict[str, object]:
        old = self._target.settings
        try:
            new = load_config(old.config.path)
            context = server_context(new.tls, new.path, web=new.web.enabled)
            settings = read_settings(_kept(old.config, new), context, old.site.frames)
        except (ConfigError, OSError) as exc:
            self._results["failure"] += 1
            error = str(exc) if isinstance(exc, ConfigError) else f"cannot read the web client's files: {exc}"
            log.error("config_reload_failed", error=error)
            return {"ok": False, "error": error, "restart_needed": []}
        restart = [key for key in RESTART_KEYS if _get(old.config, key) != _get(new, key)]
        self._target.apply(settings)
        self._results["success"] += 1
        configure_logging(new.log)
        log.info("config_reloaded", path=str(new.path), restart_needed=restart)
        return {"ok": True, "error": None, "restart_needed": restart}


def _kept(old: Config, new: Config) -> Config:
    """`new`, with the old values of the keys that need a restart."""
    server = dataclasses.replace(
        new.server,
        host=old.server.host,
        port=old.server.port,
        io_threads=old.server.io_threads,
        handshake_threads=old.server.handshake_threads,
    )
    history = dataclasses.replace(new.history, enabled=old.history.enabled, path=old.history.path)
    accounts = dataclasses.replace(new.accounts, enabled=old.accounts.enabled, auth_threads=old.accounts.auth_threads)
    return dataclasses.replace(
        new, server=server, control=old.control, history=history, metrics=old.metrics, accounts=accounts
    )


def _get(config: Config, dotted: str) -> object:
    section, key = dotted.split(".")
    return getattr(getattr(config, section), key)
