"""The servers under test, each started fresh for every run and stopped after:
chatd (this repository) with config/chatd.yaml's values and variants of it,
ngircd (the C reference, Debian package), the seed tutorial server
(../shared/seed_server.py) and the floor (bench/floor_server.py).

Each runs pinned to CPU 0 when the machine has two or more (the load
generator gets CPU 1), except the chatd-ioN variants, which compare
`io_threads` on the whole machine ("shared" placement: neither process
pinned). Each has a raised file-descriptor limit and its output goes to a
log file in the run's work directory (never an unread pipe).
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import baseline
from bench.baseline import chatd_version

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work"  # git-ignored: run directories, the baseline tree
CHATD_YAML = REPO / "config" / "chatd.yaml"
SEED_PATH = Path(__file__).resolve().parents[2] / "shared" / "seed_server.py"
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
            raise RuntimeError(f"server exited with {process.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server not listening on port {port} after {timeout}s:\n{_tail(log)}")


def listening_event(
    process: subprocess.Popen[bytes], log: Path, name: str, timeout: float, event_name: str = "listening"
) -> dict[str, Any]:
    """The JSON `listening` event a server writes to its log (it has the port),
    or another event of chatd's (`metrics_listening`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{_tail(log)}")
        for line in log.read_text(errors="replace").splitlines():
            if f'"{event_name}"' in line:
                event: dict[str, Any] = json.loads(line)
                return event
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{name} did not log `{event_name}` within {timeout:g}s:\n{_tail(log)}")


def listening_port(process: subprocess.Popen[bytes], log: Path, name: str, timeout: float) -> int:
    return int(listening_event(process, log, name, timeout)["port"])


def clients_needed(spec: dict[str, Any]) -> int:
    """How many connections a scenario holds open at once, at most."""
    if spec["scenario"] == "capacity":
        return int(spec["clients"])
    if spec["scenario"] == "churn":
        return int(spec["concurrency"]) + 1
    return int(spec["n"]) + (1 if spec.get("nonreader") else 0)  # fan-out, paced, slow, rooms


def _tail(path: Path, lines: int = 30) -> str:
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


