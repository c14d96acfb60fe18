"""The servers the aio bench measures, each a fresh subprocess per run: chatd
(this repository), ngircd (Debian package, installed with apt-get if missing)
and the seed tutorial server (../shared/seed_server.py).

With two or more CPUs the server is pinned to CPU 0 (`taskset -c 0`) and the
load generator to CPU 1. Output goes to a log file in the run's work
directory, never an unread pipe. Ports are picked by binding port 0 first.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED = SHARED / "seed_server.py"


class TargetUnavailable(Exception):
    """The target cannot run here; the bench skips it and notes why."""


def two_cpus() -> bool:
    return len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_pki(out: Path) -> dict[str, str]:
    """Dev certificates in a temporary directory (never in the tree)."""
    chatctl = REPO / ".venv" / "bin" / "chatctl"
    cmd = [str(chatctl)] if chatctl.exists() else [sys.executable, "-m", "chatctl"]
    if not (out / "server.crt").exists():
        subprocess.run([*cmd, "gen-certs", "--out", str(out)], check=True, capture_output=True, cwd=REPO, timeout=60)
    return {"ca": str(out / "ca.crt"), "cert": str(out / "server.crt"), "key": str(out / "server.key")}


class Target:
    name = "?"
    dialect = "?"

    def __init__(self, workdir: Path, pki: dict[str, str], **opts: Any) -> None:
        self.workdir = workdir
        self.pki = pki
        self.opts = opts
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"
        self.insecure = False

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> "Target":
        cmd = self.command()
        if two_cpus():
            cmd = ["taskset", "-c", "0", *cmd]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.workdir,
                                         preexec_fn=_raise_nofile)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TargetUnavailable(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TargetUnavailable(f"{self.name} did not listen on {self.port} within 20 s: {self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _raise_nofile() -> None:
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        pass


class Chatd(Target):
    name = "chatd"
    dialect = "chatd"

    def command(self) -> list[str]:
        cfg = {
            "server": {"host": "127.0.0.1", "port": self.port, "io_threads": 1},
            "tls": {"cert": self.pki["cert"], "key": self.pki["key"]},
            "limits": {
                "max_clients": 20000, "max_clients_per_ip": 0, "connects_per_ip_per_minute": 0,
                "message_rate": 0, "send_queue_bytes": int(self.opts.get("send_queue_bytes", 8388608)),
                "register_timeout": 600,
            },
            "log": {"format": "json", "level": self.opts.get("log_level", "warning")},
            "control": {"socket": None},
        }
        path = self.workdir / "chatd.yaml"
        path.write_text(yaml.safe_dump(cfg))
        python = REPO / ".venv" / "bin" / "python"
        return [str(python if python.exists() else sys.executable), "-m", "chatd", "--config", str(path)]

    def start(self) -> "Target":
        env_cwd = self.workdir
        self.workdir = env_cwd
        return super().start()


class Seed(Target):
    name = "seed"
    dialect = "seed"

    def command(self) -> list[str]:
        if not SEED.exists():
            raise TargetUnavailable(f"{SEED} not found")
        return [sys.executable, str(SEED), "--port", str(self.port), "--tls-cert", self.pki["cert"],
                "--tls-key", self.pki["key"], "--quiet"]


NGIRCD_CONF = """\
[Global]
Name = bench.local
Info = chatd bench reference
Listen = 127.0.0.1
Ports =
PidFile = {workdir}/ngircd.pid
MotdPhrase = bench

[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 32
PingTimeout = 600
PongTimeout = 600
# 0 disables the per-command penalty (flood throttle) altogether, see ngircd.conf(5)
MaxPenaltyTime = 0

[Options]
PAM = no
Ident = no
DNS = no
IncludeMOTD = no

[SSL]
CertFile = {cert}
KeyFile = {key}
Ports = {port}
"""


def ensure_ngircd() -> str:
    exe = shutil.which("ngircd") or ("/usr/sbin/ngircd" if os.path.exists("/usr/sbin/ngircd") else None)
    if exe:
        return exe
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "ngircd"], capture_output=True, timeout=600, env=env)
    exe = shutil.which("ngircd") or ("/usr/sbin/ngircd" if os.path.exists("/usr/sbin/ngircd") else None)
    if not exe:
        raise TargetUnavailable("ngircd is not installed and apt-get could not install it")
    return exe


class Ngircd(Target):
    name = "ngircd"
    dialect = "irc"

    def command(self) -> list[str]:
        exe = ensure_ngircd()
        conf = self.workdir / "ngircd.conf"
        conf.write_text(NGIRCD_CONF.format(workdir=self.workdir, cert=self.pki["cert"], key=self.pki["key"], port=self.port))
        test = subprocess.run([exe, "--configtest", "-f", str(conf)], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        if test.returncode != 0:
            raise TargetUnavailable(f"ngircd --configtest failed: {test.stdout[-500:]} {test.stderr[-500:]}")
        return [exe, "--nodaemon", "-f", str(conf)]


TARGETS: dict[str, type[Target]] = {"chatd": Chatd, "ngircd": Ngircd, "seed": Seed}
