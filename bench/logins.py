"""The load of the accounts scenario (issue 21), run in the generator process:
`python -m bench.logins '<json spec>'` prints one JSON line. bench/accounts.py
starts chatd with its control socket, creates the accounts, runs this (pinned
to CPU 1, as every generator) and reports.

Three parts, against one chatd at config/chatd.yaml's argon2 cost:

- `logins`: that many clients sign in (`/login <account> <password>`), at
  most `concurrency` at once, so that the auth queue never refuses one
  (`auth_queue` is 32), each from a loopback address of its own (Linux
  answers on all of 127/8); each asks `/remember` and leaves. Sign-ins per
  second, from the first connect to the last `WELCOME`, and a token per
  account for the last part.
- `flood`: a signed-in client in a process of its own (`--pinger`, so that
  the flood's TLS handshakes in this process never delay its reads) sends
  `/ping` every `ping_ms` through `phases` flood windows of `phase_s`
  seconds, each between two idle windows as long, so that idle and flood see
  the same drift of a shared machine. In a flood window `flood`
  connections sign in again and again, each from a fresh address: three in
  four with a wrong password for one of the `victims` accounts in turn, one
  in four with the right password of an account of its own. A fresh address
  per connection (at most 5 attempts each, `max_nick_attempts`) and victims
  in turn keep the per-address and per-account throttles from locking the
  flood out, as a flood from a botnet would: every attempt the auth queue
  takes costs a hash.
  The throttles stay on; the answers they give are counted. An attempt
  answered `auth_busy` is retried after `busy_pause_s`, as the protocol asks.
- `resumes`: the `logins` clients complete their TLS handshakes and wait;
  then all send `/resume <token>` at once, as after a restart: resumes per
  second from the first `/resume` to the last `CURRENT`. The same storm with
  guest nicknames follows, for reference.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from bench.dialects import RegistrationFailed
from bench.engine import Conn, perf_ns
from bench.harness import Spec, connect_all, make_engine, nick
from bench.loop import Engine
from bench.measure import Meter, Proc, percentiles
from bench.signin import Flood, SignIn, loopback


def windowed(samples: list[tuple[int, int]], windows: list[tuple[int, int, str]]) -> dict[str, list[int]]:
    """Round trips (`(sent_ns, rtt_ns)`) by the kind of window they were sent in;
    those sent between windows (while a flood drains) are left out."""
    found: dict[str, list[int]] = {kind: [] for _, _, kind in windows}
    for sent, rtt in samples:
        for start, end, kind in windows:
            if start <= sent < end:
                found[kind].append(rtt)
                break
    return found


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, rounded; None if either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _logins(engine: Engine, spec: Spec, server: Proc, addresses: Iterator[str]) -> dict[str, Any]:
    count = spec["logins"]
    engine.errors.clear()
    conns = []
    for i in range(count):
        conn = Conn(engine, i, nick(i))
        conn.source = next(addresses)
        conn.registration = SignIn(f"/login {spec['login_prefix']}{i} {spec['password']}", remember=True)
        conns.append(conn)
    meter, cpu0, t0 = Meter(server), server.cpu(), perf_ns()
    outcome = connect_all(engine, conns, spec["concurrency"], spec.get("connect_timeout", 600), then=Conn.close)
    cpu, server_s = meter.result("login_"), server.cpu() - cpu0
    signed = [c.registration for c in conns if isinstance(c.registration, SignIn) and c.registration.token]
    t_last = max((r.t_welcome for r in signed), default=t0)
    latencies = [r.t_welcome - c.t_connect for c in conns if isinstance(r := c.registration, SignIn) and r.t_welcome]
    return {
        "login_outcome": outcome,
        "logins_ok": len(signed),
        "logins_per_s": round(len(signed) / max((t_last - t0) / 1e9, 1e-9), 1),
        "login_latency": percentiles(latencies),
        "server_cpu_ms_per_login": round(1000 * server_s / max(len(signed), 1), 2),
        "login_errors": dict(engine.errors.most_common(8)),
        "tokens": [r.token for r in signed],
        **cpu,
    }


def _windows(
    engine: Engine, spec: Spec, server: Proc, addresses: Iterator[str]
) -> tuple[Flood, list[tuple[int, int, str]], dict[str, list[dict[str, float]]], list[str]]:
    """Idle and flood windows in turn, idle first and last; each window's CPU%."""
    engine.errors.clear()
    flood = Flood(engine, spec, addresses)
    windows: list[tuple[int, int, str]] = []
    cpu: dict[str, list[dict[str, float]]] = {"idle": [], "flood": []}
    drains: list[str] = []
    for kind in ["idle", "flood"] * spec["phases"] + ["idle"]:
        meter, start = Meter(server), perf_ns()
        if kind == "flood":
            flood.start()
        engine.run(lambda: False, spec["phase_s"])
        windows.append((start, perf_ns(), kind))
        cpu[kind].append(meter.result(f"{kind}_"))
        if kind == "flood":
            drains.append(flood.stop(60))
            engine.run(lambda: False, 0.5)  # the server takes the closes (pings meanwhile count nowhere)
    return flood, windows, cpu, drains


