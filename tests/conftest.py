"""Shared fixtures: certificates made once per session by `chatctl gen-certs`,
and a real chatd subprocess per test on an ephemeral port.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from chatd import metrics
from chatd.stats import CLIENT_STATES, DISCONNECT_REASONS, AccountFigures, Snapshot, WorkerFigures
from tests.support import REPO
from tests.support.chatclient import ChatClient
from tests.support.chatctl import ScriptClient

CLIENT_NAMES = ("alice", "bob")
# What the daemon logs when a bug got as far as a worker's catch-all (docs/architecture.md, "Errors").
CRASH_EVENTS = ("session_crashed", "callback_crashed", "worker_crashed", "accept_crashed")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse to run tests that imported chatd, chatctl or bench code from outside
    this checkout.

    An editable install (`pip install -e`) of another checkout answers imports
    that this one cannot: a module removed here (chatd.room, chatd.connection)
    would still import, from the other tree, and its tests would pass against
    code this checkout no longer has.
    """
    stray = {
        name: module.__file__
        for name, module in list(sys.modules.items())
        if name.partition(".")[0] in ("chatd", "chatctl", "bench", "tests")
        and getattr(module, "__file__", None)
        and not Path(module.__file__).resolve().is_relative_to(REPO)
    }
    if stray:
        raise pytest.UsageError(f"modules imported from outside {REPO}: {stray}")


