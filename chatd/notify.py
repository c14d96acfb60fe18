"""sd_notify(3) without a library: readiness, status, reload and watchdog for systemd.

With `NOTIFY_SOCKET` unset (not under systemd, or not Type=notify) every
method does nothing. Sending never raises: a lost notification must not take
the daemon down; the first failure is logged.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)

# systemd reads its notification socket promptly; a full queue means it is stuck, and
# the main thread must not be stuck with it (the watchdog would catch that anyway).
_SEND_TIMEOUT = 1.0


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._watchdog_usec = watchdog_usec
        self._lock = threading.Lock()
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        path = environ.get("NOTIFY_SOCKET") or None
        if path and path.startswith("@"):
            path = "\0" + path[1:]  # abstract namespace
        watchdog: int | None = None
        pid = environ.get("WATCHDOG_PID")
        if environ.get("WATCHDOG_USEC", "").isdigit() and (not pid or pid == str(os.getpid())):
            watchdog = int(environ["WATCHDOG_USEC"]) or None
        return cls(path, watchdog)

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half of what systemd allows."""
        return self._watchdog_usec / 2_000_000 if self._watchdog_usec else None

    def ready(self, status: str | None = None) -> None:
        self._send("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))

    def status(self, text: str) -> None:
        self._send(f"STATUS={_one_line(text)}")

    def reloading(self) -> None:
        # systemd >= 253 wants MONOTONIC_USEC with RELOADING=1 (Type=notify-reload).
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def _send(self, message: str) -> None:
        if not self._address:
            return
        # One socket per message, so threads share nothing but the "failed" flag; the
        # lock guards only that flag, never the I/O.
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(_SEND_TIMEOUT)
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            with self._lock:
                first, self._failed = not self._failed, True
            if first:
                log.warning("sd_notify_failed", error=str(exc), socket=self._address)


def _one_line(text: str) -> str:
    """STATUS= ends at a newline: a newline in `text` would start another assignment."""
    return " ".join(text.splitlines())
