"""A private redis-server for the cluster tests: a Unix socket in a short
directory, append-only with fsync on every write, no RDB snapshots, its data
and log in a folder of the test's.

It is ready when it answers PING on its socket; `kill()` is a `kill -9`, and
`start()` again brings it back on the same socket with the same data (its
append-only file), as systemd would.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")
SKIP_REASON = "redis-server is not installed: apt-get install redis-server (.ci/run installs it)"
CLIENT_SKIP_REASON = "redis-py is not installed: pip install -e '.[test]' (or chatd[cluster])"


def require_redis() -> None:
    """Skip the calling test module, with the reason, without redis-server or redis-py.

    Call it before importing chatd.cluster (which imports redis-py).
    """
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON, allow_module_level=True)
    if importlib.util.find_spec("redis") is None:
        pytest.skip(CLIENT_SKIP_REASON, allow_module_level=True)


def ping(path: Path, timeout: float = 1.0) -> bool:
    """Whether a Redis server answers PING on the Unix socket `path`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, data: Path, sockets: Path, *extra: str) -> None:
        """`data`: its folder (append-only file, log); `sockets`: a folder with a
        short path (AF_UNIX paths are limited to 107 bytes); `extra`: more
        redis-server options, e.g. "--appendfsync", "everysec"."""
        assert REDIS_SERVER is not None, SKIP_REASON
        self.data = data
        self.socket = sockets / "r.sock"
        self.url = f"unix://{self.socket}"
        self.log = data / "redis.log"
        self._command = [
            REDIS_SERVER,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(data),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            *extra,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> RedisServer:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self._command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ping(self.socket):
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.process.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"redis-server did not answer PING within {timeout}s:\n{self.log.read_text()}")
            time.sleep(0.01)
        return self

    def kill(self) -> None:
        """`kill -9`: no shutdown, no last write."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
