"""The accounts measurements of `make bench` (issue 21) and their report.

`measure` runs the `accounts` scenarios: it times one password hash at
config/chatd.yaml's argon2 cost in this process (CPU time, which other jobs
on the machine do not change), starts chatd with config/chatd.yaml's values
(bench/targets.py: the rate and per-IP limits lifted as for every target,
the throttles left on) and its control socket, creates the accounts there
(`user_add`, with one argon2id hash at the default cost for all of them:
what a check costs does not depend on the salt), and runs the load
(bench/logins.py: sign-ins per second, `/ping` during a login flood against
idle, resumes per second) pinned to CPU 1. Fan-out with accounts enabled
against disabled is the fan-out scenario, run for `chatd` and
`chatd-noaccounts` (bench/targets.py); its check is here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import argon2
import yaml

from bench.cells import Record, flags_of, fmt, median, runs_of, spread, table
from bench.servers import REPO, WORK, dev_certs, pinned
from bench.targets import CHATD_YAML, ChatdTarget
from bench.throughput import FANOUT_LINES, FANOUT_PACKED, Check, before_ratio
from chatctl.control import request

KEY: Final = "accounts"  # logins/s, ping under a login flood, resumes/s (server pinned)
SHARED: Final = "accounts-flood-shared"  # the flood again, neither process pinned
NOACCOUNTS: Final = "chatd-noaccounts"
PING_GOAL: Final = 2.0  # "ping p99 during a login flood within 2x of its idle value"
RESUME_GOAL: Final = 1000  # "resumes/s with tokens (>= 1,000/s)"
FANOUT_GOAL: Final = 0.97  # "fan-out with accounts enabled >= 0.97x accounts disabled"
PASSWORD: Final = "bench-correct-horse-battery"
NAMES: Final = {"login_prefix": "u", "flood_prefix": "f", "victim_prefix": "v", "pinger": "pinger"}


def hash_cost(cost: dict[str, int], rounds: int = 20) -> dict[str, float]:
    """CPU ms (thread time) and wall ms of one argon2id check at `cost`, over `rounds`."""
    hasher = _hasher(cost)
    hashed = hasher.hash(PASSWORD)
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(rounds):
        hasher.verify(hashed, PASSWORD)
    return {
        "hash_cpu_ms": round((time.thread_time() - cpu) / rounds * 1000, 2),
        "hash_wall_ms": round((time.perf_counter() - wall) / rounds * 1000, 2),
        "hash_rounds": rounds,
    }


def _hasher(cost: dict[str, int]) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=cost["time_cost"], memory_cost=cost["memory_kib"], parallelism=cost["parallelism"]
    )


def measure(key: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One run of an accounts scenario: it starts its own chatd."""
    cost = yaml.safe_load(CHATD_YAML.read_text())["accounts"]["argon2"]
    record: dict[str, Any] = {**spec, "argon2": cost, **hash_cost(cost)}
    certs = dev_certs()
    work = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=WORK))
    target = ChatdTarget(certs, control=True)
    if spec.get("placement") == "shared":
        target.placement = "shared"
    running = target.start(work, {**spec, "n": spec.get("logins", 0) + 2})
    try:
        started = time.monotonic()
        accounts = create_accounts(work / "chatd.sock", _hasher(cost).hash(PASSWORD), spec)
        record.update(accounts_created=accounts, create_s=round(time.monotonic() - started, 1))
        full = {
            **spec,
            **NAMES,
            "dialect": "chatd",
            "host": "127.0.0.1",
            "port": running.port,
            "ca": str(certs.ca),
            "server_pid": running.pid,
            "password": PASSWORD,
        }
        cmd = [sys.executable, "-m", "bench.logins", json.dumps(full)]
        record["loadavg_before"] = list(os.getloadavg())
        done = subprocess.run(
            pinned(cmd, 1) if target.placement == "pinned" else cmd,
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=REPO,
        )
        record["loadavg_after"] = list(os.getloadavg())
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            record.update(ok=False, error=f"generator exit {done.returncode}: {done.stderr[-1500:]}")
        else:
            record.update(json.loads(lines[-1]))
            record["ok"] = _complete(record)
        if running.scraper is not None:
            record.update(_scrape(running.scraper.port))
        record.update(running.notes, placement=target.placement)
    finally:
        record["server_exit"] = running.stop()
        record.update(_log_counts(running.log))
    if record.get("ok") and not os.environ.get("BENCH_KEEP_WORK"):
        shutil.rmtree(work, ignore_errors=True)
    else:
        record["workdir"] = str(work)
    return record