def chatd_config(
    certs: Certs,
    spec: dict[str, Any],
    *,
    io_threads: int | None = None,
    tuned: bool = False,
    source: Path = CHATD_YAML,
    metrics: bool = True,
    write_interval_ms: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """config/chatd.yaml as users get it, with what a benchmark must change.

    Changed: the addresses (127.0.0.1, port 0; the IRC listener's too), the certificate, JSON logs, no
    control socket, and the limits lifted for ngircd too: the message rate and
    the two per-IP limits (every client comes from 127.0.0.1). Metrics, in a
    file that has them, stay on but on port 0 (never the 9464 of a chatd
    running here, nor another target's), or are turned off (`metrics=False`);
    the IRC listener, likewise, on port 0. `limits.max_clients` is raised
    only for a scenario that holds more connections than the default allows
    (capacity), and beyond 5,000 clients `register_timeout` too. `io_threads` is the
    file's unless a variant sets it, and so is `write_interval_ms`. `tuned` restores the settings every
    chatd run used before (one I/O thread, 8 MiB send queues but in the
    slow-consumer scenario, a 600 s registration window), for a labelled
    comparison row. `source` is the file (a baseline tree has its own).
    Returns the config and the changes to the file's values.
    """
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    limits = config["limits"]
    changes: dict[str, Any] = {"message_rate": 0, "max_clients_per_ip": 0, "connects_per_ip_per_minute": 0}
    needed = clients_needed(spec)
    if needed > limits["max_clients"]:
        changes["max_clients"] = needed
    if spec["scenario"] == "capacity" and needed > 5000:
        # All register at once: a JOIN to every member for each, O(N²), and the
        # last of 20,000 registers minutes after its handshake (README, capacity).
        changes["register_timeout"] = 1800
    if io_threads is not None:
        changes["io_threads"] = io_threads
    if write_interval_ms is not None:
        changes["write_interval_ms"] = write_interval_ms
    if tuned:
        changes.update(
            io_threads=1,
            max_clients=max(10000, needed),
            register_timeout=600,
            send_queue_bytes=98304 if spec["scenario"] == "slow" else 8 * 1024 * 1024,
        )
    for key, value in changes.items():
        (config["server"] if key in ("io_threads", "write_interval_ms") else limits)[key] = value
    config["server"].update(host="127.0.0.1", port=0)
    config["tls"].update(cert=str(certs.cert), key=str(certs.key))
    config["log"]["format"] = "json"
    config["control"]["socket"] = None
    if (config.get("irc") or {}).get("listen"):  # on in the file (issue 23): on a free port, as the chat port
        config["irc"]["listen"] = "127.0.0.1:0"
    if "metrics" in config:  # a baseline tree from before issue 14 has none
        config["metrics"]["listen"] = "127.0.0.1:0" if metrics else None
        if not metrics:
            changes["metrics.listen"] = None
    if (config.get("irc") or {}).get("listen"):
        # Never 6697 itself: two chatds at once (a bench beside a callgrind run,
        # another checkout's tests) would fight over it, as over 9464.
        config["irc"]["listen"] = "127.0.0.1:0"
    return config, changes


class ChatdTarget(Target):
    """chatd with config/chatd.yaml's values (see `chatd_config`); variants set
    `io_threads` (and then run unpinned) or restore the old tuned settings.

    It runs the chatd of `tree`, this checkout: `python -m chatd` with the
    tree as working directory and first on PYTHONPATH, so that a chatd
    installed in the venv (an editable install of another checkout) is never
    the one measured; `check` makes sure of it."""

    dialect = "chatd"
    family = "chatd"
    websocket = True
    tree = REPO

    def __init__(
        self,
        certs: Certs,
        name: str = "chatd",
        io_threads: int | None = None,
        tuned: bool = False,
        keys: tuple[str, ...] | None = None,
        history: bool = True,
        metrics: bool = True,
        accounts: bool = True,
        control: bool = False,
        write_interval_ms: float | None = None,
    ) -> None:
        super().__init__(certs)
        self.name = name
        self.write_interval_ms = write_interval_ms  # None: the file's
        self.io_threads = io_threads
        self.tuned = tuned
        self.history = history  # False: history.enabled false, for "history on vs off"
        self.keys = keys
        self.metrics = metrics
        self.accounts = accounts  # False: accounts.enabled false, for "accounts on vs off"
        self.control = control  # the control socket on, as `<workdir>/chatd.sock` (bench/accounts.py)
        if io_threads is not None and not tuned:
            self.placement = "shared"

    def check(self) -> None:
        expected = (self.tree / "chatd" / "__init__.py").resolve()
        done = subprocess.run(
            [sys.executable, "-c", "import chatd; print(chatd.__file__)"],
            capture_output=True,
            text=True,
            cwd=self.tree,
            env=self._env(),
        )
        found = done.stdout.strip()
        if done.returncode != 0 or not found or Path(found).resolve() != expected:
            raise TargetUnavailable(
                f"python -m chatd in {self.tree} would not run {expected} "
                f"(it imports {found or done.stderr.strip()[-200:]})"
            )

    def version(self) -> str:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "chatd"], capture_output=True, text=True
        ).stdout.strip()
        return f"chatd {chatd_version(self.tree)} ({commit or 'no git'}{', chatd/ modified' if dirty else ''})"

    def _env(self) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH")
        return {**os.environ, "PYTHONPATH": str(self.tree) + (os.pathsep + path if path else "")}

    def _notes(self) -> dict[str, Any]:
        return {}

    def start(self, workdir: Path, spec: dict[str, Any]) -> Running:
        config, changes = chatd_config(
            self.certs,
            spec,
            io_threads=self.io_threads,
            tuned=self.tuned,
            source=self.tree / "config" / "chatd.yaml",
            metrics=self.metrics,
            write_interval_ms=self.write_interval_ms,
        )
        if not self.history:
            config.setdefault("history", {})["enabled"] = False
            changes["history.enabled"] = False
        if not self.accounts:
            config.setdefault("accounts", {})["enabled"] = False
            changes["accounts.enabled"] = False
        if self.control:
            config["control"]["socket"] = str(workdir / "chatd.sock")
        path = workdir / "chatd.yaml"
        path.write_text(yaml.safe_dump(config))
        log = workdir / "chatd.log"
        process = self._spawn([sys.executable, "-m", "chatd", "--config", str(path)], log, self.tree, self._env())
        event = listening_event(process, log, self.name, 20)
        notes = {
            "config_changes": changes,
            "io_threads": event.get("io_threads"),
            "send_queue_bytes": config["limits"]["send_queue_bytes"],
            "placement": self.placement,
            "metrics": bool(config.get("metrics", {}).get("listen")),
            **self._notes(),
        }
        running = Running(process, int(event["port"]), log, workdir, notes)
        if notes["metrics"]:
            try:
                metrics = listening_event(process, log, self.name, 20, "metrics_listening")
            except RuntimeError:
                running.stop()
                raise
            running.scraper = Scraper(int(metrics["port"]), notes)
        return running