@dataclass(frozen=True)
class PKI:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path

    def client(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"client-{name}.crt", self.dir / f"client-{name}.key"


def run_chatctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def make_pki(out: Path, clients: tuple[str, ...] = CLIENT_NAMES) -> PKI:
    args = ["gen-certs", "--out", str(out)]
    for name in clients:
        args += ["--client", name]
    result = run_chatctl(*args)
    assert result.returncode == 0, result.stderr
    return PKI(out, out / "ca.crt", out / "server.crt", out / "server.key")


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """An empty directory with a short path, for AF_UNIX sockets.

    Their paths are limited to 107 bytes, and pytest's tmp_path can be longer.
    """
    path = Path(tempfile.mkdtemp(prefix="chatd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Daemon:
    """chatd as a subprocess, its stderr in a file (never an unread pipe)."""

    def __init__(self, workdir: Path, pki: PKI, overrides: dict[str, Any]) -> None:
        self.workdir = workdir
        self.pki = pki
        base = {
            "server": {"host": "127.0.0.1", "port": 0},
            "tls": {"cert": str(pki.server_cert), "key": str(pki.server_key)},
            # Limits that would get in the way of many clients from 127.0.0.1
            # are off; the tests of those limits turn them on.
            "limits": {"message_rate": 0, "max_clients_per_ip": 0, "connects_per_ip_per_minute": 0},
            "log": {"format": "json", "level": "debug"},
            "control": {"socket": None},
            # On, as by default, but on a free port: never the 9464 of a chatd running here.
            "metrics": {"listen": "127.0.0.1:0"},
        }
        self.config = _merge(base, overrides)
        self.config_path = workdir / "chatd.yaml"
        self.log_path = workdir / "chatd.log"
        self.process: subprocess.Popen[bytes] | None = None
        # Where clients connect: the listener's own address, or IPv4 loopback for a wildcard.
        host = self.config["server"]["host"]
        self.host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        self.port = 0
        self.clients: list[ChatClient] = []
        self.command = [sys.executable, "-m", "chatd"]
        self.expected_crashes: set[str] = set()  # events whose tracebacks a test planted

    def write_config(self, config: dict[str, Any] | None = None) -> None:
        self.config_path.write_text(yaml.safe_dump(config or self.config))

    def start(self, env: dict[str, str] | None = None, wait: bool = True) -> Daemon:
        self.write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.command, "--config", str(self.config_path)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env={**os.environ, **(env or {})},
            )
        if wait:
            listening = self.wait_for_event("listening", timeout=20)
            self.port = listening["port"]
            pinned = self.config["server"].get("io_threads", 0)
            assert not pinned or listening["io_threads"] == pinned, listening
            if self.config.get("metrics", {}).get("listen"):
                self.metrics_address(timeout=20)  # the end of start-up: a test may change limits now
        return self

    def metrics_address(self, timeout: float = 10.0) -> tuple[str, int]:
        """Where this daemon serves /metrics (its `metrics_listening` event)."""
        event = self.wait_for_event("metrics_listening", timeout=timeout)
        return event["host"], event["port"]

    def events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a traceback or other non-JSON output; the log shows it on failure
        return events

    def find_events(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]

    def wait_for_event(self, event: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"chatd exited ({self.process.returncode}):\n{self.log()}")
            matches = self.find_events(event, **fields)
            return matches[-1] if matches else None

        return wait_until(found, timeout, f"event {event} {fields}")  # type: ignore[no-any-return]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, nick: str | None = None, **kwargs: Any) -> ChatClient:
        """A TLS client (registered as `nick` if given), closed at teardown."""
        kwargs.setdefault("host", self.host)
        if nick is None:
            client = ChatClient(self.port, self.pki.ca, **kwargs)
        else:
            client = ChatClient.registered(self.port, self.pki.ca, nick, **kwargs)
        self.clients.append(client)
        return client

    @property
    def pid(self) -> int:
        assert self.process is not None, "the daemon was never started"
        return self.process.pid

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        assert self.process is not None
        for client in self.clients:
            client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                raise AssertionError(f"chatd did not stop within {timeout}s:\n{self.log()}") from None
        return self.process.returncode


def http_exchange(address: tuple[str, int], request: bytes, timeout: float = 10.0) -> bytes:
    """Send `request` to a plain-HTTP listener and read until it closes."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def http_get(address: tuple[str, int], path: str) -> tuple[int, dict[str, str], bytes]:
    """`GET path` from the metrics listener: the status, headers (lower-case names) and body."""
    reply = http_exchange(address, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("ascii").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    assert status_line.startswith("HTTP/1.1 "), reply[:200]
    assert int(headers["content-length"]) == len(body), reply[:200]
    return int(status_line.split(" ")[1]), headers, body


class Scrape(dict[tuple[str, tuple[tuple[str, str], ...]], float]):
    """One /metrics answer: `scrape("chatd_disconnects_total", reason="quit")` is a sample's value."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self[sample.name, tuple(sorted(sample.labels.items()))] = sample.value

    def __call__(self, name: str, **labels: str) -> float:
        return self[name, tuple(sorted(labels.items()))]

    def names(self) -> set[str]:
        return {name for name, _ in self}


def scrape(daemon: Daemon) -> Scrape:
    status, headers, body = http_get(daemon.metrics_address(), "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4"), body[:200]
    return Scrape(body.decode())


def fake_snapshot(**changes: Any) -> Snapshot:
    """A Snapshot with a figure in every field (a history source too); `changes` replace some."""
    figures: dict[str, Any] = dict(
        clients=dict(zip(CLIENT_STATES, (1, 2, 3, 4), strict=True)),
        accepted=10,
        refused={"server_full": 1, "throttled": 0, "too_many_connections": 0},
        disconnects={**dict.fromkeys(DISCONNECT_REASONS, 0), "quit": 5},
        tls_handshake_failures=2,
        lines_received=100,
        lines_delivered=300,
        bytes_received=5000,
        bytes_sent=15000,
        messages_in=90,
        rate_limited_lines=4,
        slow_consumers=1,
        rooms=3,
        room_members=7,
        send_queue_bytes=2048,
        send_queue_largest_bytes=1024,
        workers=(WorkerFigures("chatd-io-0", True, 0.002), WorkerFigures("chatd-io-1", False, 3.5)),
        reloads={"success": 2, "failure": 1},
        cert_expiry=1_900_000_000.0,
        accounts=AccountFigures(
            logins={("password", "success"): 3, ("password", "failure"): 2, ("password", "busy"): 1},
            throttled=1,
            hashes=5,
            hash_seconds=0.25,
            queue_waiting=1,
            queue_running=1,
            accounts=4,
            disabled=1,
            tokens=2,
        ),
        sources={
            "history": {
                "rows_written_total": 12.0,
                "write_failures_total": 0.0,
                "dropped_total": 0.0,
                "waiting_events": 3.0,
                "write_lag_seconds": 0.25,
            }
        },
    )
    figures.update(changes)
    return Snapshot(**figures)


def render_metrics(snap: Snapshot) -> str:
    """What /metrics would answer for `snap`."""
    return metrics.render(metrics.build_registry(lambda: snap)).decode()


def recv_greeting(tls: ssl.SSLSocket) -> None:
    """Read a raw TLS socket's first lines, in as many records as they come:
    exactly `HELLO 5 chatd <version>`, the `ACCOUNTS` line of a server with
    accounts, and `NICK` (docs/protocol.md, "Version")."""
    data = b""
    while not data.endswith(b"NICK\n"):
        chunk = tls.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    lines = data.split(b"\n")
    assert lines[0].startswith(b"HELLO 5 chatd ") and lines[-2:] == [b"NICK", b""], data
    assert len(lines) == 3 or (len(lines) == 4 and lines[1].startswith(b"ACCOUNTS ")), data


def defaults_for_load(**overrides: int) -> dict[str, int]:
    """config/chatd.yaml's limits, with only the rate and per-IP limits lifted
    (as for any load test); the test daemon's other limits are the defaults too."""
    return {
        "message_rate": 0,
        "max_clients_per_ip": 0,
        "connects_per_ip_per_minute": 0,
        "send_queue_bytes": 98304,
        **overrides,
    }


def assert_healthy(daemon: Daemon, nick: str = "fresh", **client: Any) -> None:
    """The daemon runs, logged no crash, and serves a fresh client: `nick`
    registers and gets an answer to `/ping`.

    `client` goes to ChatClient: a `cert` for mutual TLS, a `source` address
    for the per-IP limits.
    """
    assert daemon.process is not None and daemon.process.poll() is None, daemon.log()
    for event in CRASH_EVENTS:
        assert not daemon.find_events(event), daemon.log()
    fresh = daemon.client(nick, **client)
    fresh.send("/ping healthy")
    assert fresh.readline() == "PONG healthy"
    fresh.close()


def with_io_threads(*counts: int) -> pytest.MarkDecorator:
    """Run a test once per worker count: the test passes `server={"io_threads": io_threads}`.

    Fan-out and slow-consumer paths differ between one worker (everything in one
    thread's turn) and several (output crosses threads through wake-ups), so
    these tests pin the count instead of following the machine's CPUs.
    """
    return pytest.mark.parametrize("io_threads", counts, ids=[f"io_threads={n}" for n in counts])


@pytest.fixture
def start_daemon(tmp_path: Path, certs: PKI) -> Iterator[Callable[..., Daemon]]:
    """Factory: `start_daemon(limits={...})` starts chatd with those config overrides."""
    daemons: list[Daemon] = []

    def start(env: dict[str, str] | None = None, command: list[str] | None = None, **overrides: Any) -> Daemon:
        workdir = tmp_path / f"daemon{len(daemons)}"
        workdir.mkdir()
        daemon = Daemon(workdir, certs, overrides)
        daemon.command = command or daemon.command
        daemons.append(daemon)
        return daemon.start(env=env)

    yield start
    for daemon in daemons:
        if daemon.process is None:
            continue
        status = daemon.stop()
        assert status == 0, f"chatd exited with {status}:\n{daemon.log()}"
        tracebacks = [e for e in daemon.events() if "exception" in e and e["event"] not in daemon.expected_crashes]
        assert not tracebacks, f"chatd logged an exception:\n{daemon.log()}"


@pytest.fixture
def daemon(start_daemon: Callable[..., Daemon]) -> Daemon:
    """A chatd with the test defaults (rate limits off)."""
    return start_daemon()


@pytest.fixture
def script_clients() -> Iterator[list[ScriptClient]]:
    """`chatctl connect` processes in script mode that a test starts: killed at teardown."""
    clients: list[ScriptClient] = []
    yield clients
    for client in clients:
        client.kill()


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as CPython allows, to shake out races."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """`target(i)` in `count` threads started together; their errors fail the test."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            target(index)
        except BaseException as exc:  # reported by the calling thread below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), name=f"test-thread-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert not errors, errors


def chatctl_for(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    """`chatctl COMMAND --config <daemon's config> ARGS...`."""
    return subprocess.run(
        [sys.executable, "-m", "chatctl", args[0], "--config", str(daemon.config_path), *args[1:]],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
