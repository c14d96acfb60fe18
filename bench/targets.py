"""The servers under test, each started fresh for every run and stopped after:
chatd (this repository) with config/chatd.yaml's values and variants of it,
ngircd (the C reference, Debian package), the seed tutorial server
(../shared/seed_server.py) and the floor (bench/floor_server.py).

Each runs pinned to CPU 0 when the machine has two or more (the load
generator gets CPU 1), except the chatd-ioN variants, which compare
`io_threads` on the whole machine ("shared" placement: neither process
pinned). Each has a raised file-descriptor limit and its output goes to a
log file in the run's work directory (never an unread pipe).

chatd's targets are here, with the registry of every target name
(`TARGETS`); ngircd, the seed and the floor are in bench/references.py,
and what every target shares (pinning, ports, certificates, `Running`,
the `Target` base) in bench/servers.py.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench import baseline
from bench.baseline import chatd_version
from bench.references import FloorTarget, NgircdTarget, SeedTarget
from bench.servers import (
    REPO,
    WORK,
    Certs,
    Running,
    Scraper,
    Target,
    TargetUnavailable,
    clients_needed,
    listening_event,
)

CHATD_YAML = REPO / "config" / "chatd.yaml"


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

    def _extra(self, config: dict[str, Any], changes: dict[str, Any]) -> None:
        """What a variant adds to the config (bench/clustertarget.py: `cluster:`)."""

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
        self._extra(config, changes)
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