def _flood(engine: Engine, spec: Spec, server: Proc, addresses: Iterator[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.logins", "--pinger", json.dumps(spec)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as pinger:
        assert pinger.stdin is not None and pinger.stdout is not None
        if pinger.stdout.readline().strip() != "ready":
            pinger.kill()
            return {"flood_error": f"the pinger did not sign in (exit {pinger.wait()})"}
        flood, windows, cpu, drains = _windows(engine, spec, server, addresses)
        pinger.stdin.close()  # the pinger's signal to stop and print its round trips
        samples = json.loads(pinger.stdout.read() or "[]")
    rtts = windowed([(int(t), int(r)) for t, r in samples], windows)
    idle, busy = percentiles(rtts["idle"]), percentiles(rtts["flood"])
    answered = sum(n for code, n in flood.answers.items() if code != "closed")
    return {
        "ping_idle": idle,
        "ping_flood": busy,
        "ping_p99_ratio": ratio(busy.get("p99_ms"), idle.get("p99_ms")),
        "ping_p50_ratio": ratio(busy.get("p50_ms"), idle.get("p50_ms")),
        "flood_answers": dict(flood.answers),
        "flood_answers_per_s": round(answered / (spec["phases"] * spec["phase_s"]), 1),
        "flood_connections": flood.connections,
        "flood_welcome_latency": percentiles(flood.welcome_ns),
        "flood_drains": drains,
        "flood_errors": dict(engine.errors.most_common(6)),
        **{key: round(sum(r[key] for r in rs) / len(rs), 1) for rs in cpu.values() for key in rs[0]},
    }


def _settle(engine: Engine, server: Proc, quiet_s: float = 0.02, timeout: float = 60.0) -> None:
    """Until the server has used under `quiet_s` of CPU in half a second: what came
    before (the LEAVEs of hundreds of closes) must not be charged to what comes next."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = server.cpu()
        engine.run(lambda: False, 0.5)
        if server.cpu() - before < quiet_s:
            return


def _storm(engine: Engine, server: Proc, lines: list[str] | None, count: int, concurrency: int = 100) -> dict[str, Any]:
    """`count` clients complete their TLS handshakes (`concurrency` at a time),
    then all register at once: with `lines` (`/resume <token>`), else as guests."""
    conns = []
    for i in range(count):
        conn = Conn(engine, i, f"g{i:05d}")
        conn.hold = True
        if lines is not None:
            conn.registration = SignIn(lines[i])
        conns.append(conn)
    waiting = list(reversed(conns))

    def start_more(_: Conn | None = None) -> None:
        while waiting and engine.handshaken + engine.connect_failed + concurrency > count - len(waiting):
            waiting.pop().connect()

    def drain(conn: Conn) -> None:  # the JOIN lines of those registered after it: not even split
        conn.feed = lambda buf, n: None

    _settle(engine, server)
    engine.registered = engine.handshaken = engine.connect_failed = 0
    engine.errors.clear()
    engine.on_handshake, engine.on_registered, engine.on_closed = start_more, drain, start_more
    start_more()
    outcome = engine.run(lambda: engine.handshaken + engine.connect_failed >= count, 120)
    cpu0, t0 = server.cpu(), perf_ns()
    for conn in conns:
        if conn.state == "open":
            conn.register()
    if outcome == "done":
        outcome = engine.run(lambda: engine.registered + engine.connect_failed >= count, 120)
    server_s = server.cpu() - cpu0
    done = [c for c in conns if c.registration.done]
    t_last = max((c.t_registered for c in done), default=t0)
    for conn in conns:
        conn.close()
    return {
        "outcome": outcome,
        "ok": len(done),
        "per_s": round(len(done) / max((t_last - t0) / 1e9, 1e-9)),
        "server_cpu_ms_each": round(1000 * server_s / max(len(done), 1), 3),
        "errors": dict(engine.errors.most_common(4)),
    }


def run(spec: Spec) -> dict[str, Any]:
    """The record of the parts `spec["parts"]` names (logins, flood, resumes)."""
    parts = spec.get("parts", ["logins", "flood", "resumes"])
    engine = make_engine(spec)
    server = Proc(spec.get("server_pid"))
    addresses = (loopback(n) for n in range(1, 1 << 24))  # 127.0.0.2 on: 127.0.0.1 is the pinger's
    result: dict[str, Any] = {}
    if "logins" in parts:
        result.update(_logins(engine, spec, server, addresses))
    if "flood" in parts:
        result.update(_flood(engine, spec, server, addresses))
    tokens = result.pop("tokens", [])
    if "resumes" in parts and tokens:
        resumes = _storm(engine, server, [f"/resume {t}" for t in tokens], len(tokens))
        guests = _storm(engine, server, None, len(tokens))
        result.update({f"resume_{k}": v for k, v in resumes.items()})
        result.update({f"guest_{k}": v for k, v in guests.items()})
    engine.close_all()
    return result


# -- the pinger, a process of its own -------------------------------------------------------


class Blocking:
    """A blocking client signed in with `line`, for the pinger."""

    def __init__(self, port: int, ca: str, line: str) -> None:
        context = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(("127.0.0.1", port), 30)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.until(b"NICK")
        self.send(line)
        self.until(b"CURRENT ")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def until(self, prefix: bytes) -> bytes:
        while line := self.file.readline():
            if line.startswith(prefix):
                return line
            if line.startswith((b"ERR ", b"BYE ")):
                raise RegistrationFailed(line.decode(errors="replace").strip())
        raise RegistrationFailed("closed by the server")


def pinger(spec: Spec) -> None:
    """Sign in, say `ready`, then `/ping` every `ping_ms` (one in flight) until
    stdin closes; print `[[sent_ns, rtt_ns], ...]`."""
    client = Blocking(spec["port"], spec["ca"], f"/login {spec['pinger']} {spec['password']}")
    print("ready", flush=True)
    interval, samples, n = spec["ping_ms"] / 1000, [], 0
    due = time.monotonic()
    while not select.select([sys.stdin], [], [], max(0.0, due - time.monotonic()))[0]:
        sent = perf_ns()
        client.send(f"/ping {n}")
        client.until(b"PONG ")
        samples.append((sent, perf_ns() - sent))
        n += 1
        due = max(due + interval, time.monotonic())
    print(json.dumps(samples), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--pinger"] and len(args) == 2:
        pinger(json.loads(args[1]))
        return 0
    if len(args) != 1:
        print("usage: python -m bench.logins [--pinger] '<json spec>'", file=sys.stderr)
        return 2
    print(json.dumps(run(json.loads(args[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
