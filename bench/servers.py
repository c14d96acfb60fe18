"""What every server under test shares, whichever it is: the `Target` base
and a `Running` server, pinning (`taskset`), the raised descriptor limit,
ports and the `listening` event a server logs, the certificates, and the
/metrics scraper.

The servers themselves are elsewhere: chatd and its variants in
bench/targets.py (with the registry of target names), ngircd, the seed and
the floor in bench/references.py.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work"  # git-ignored: run directories, the baseline tree
NOFILE = 65536
# Descriptors a server or the generator needs besides its clients' sockets (its
# listeners, epoll, log, database): the capacity scenario holds at most the
# descriptor limit less this many clients (see `capacity_clients`).
FD_RESERVE = 100
SCRAPE_INTERVAL = 1.0  # seconds between scrapes of a chatd with metrics on


class TargetUnavailable(Exception):
    """The target cannot run on this machine; the bench skips it with this note."""


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def pinned(cmd: list[str], cpu: int) -> list[str]:
    """Prefix `cmd` with `taskset -c cpu` when there is more than one CPU."""
    if cpu_count() < 2:
        return cmd
    if shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


def raise_child_nofile() -> None:
    """A server's descriptor limit, as `preexec_fn`: it runs in the child between
    fork and exec (root may raise the hard limit)."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server not listening on port {port} after {timeout}s:\n{tail(log)}")


def listening_event(
    process: subprocess.Popen[bytes], log: Path, name: str, timeout: float, event_name: str = "listening"
) -> dict[str, Any]:
    """The JSON `listening` event a server writes to its log (it has the port),
    or another event of chatd's (`metrics_listening`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail(log)}")
        for line in log.read_text(errors="replace").splitlines():
            if f'"{event_name}"' in line:
                event: dict[str, Any] = json.loads(line)
                return event
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{name} did not log `{event_name}` within {timeout:g}s:\n{tail(log)}")


def listening_port(process: subprocess.Popen[bytes], log: Path, name: str, timeout: float) -> int:
    return int(listening_event(process, log, name, timeout)["port"])


def clients_needed(spec: dict[str, Any]) -> int:
    """How many connections a scenario holds open at once, at most."""
    if spec["scenario"] == "capacity":
        return int(spec["clients"])
    if spec["scenario"] == "churn":
        return int(spec["concurrency"]) + 1
    return int(spec["n"]) + (1 if spec.get("nonreader") else 0)  # fan-out, paced, slow, rooms


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def dev_certs() -> Certs:
    """The repository's dev certificates (`make bench` creates them), else a fresh set."""
    certs_dir = REPO / "certs"
    if not all((certs_dir / f).exists() for f in ("ca.crt", "server.crt", "server.key")):
        certs_dir = WORK / "pki"
        if not (certs_dir / "server.key").exists():
            chatctl = [sys.executable, "-m", "chatctl", "gen-certs", "--out", str(certs_dir)]
            subprocess.run(chatctl, check=True, capture_output=True, cwd=REPO)
    return Certs(certs_dir / "ca.crt", certs_dir / "server.crt", certs_dir / "server.key")


class Scraper:
    """Asks a chatd's /metrics every `interval` seconds while a run lasts, as
    Prometheus would (more often than most do), so that a run with metrics on
    pays for being scraped too; counts its scrapes in `notes`."""

    def __init__(self, port: int, notes: dict[str, Any], interval: float = SCRAPE_INTERVAL) -> None:
        self.port = port
        self.notes = notes
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-scraper", daemon=True)
        notes.update(metrics_scrape_interval_s=interval, metrics_scrapes=0, metrics_scrape_failures=0)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            request = b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    sock.sendall(request)
                    reply = b""
                    while chunk := sock.recv(65536):
                        reply += chunk
                ok = reply.startswith(b"HTTP/1.1 200 ")
            except OSError:
                ok = False
            self.notes["metrics_scrapes" if ok else "metrics_scrape_failures"] += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    workdir: Path
    notes: dict[str, Any] = field(default_factory=dict)
    scraper: Scraper | None = None

    @property
    def pid(self) -> int:
        # With `taskset` as the parent command, exec replaces it: same pid.
        return self.process.pid

    def stop(self, timeout: float = 15.0) -> int:
        if self.scraper is not None:
            self.scraper.stop()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


class Target:
    name = ""
    dialect = ""
    family = ""  # "chatd" for chatd and its variants: same log, same checks
    keys: tuple[str, ...] | None = None  # the scenario keys (prefixes) it runs; None: all
    websocket = False  # serves its lines over a WebSocket too (the `websocket` scenarios)
    # "pinned": server on CPU 0, generator on CPU 1. "shared": neither pinned,
    # so the server may use every CPU and the generator takes its share.
    placement = "pinned"

    def __init__(self, certs: Certs) -> None:
        self.certs = certs

    def runs(self, key: str, spec: dict[str, Any] | None = None) -> bool:
        if spec is not None and spec.get("websocket") and not self.websocket:
            return False
        return self.keys is None or any(key.startswith(prefix) for prefix in self.keys)

    def check(self) -> None:
        """Raise TargetUnavailable if this target cannot run here."""

    def version(self) -> str:
        return ""

    def start(self, workdir: Path, spec: dict[str, Any]) -> Running:
        raise NotImplementedError

    def _spawn(
        self, cmd: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                pinned(cmd, 0) if self.placement == "pinned" else cmd,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                preexec_fn=raise_child_nofile,
                env=env,
            )
