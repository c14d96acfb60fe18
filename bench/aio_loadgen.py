"""An asyncio + ssl load generator for chat servers (the "aio" bench).

Grown from the lead's fan_reference.py. Three dialects: `chatd`
(docs/protocol.md), `irc` (ngircd, channel #bench) and `seed` (the tutorial
server: `NICK` without newline, raw bytes relayed to everyone).

Method, in short (bench/README-aio.md has the long form):
- every receiver counts `\\n` in bulk (`data.count(b"\\n")`); only up to 5
  *sample* receivers split lines, parse the `perf_counter_ns` stamp a sender
  put in the text, and count per sender;
- a sender may be at most `window` lines ahead of what the slowest sample has
  received from it, so server queues stay bounded;
- the generator reports its own CPU% (process_time / wall); >= 90% means the
  generator, not the server, may be the limit (`saturated`).

Run one scenario: `python -m bench.aio_loadgen '<json spec>'` prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import ssl
import sys
import time
from typing import Any

perf_ns = time.perf_counter_ns
SAMPLES = 5
PAD = b"x" * 24


def raise_nofile(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE as far as allowed; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in ((wanted, max(hard, wanted)), (min(wanted, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, target)
            return target[0]
        except (ValueError, OSError):
            continue
    return soft


def percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


class Client(asyncio.Protocol):
    """One connection: registration, then bulk newline counting (or parsing, if a sample)."""

    def __init__(self, gen: "Gen", idx: int) -> None:
        self.gen = gen
        self.idx = idx
        self.nick = f"b{idx}"
        self.transport: asyncio.Transport | None = None
        self.registered = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.buf = b""  # registration and sample-line assembly only
        self.count = 0  # newlines received since the barrier
        self.bytes = 0
        self.sample = False
        self.from_sender: list[int] = []
        self.lat_ns: list[int] = []
        self.bad = 0
        self.lost_conn: str | None = None
        self.state = "connect"

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.gen.register:  # TLS handshake done (asyncio calls this after it): that is all
            self._ready()
        elif self.gen.dialect == "irc":
            self.write(f"NICK {self.nick}\r\nUSER {self.nick} 0 * :{self.nick}\r\n".encode())
            self.state = "irc001"
        else:
            self.state = "nick"

    def data_received(self, data: bytes) -> None:
        if self.state == "ready":
            self.bytes += len(data)
            if not self.sample:
                self.count += data.count(b"\n")
                return
            self._parse(data)
            return
        self.buf += data
        self._register()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_conn = repr(exc) if exc else "eof"
        if not self.registered.done():
            self.registered.set_exception(ConnectionError(f"{self.nick}: lost during registration: {self.lost_conn}"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- helpers
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _ready(self) -> None:
        self.state = "ready"
        self.buf = b""
        if not self.registered.done():
            self.registered.set_result(None)

    def _register(self) -> None:
        d = self.gen.dialect
        if d == "chatd":
            if self.state == "nick" and b"NICK\n" in self.buf:
                self.buf = self.buf.split(b"NICK\n", 1)[1]
                self.write(self.nick.encode() + b"\n")
                self.state = "welcome"
            if self.state == "welcome" and b"\n" in self.buf:
                line, _, rest = self.buf.partition(b"\n")
                if not line.startswith(b"WELCOME"):
                    self.registered.set_exception(ConnectionError(f"{self.nick}: {line[:80]!r}"))
                    self.state = "failed"
                    return
                self._ready()
        elif d == "seed":
            if self.state == "nick" and self.buf.startswith(b"NICK"):
                self.write(self.nick.encode())
                self._ready()
        else:  # irc: look at whole lines only
            *lines, self.buf = self.buf.split(b"\n")
            for line in lines:
                parts = line.rstrip(b"\r").split(b" ")
                if parts[0] == b"PING":
                    self.write(b"PONG " + b" ".join(parts[1:]) + b"\r\n")
                    continue
                cmd = parts[1] if len(parts) > 1 and parts[0].startswith(b":") else parts[0]
                if cmd == b"001" and self.state == "irc001":
                    self.write(b"JOIN #bench\r\n")
                    self.state = "irc366"
                elif cmd == b"366" and self.state == "irc366":
                    self._ready()
                    return
                elif cmd == b"ERROR" or cmd in (b"432", b"433", b"451", b"465", b"471", b"473", b"474"):
                    if not self.registered.done():
                        self.registered.set_exception(ConnectionError(f"{self.nick}: {line[:200]!r}"))
                    self.state = "failed"
                    return

    def _parse(self, data: bytes) -> None:
        data = self.buf + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.buf = data
            return
        self.buf = data[cut + 1 :]
        now = perf_ns()
        lines = data[:cut].split(b"\n")
        self.count += len(lines)
        fs = self.from_sender
        lat = self.lat_ns
        for line in lines:
            parts = line.rstrip(b"\r").rsplit(b" ", 3)
            try:
                s = int(parts[-3])
                ts = int(parts[-1])
                fs[s] += 1
                lat.append(now - ts)
            except (ValueError, IndexError):
                if not line.startswith((b"JOIN ", b"LEAVE ", b"INFO ")):
                    self.bad += 1  # chatd room events are expected noise; anything else is corrupt


class Gen:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.dialect: str = spec["dialect"]
        self.host: str = spec.get("host", "127.0.0.1")
        self.port: int = int(spec["port"])
        self.ctx = ssl.create_default_context(cafile=spec["ca"])
        if spec.get("insecure"):  # the seed's certificate may be for another name
            self.ctx.check_hostname = False
            self.ctx.verify_mode = ssl.CERT_NONE
        self.server_hostname = spec.get("server_hostname", "localhost")
        self.pad = b"x" * int(spec.get("pad", len(PAD)))
        self.register = bool(spec.get("register", True))
        self.clients: list[Client] = []
        self.failures = 0
        self.last_error: str | None = None

    def line(self, sender: int, seq: int, ts: int) -> bytes:
        text = b"%s %d %d %d" % (self.pad, sender, seq, ts)
        if self.dialect == "irc":
            return b"PRIVMSG #bench :" + text + b"\r\n"
        return text + b"\n"

    async def connect_one(self, idx: int, rcvbuf: int = 0) -> Client:
        loop = asyncio.get_running_loop()
        client = Client(self, idx)
        sock = None
        if rcvbuf:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await loop.sock_connect(sock, (self.host, self.port))
            await loop.create_connection(lambda: client, sock=sock, ssl=self.ctx, server_hostname=self.server_hostname)
        else:
            await loop.create_connection(lambda: client, self.host, self.port, ssl=self.ctx, server_hostname=self.server_hostname)
        await client.registered
        return client

    async def connect_many(self, n: int, concurrency: int, first: int = 0, timeout: float = 120,
                           tolerate: bool = False) -> list[Client]:
        """Connect and register n clients, at most `concurrency` handshakes at a time.

        With `tolerate`, failures are counted in self.failures instead of raised."""
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> Client | None:
            async with sem:
                try:
                    c = await asyncio.wait_for(self.connect_one(i), 30)
                    self.clients.append(c)
                    return c
                except (OSError, ConnectionError, asyncio.TimeoutError, ssl.SSLError) as exc:
                    if not tolerate:
                        raise
                    self.failures += 1
                    self.last_error = repr(exc)[:300]
                    return None

        got = await asyncio.wait_for(asyncio.gather(*(one(first + i) for i in range(n))), timeout)
        # clients were appended as they finished registering; scenarios index them by idx
        # (senders are idx < S, and IRC's expected counts depend on it)
        self.clients.sort(key=lambda c: c.idx)
        return [c for c in got if c is not None]

    async def quiesce(self, quiet: float = 0.3, limit: float = 10.0) -> None:
        """Wait until no client receives anything for `quiet` s (JOIN noise done), then zero the counters."""
        t_end = time.monotonic() + limit
        last = -1
        while time.monotonic() < t_end:
            cur = sum(c.bytes + len(c.buf) for c in self.clients) + sum(c.count for c in self.clients)
            if cur == last:
                break
            last = cur
            await asyncio.sleep(quiet)
        for c in self.clients:
            c.count = 0
            c.bytes = 0
            c.buf = b""


def _cpu_fields(cpu: float, wall: float) -> dict[str, Any]:
    pct = 100.0 * cpu / wall if wall > 0 else 0.0
    return {"gen_cpu_pct": round(pct, 1), "saturated": pct >= 90.0}


def server_cpu_s(pid: int | None) -> float | None:
    """utime + stime of the whole server process (all threads), in seconds."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _server_fields(pid: int | None, cpu0: float | None, wall: float) -> dict[str, Any]:
    cpu1 = server_cpu_s(pid)
    if cpu0 is None or cpu1 is None or wall <= 0:
        return {"server_cpu_pct": None}
    return {"server_cpu_pct": round(100.0 * (cpu1 - cpu0) / wall, 1)}