class ChatdBeforeTarget(ChatdTarget):
    """chatd as it was at a baseline revision (bench/baseline.py), pinned and
    with its own config/chatd.yaml, speaking the protocol of its tree: the
    fan-out scenarios only, for "fan-out stays within 10% of today's"."""

    def __init__(self, certs: Certs, revision: str | None = None) -> None:
        super().__init__(certs, name="chatd-before", keys=("fanout",))
        self.websocket = False  # a revision from before the web client
        self.revision = revision  # None: baseline.py's default
        self.baseline: baseline.Baseline | None = None

    def check(self) -> None:
        try:
            self.baseline = baseline.extract(REPO, WORK, self.revision)
        except (baseline.BaselineError, OSError, tarfile.TarError) as exc:
            raise TargetUnavailable(f"no baseline tree: {exc}") from exc
        self.tree = self.baseline.tree
        self.dialect = self.baseline.dialect
        super().check()

    def version(self) -> str:
        return self.baseline.describe() if self.baseline else "chatd (baseline not extracted)"

    def _notes(self) -> dict[str, Any]:
        assert self.baseline is not None
        return {"baseline": self.baseline.commit, "protocol": self.baseline.protocol}


class NgircdTarget(Target):
    name = "ngircd"
    dialect = "irc"

    def check(self) -> None:
        if shutil.which("ngircd"):
            return
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise TargetUnavailable("ngircd is not installed (apt-get install ngircd)")
        print("bench: installing ngircd with apt-get ...", file=sys.stderr, flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(["apt-get", "install", "-y", "-q", "ngircd"], env=env, capture_output=True, text=True)
        if result.returncode != 0 or not shutil.which("ngircd"):
            raise TargetUnavailable(f"apt-get install ngircd failed: {result.stderr.strip()[-300:]}")

    def version(self) -> str:
        out = subprocess.run(["ngircd", "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else "ngircd ?"

    def _dh_params(self, cache: Path) -> Path:
        # ngircd (GnuTLS) generates 2048-bit DH parameters at every start without
        # a DHFile, which takes seconds; the RFC 7919 group is instant and standard.
        path = cache / "ffdhe2048.pem"
        if not path.exists():
            subprocess.run(
                [
                    "openssl",
                    "genpkey",
                    "-genparam",
                    "-algorithm",
                    "DH",
                    "-pkeyopt",
                    "dh_param:ffdhe2048",
                    "-out",
                    str(path),
                ],
                check=True,
                capture_output=True,
            )
            path.chmod(0o644)
        return path

    def start(self, workdir: Path, spec: dict[str, Any]) -> Running:
        port, plain_port = free_port(), free_port()
        (workdir / "include").mkdir()
        (workdir / "motd").write_text("")
        dh = self._dh_params(workdir.parent)
        # ngircd refuses to keep running as root and switches to ServerUID; it
        # reads the key before that, but its pid file is written after.
        os.chown(workdir, 65534, -1)
        config = f"""\
[Global]
Name = irc.bench
Info = chatd bench reference
Listen = 127.0.0.1
Ports = {plain_port}
MotdFile = {workdir}/motd
PidFile = {workdir}/ngircd.pid
ServerUID = nobody
[Limits]
# No connection limits, no penalty time (0 disables penalties: conn.c Conn_SetPenalty),
# no idle PINGs during a run. PongTimeout is also how long a connection may stay
# unregistered: capacity's 20,000 register over many minutes, as chatd's
# register_timeout is lifted for them.
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxPenaltyTime = 0
PingTimeout = 3600
PongTimeout = 3600
[Options]
DNS = no
Ident = no
PAM = no
IncludeDir = {workdir}/include
[SSL]
CertFile = {self.certs.cert}
KeyFile = {self.certs.key}
DHFile = {dh}
Ports = {port}
[Operator]
# Senders OPER up and set user mode +F, which lifts the per-loop command limit
# from 3 to 10 and skips throttling (conn.c Handle_Buffer, Throttle_Connection).
Name = bench
Password = bench
"""
        path = workdir / "ngircd.conf"
        path.write_text(config)
        log = workdir / "ngircd.log"
        test = subprocess.run(["ngircd", "--configtest", "--config", str(path)], capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"ngircd --configtest failed:\n{test.stdout[-2000:]}{test.stderr}")
        process = self._spawn(["ngircd", "--nodaemon", "--config", str(path)], log, workdir)
        wait_for_port(port, 15, process, log)
        return Running(process, port, log, workdir, {"placement": self.placement})


class SeedTarget(Target):
    name = "seed"
    dialect = "seed"
    # What it has always run; it corrupts or stalls, so each run is long.
    keys = ("fanout-50", "fanout-200", "fanout-1000", "paced", "capacity", "slow")

    def check(self) -> None:
        if not SEED_PATH.exists():
            raise TargetUnavailable(f"{SEED_PATH} not found")

    def version(self) -> str:
        return f"{SEED_PATH.name} (Python {sys.version.split()[0]}, threads)"

    def start(self, workdir: Path, spec: dict[str, Any]) -> Running:
        port = free_port()
        log = workdir / "seed.log"
        cmd = [
            sys.executable,
            str(SEED_PATH),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--tls-cert",
            str(self.certs.cert),
            "--tls-key",
            str(self.certs.key),
            "--quiet",
        ]
        process = self._spawn(cmd, log, workdir)
        deadline = time.monotonic() + 15
        while "listening" not in _tail(log, 5):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"seed server did not start:\n{_tail(log)}")
            time.sleep(0.05)
        return Running(process, port, log, workdir)


class FloorTarget(Target):
    """bench/floor_server.py: the least a Python TLS server does per connection.
    Capacity only; it is a measuring stick, not a chat server."""

    name = "floor"
    dialect = "chatd"
    keys = ("capacity",)

    def version(self) -> str:
        return f"bench/floor_server.py (Python {sys.version.split()[0]}, one thread, chatd's TLS context)"

    def start(self, workdir: Path, spec: dict[str, Any]) -> Running:
        path = workdir / "floor.yaml"
        path.write_text(yaml.safe_dump({"tls": {"cert": str(self.certs.cert), "key": str(self.certs.key)}}))
        log = workdir / "floor.log"
        process = self._spawn([sys.executable, "-m", "bench.floor_server", str(path)], log, REPO)
        return Running(process, listening_port(process, log, "floor server", 15), log, workdir)


# The io_threads comparison: fan-out as people send, paced, capacity and churn.
IO_KEYS = ("fanout-lines", "paced", "capacity", "churn")
# The write interval compared (issue 25): paced load, where it saves most, and
# fan-out to 50 (the flood of the latency check), where turns coalesce by themselves.
INTERVAL_KEYS = ("load", "paced", "fanout-lines", "fanout-50")

TARGETS: dict[str, Callable[[Certs], Target]] = {
    "chatd": ChatdTarget,
    "ngircd": NgircdTarget,
    "seed": SeedTarget,
    "floor": FloorTarget,
    **{
        f"chatd-io{n}": functools.partial(ChatdTarget, name=f"chatd-io{n}", io_threads=n, keys=IO_KEYS)
        for n in (1, 2, 4)
    },
    "chatd-tuned": functools.partial(ChatdTarget, name="chatd-tuned", tuned=True, keys=("fanout", "slow")),
    # Metrics off, beside `chatd` (on, and scraped): "fan-out with metrics on ≥ 0.97× off".
    "chatd-nometrics": functools.partial(ChatdTarget, name="chatd-nometrics", metrics=False, keys=("fanout",)),
    "chatd-before": ChatdBeforeTarget,
    **{
        f"chatd-wi{ms}": functools.partial(ChatdTarget, name=f"chatd-wi{ms}", write_interval_ms=ms, keys=INTERVAL_KEYS)
        for ms in (0, 1, 2, 5, 10)
    },
    "chatd-nohistory": functools.partial(ChatdTarget, name="chatd-nohistory", history=False, keys=("fanout", "rooms")),
    # Accounts off, beside `chatd` (on): "fan-out with accounts enabled ≥ 0.97× disabled" (issue 21).
    "chatd-noaccounts": functools.partial(ChatdTarget, name="chatd-noaccounts", accounts=False, keys=("fanout",)),
}
