"""The reference servers chatd is measured against: ngircd (the C reference,
Debian package), the seed tutorial server (../shared/seed_server.py) and
the floor (bench/floor_server.py), each started fresh for a run.

chatd and its variants are in bench/targets.py; what every target shares
(pinning, ports, certificates, `Running`) is in bench/servers.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench.servers import (
    REPO,
    Running,
    Target,
    TargetUnavailable,
    free_port,
    listening_port,
    tail,
    wait_for_port,
)

SEED_PATH = Path(__file__).resolve().parents[2] / "shared" / "seed_server.py"


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
        while "listening" not in tail(log, 5):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"seed server did not start:\n{tail(log)}")
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