def _latency_fields(clients: list[Client]) -> dict[str, Any]:
    lat = sorted(x for c in clients for x in c.lat_ns)
    ms = lambda v: None if v is None else round(v / 1e6, 3)  # noqa: E731
    return {
        "lat_samples": len(lat),
        "p50_ms": ms(percentile(lat, 0.50)),
        "p99_ms": ms(percentile(lat, 0.99)),
        "max_ms": ms(lat[-1] if lat else None),
    }


async def fanout(spec: dict[str, Any]) -> dict[str, Any]:
    """N clients, S senders x M messages, windowed; delivered msg/s and latency."""
    g = Gen(spec)
    n, s, m = int(spec["n"]), int(spec["s"]), int(spec["m"])
    window = int(spec.get("window", 64))
    batch = int(spec.get("batch", 16))
    stall = float(spec.get("stall_s", 5.0))
    limit = float(spec.get("timeout_s", 120.0))
    await g.connect_many(n, int(spec.get("concurrency", 50)))
    assert [c.idx for c in g.clients] == list(range(n))
    slow: Client | None = None
    if spec.get("slow_consumer"):
        slow = await g.connect_one(n, rcvbuf=4096)
        assert slow.transport is not None
        slow.transport.pause_reading()
    await g.quiesce()
    clients = g.clients
    senders = clients[:s]
    samples = [clients[i] for i in sorted({min(n - 1, (k * n) // SAMPLES) for k in range(SAMPLES)})]
    if spec.get("sample_senders_only") is None and s < n:
        samples = [c for c in samples if c.idx >= s] or samples  # prefer non-senders (irc: no echo)
    for c in samples:
        c.sample = True
        c.from_sender = [0] * (s + 1)
    echo = g.dialect != "irc"
    expected = [
        s * m if echo or c.idx >= s else (s - 1) * m for c in clients
    ]
    total_expected = sum(expected)
    sent = [0] * s
    progress = asyncio.Event()

    def acked(i: int) -> int:
        if not echo:
            return min(c.from_sender[i] for c in samples if c.idx != i) if any(c.idx != i for c in samples) else sent[i]
        return min(c.from_sender[i] for c in samples)

    async def sender(i: int) -> None:
        cl = senders[i]
        while sent[i] < m:
            if sent[i] - acked(i) > window:
                await asyncio.sleep(0.0005)
                continue
            k = min(batch, m - sent[i])
            ts = perf_ns()
            cl.write(b"".join(g.line(i, sent[i] + j, ts) for j in range(k)))
            sent[i] += k
            await asyncio.sleep(0)

    pid = spec.get("pid")
    s0 = server_cpu_s(pid)
    t0 = time.perf_counter()
    c0 = time.process_time()
    tasks = [asyncio.create_task(sender(i)) for i in range(s)]
    last_total, last_change = -1, time.perf_counter()
    stalled = False
    while True:
        await asyncio.sleep(0.01)
        total = sum(c.count for c in clients)
        if all(c.count >= e for c, e in zip(clients, expected)):
            last_change = time.perf_counter()
            break
        now = time.perf_counter()
        if total != last_total:
            last_total, last_change = total, now
        elif now - last_change > stall:
            stalled = True
            break
        if now - t0 > limit:
            stalled = True
            break
    wall = last_change - t0  # a stall's idle tail does not count
    server = _server_fields(pid, s0, time.perf_counter() - t0)
    cpu = time.process_time() - c0
    for t in tasks:
        t.cancel()
    delivered = sum(min(c.count, e) for c, e in zip(clients, expected))
    extra = sum(max(0, c.count - e) for c, e in zip(clients, expected))
    result: dict[str, Any] = {
        "scenario": spec.get("scenario", "fanout"),
        "n": n, "s": s, "m": m, "window": window,
        "expected": total_expected,
        "delivered": delivered,
        "lost": total_expected - delivered,
        "extra_lines": extra,
        "corrupt_sample_lines": sum(c.bad for c in samples),
        "stalled": stalled,
        "wall_s": round(wall, 3),
        "msgs_per_s": round(delivered / wall) if wall > 0 else 0,
        "disconnected": sum(1 for c in clients if c.lost_conn),
        **_latency_fields(samples),
        **_cpu_fields(cpu, time.perf_counter() - t0),
        **server,
    }
    if slow is not None and slow.transport is not None:
        # read again: a client the server dropped sees EOF (after a BYE) soon
        slow.sample = False
        slow.transport.resume_reading()
        t_end = time.monotonic() + 3
        while not slow.closed.done() and time.monotonic() < t_end:
            await asyncio.sleep(0.05)
        result["slow_client_closed"] = slow.closed.done()
    for c in clients + ([slow] if slow else []):
        if c.transport:
            c.transport.abort()
    return result


async def paced(spec: dict[str, Any]) -> dict[str, Any]:
    """N clients send in turn at a fixed total rate (open loop); latency on the samples."""
    g = Gen(spec)
    n = int(spec.get("n", 100))
    rate = float(spec.get("rate", 200))
    duration = float(spec.get("duration_s", 20))
    await g.connect_many(n, int(spec.get("concurrency", 50)))
    await g.quiesce()
    clients = g.clients
    samples = [clients[(k * n) // SAMPLES] for k in range(min(SAMPLES, n))]
    for c in samples:
        c.sample = True
        c.from_sender = [0] * (n + 1)
    total = int(rate * duration)
    pid = spec.get("pid")
    s0 = server_cpu_s(pid)
    t0 = time.perf_counter()
    c0 = time.process_time()
    start_ns = perf_ns()
    period_ns = int(1e9 / rate)
    behind_max = 0
    for k in range(total):
        due = start_ns + k * period_ns
        now = perf_ns()
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
        else:
            behind_max = max(behind_max, now - due)
        sender = k % n
        clients[sender].write(g.line(sender, k // n, perf_ns()))
    # let the tail arrive (bounded)
    echo = g.dialect != "irc"
    want = {c.idx: (total if echo else total - sum(1 for k in range(total) if k % n == c.idx)) for c in clients}
    t_end = time.monotonic() + 5
    while time.monotonic() < t_end and any(c.count < want[c.idx] for c in clients):
        await asyncio.sleep(0.01)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    delivered = sum(min(c.count, want[c.idx]) for c in clients)
    expected = sum(want.values())
    for c in clients:
        if c.transport:
            c.transport.abort()
    return {
        "scenario": "paced", "n": n, "rate": rate, "duration_s": duration,
        "sent": total, "expected": expected, "delivered": delivered, "lost": expected - delivered,
        "sender_behind_max_ms": round(behind_max / 1e6, 3),
        "disconnected": sum(1 for c in clients if c.lost_conn),
        **_latency_fields(samples),
        **_cpu_fields(cpu, wall),
        **_server_fields(pid, s0, wall),
    }


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


async def capacity(spec: dict[str, Any]) -> dict[str, Any]:
    """Connect K idle clients as fast as possible; handshakes/s and the server's RSS per client."""
    g = Gen(spec)
    k = int(spec["k"])
    pid = spec.get("pid")
    rss0 = _rss_kib(pid) if pid else None
    s0 = server_cpu_s(pid)
    t0 = time.perf_counter()
    c0 = time.process_time()
    error = None
    try:
        await g.connect_many(k, int(spec.get("concurrency", 100)), timeout=float(spec.get("timeout_s", 300)),
                             tolerate=True)
    except asyncio.TimeoutError:  # report how far we got instead of crashing
        error = "timeout"
    error = error or g.last_error
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    server = _server_fields(pid, s0, wall)
    connected = len(g.clients)
    await asyncio.sleep(1.0)
    rss1 = _rss_kib(pid) if pid else None
    alive = sum(1 for c in g.clients if not c.lost_conn)
    for c in g.clients:
        if c.transport:
            c.transport.abort()
    per = None
    if rss0 is not None and rss1 is not None and connected:
        per = round((rss1 - rss0) / connected, 2)
    return {
        "scenario": "capacity", "k": k, "register": g.register, "connected": connected, "failed": g.failures, "alive_after_1s": alive,
        "error": error, "wall_s": round(wall, 3),
        "connects_per_s": round(connected / wall, 1) if wall > 0 else 0,
        "rss_before_kib": rss0, "rss_after_kib": rss1, "kib_per_client": per,
        **_cpu_fields(cpu, wall),
        **server,
    }


SCENARIOS = {"fanout": fanout, "slow": fanout, "paced": paced, "capacity": capacity}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    raise_nofile()
    if spec.get("cpu") is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {int(spec["cpu"])})
        except OSError:
            pass
    return asyncio.run(SCENARIOS[spec["scenario"]](spec))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.aio_loadgen '<json spec>'", file=sys.stderr)
        return 2
    print(json.dumps(run(json.loads(args[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