def create_accounts(sock: Path, hashed: str, spec: dict[str, Any]) -> int:
    """The accounts `spec` needs (NAMES), all with the password hash `hashed`,
    over the control socket `sock`; returns how many."""
    names = [NAMES["pinger"]]
    names += [f"{NAMES['login_prefix']}{i}" for i in range(spec.get("logins", 0))]
    names += [f"{NAMES['flood_prefix']}{i}" for i in range((spec.get("flood", 0) + 3) // 4)]
    names += [f"{NAMES['victim_prefix']}{i}" for i in range(spec.get("victims", 0))]
    for name in names:
        reply = request(sock, {"cmd": "user_add", "name": name, "password_hash": hashed})
        if not reply.get("ok"):
            raise RuntimeError(f"user_add {name}: {reply}")
    return len(names)


def _complete(record: Record) -> bool:
    """Every part that ran did all it was asked."""
    parts = record.get("parts", ["logins", "flood", "resumes"])
    ok = True
    if "logins" in parts:
        ok &= record.get("logins_ok") == record.get("logins")
        if "resumes" in parts:
            ok &= record.get("resume_ok") == record.get("logins") == record.get("guest_ok")
    if "flood" in parts:
        ok &= bool(record.get("ping_idle", {}).get("n")) and bool(record.get("ping_flood", {}).get("n"))
    return ok


_METRIC = re.compile(r"^(chatd_(?:password_hashes_total|auth_hash_seconds_(?:sum|count)|auth_throttled_total"
                     r"|logins_total)(?:\{[^}]*\})?) ([0-9.e+-]+)$", re.M)  # fmt: skip


def _scrape(port: int) -> dict[str, Any]:
    """The server's own count of hashes and their CPU time, and sign-ins by method and result."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
    except OSError as exc:
        return {"metrics_error": str(exc)}
    found = {name: float(value) for name, value in _METRIC.findall(reply.decode(errors="replace"))}
    count = found.get("chatd_auth_hash_seconds_count", 0.0)
    return {
        "server_hashes": int(found.get("chatd_password_hashes_total", 0)),
        "server_hash_cpu_ms": round(1000 * found.get("chatd_auth_hash_seconds_sum", 0.0) / count, 2) if count else None,
        "server_auth_throttled": int(found.get("chatd_auth_throttled_total", 0)),
        "server_logins": {k.partition("{")[2].rstrip("}"): int(v) for k, v in found.items() if "logins_total{" in k},
    }


def _log_counts(log: Path) -> dict[str, int]:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return {}
    events = ("login_succeeded", "login_failed", "auth_throttled", "token_issued", "session_replaced")
    counts = {f"log_{event}": text.count(f'"event": "{event}"') for event in events}
    return {**counts, "log_tracebacks": text.count('"exception"')}


# -- the report ------------------------------------------------------------------------------


def accounts_checks(records: list[Record]) -> list[Check]:
    checks: list[Check] = []
    runs = runs_of(records, KEY, "chatd")
    logins, cpu_ms = median(runs, "logins_per_s"), median(runs, "hash_cpu_ms")
    if logins is not None:
        per_core = f"; one hash {cpu_ms:.1f} ms of CPU: {1000 / cpu_ms:.0f}/s per busy core" if cpu_ms else ""
        checks.append(("accounts: sign-ins/s at the default argon2id cost", f"{fmt(logins, 1)}/s{per_core}", "–", None))
    for key, where in ((KEY, "server pinned"), (SHARED, "neither pinned")):
        group = runs_of(records, key, "chatd")
        ping = median(group, "ping_p99_ratio")
        if ping is not None:
            idle, flood = median(group, "ping_idle.p99_ms"), median(group, "ping_flood.p99_ms")
            flags = flags_of(group, "flood_gen_cpu_pct", "flood_other_cpu_pct")
            checks.append(
                (
                    f"accounts: `/ping` p99 during a login flood / idle ({where})",
                    f"{ping:.2f}× ({fmt(flood, 2)} / {fmt(idle, 2)} ms)" + (f" ({flags})" if flags else ""),
                    f"≤ {PING_GOAL:g}×",
                    ping <= PING_GOAL,
                )
            )
    resumes = median(runs, "resume_per_s")
    if resumes is not None:
        guests, cpu_each = median(runs, "guest_per_s"), median(runs, "resume_server_cpu_ms_each")
        per_core = f"; server CPU {cpu_each:.2f} ms each: {1000 / cpu_each:,.0f}/s per busy core" if cpu_each else ""
        checks.append(
            (
                f"accounts: resumes/s with tokens ({fmt(median(runs, 'logins'))} at once)",
                f"{fmt(resumes)}/s (guests, same storm: {fmt(guests)}/s{per_core})",
                f"≥ {RESUME_GOAL:,}/s",
                resumes >= RESUME_GOAL,
            )
        )
    for key in FANOUT_LINES + FANOUT_PACKED:
        off = runs_of(records, key, NOACCOUNTS)
        paired = before_ratio(records, key, NOACCOUNTS)
        if off and paired:
            flags = flags_of(runs_of(records, key, "chatd") + off)
            checks.append(
                (
                    f"{key}: chatd (accounts on) / chatd-noaccounts delivered msg/s",
                    f"{paired[1]}, medians {fmt(median(runs_of(records, key, 'chatd'), 'msgs_per_s'))}"
                    f" / {fmt(median(off, 'msgs_per_s'))}" + (f" (runs flagged: {flags})" if flags else ""),
                    f"≥ {FANOUT_GOAL}×",
                    paired[0] >= FANOUT_GOAL,
                )
            )
    return checks


def accounts_section(records: list[Record]) -> str:
    runs, shared = runs_of(records, KEY, "chatd"), runs_of(records, SHARED, "chatd")
    if not runs and not shared:
        return ""
    out = [
        '## 10. Accounts\n\nbench/accounts.py and bench/logins.py (README, "Accounts"): chatd with '
        "config/chatd.yaml's argon2id cost and `auth_threads`, its throttles on; accounts created over "
        "the control socket; every client from a loopback address of its own. *Sign-ins*: `/login` "
        "with the right password, at most `concurrency` at once, then `/remember`. *Flood*: `/ping` "
        "from a signed-in client every few ms, in idle windows and flood windows taken in turn; in a "
        "flood window connections sign in again and again (3 in 4 with a wrong password, 1 in 4 "
        "right), each from a fresh address. *Resumes*: that many clients complete their handshakes, "
        "then all send `/resume <token>` at once; then the same storm of guests.\n"
    ]
    if runs:
        out.append(
            table(
                [
                    "sign-ins",
                    "at once",
                    "sign-ins/s",
                    "p50 / p99 ms",
                    "server CPU ms each",
                    "hash CPU ms (here / chatd's)",
                ],
                [
                    [
                        fmt(median(runs, "logins")),
                        fmt(median(runs, "concurrency")),
                        spread(runs, "logins_per_s", 1),
                        f"{fmt(median(runs, 'login_latency.p50_ms'), 1)} / {fmt(median(runs, 'login_latency.p99_ms'), 1)}",
                        spread(runs, "server_cpu_ms_per_login", 1),
                        f"{fmt(median(runs, 'hash_cpu_ms'), 1)} / {fmt(median(runs, 'server_hash_cpu_ms'), 1)}",
                    ]
                ],
            )
            + "\n"
        )
    rows = []
    for key, group in ((KEY, runs), (SHARED, shared)):
        if group:
            g = group[0]
            rows.append(
                [
                    f"{key} ({g.get('placement', 'pinned')})",
                    f"{g.get('flood')} conns, {g.get('phases')} × {g.get('phase_s')} s",
                    f"{fmt(median(group, 'ping_idle.p50_ms'), 2)} / {fmt(median(group, 'ping_idle.p99_ms'), 2)}",
                    f"{fmt(median(group, 'ping_flood.p50_ms'), 2)} / {fmt(median(group, 'ping_flood.p99_ms'), 2)}",
                    spread(group, "ping_p99_ratio", 2),
                    spread(group, "flood_answers_per_s", 1),
                    ", ".join(f"{k} {v}" for k, v in sorted((g.get("flood_answers") or {}).items())),
                    f"{fmt(median(group, 'idle_server_cpu_pct'))} / {fmt(median(group, 'flood_server_cpu_pct'))}",
                    f"{fmt(median(group, 'idle_other_cpu_pct'))} / {fmt(median(group, 'flood_other_cpu_pct'))}",
                ]
            )
    out.append(
        table(
            [
                "flood",
                "load",
                "ping idle p50 / p99 ms",
                "ping flood p50 / p99 ms",
                "p99 flood / idle",
                "answers/s",
                "answers (first run)",
                "server CPU% idle / flood",
                "others' CPU% idle / flood",
            ],
            rows,
        )
        + "\n"
    )
    if runs and median(runs, "resume_per_s") is not None:
        out.append(
            table(
                ["storm", "clients", "per s", "server CPU ms each"],
                [
                    [
                        what,
                        fmt(median(runs, "logins")),
                        spread(runs, f"{p}_per_s"),
                        spread(runs, f"{p}_server_cpu_ms_each", 3),
                    ]
                    for what, p in (("`/resume <token>`", "resume"), ("guest nickname", "guest"))
                ],
            )
            + "\n"
        )
    return "\n".join(out)
