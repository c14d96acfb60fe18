"""What a delivered line costs chatd's transport, by how many lines share a flush.

`python -m bench.flushcost` drives real endpoints (chatd/transport/endpoint.py:
a `SendQueue`, a `TLSStream`, TLS 1.3 with the server's context, a real
socket to a client) in this one thread, as an I/O worker does: every round,
`k` lines are delivered to each endpoint (one `deliver` call each, as a
room's broadcast makes them when lines arrive in different turns) and each
endpoint is flushed once. It reports this thread's CPU time (user and
system: `time.thread_time`, so other processes on a shared machine do not
count) per delivered line, split into delivering and flushing, for k = 1
(no write interval at paced load: a flush per line) up to 16, and the cost of
one flush's three steps taken apart: `SSLObject.write` of the lines,
reading the ciphertext out of the memory BIO, and `send()`.

The clients' sockets are drained outside the timed parts; what the kernel
does on loopback for a `send()` (queueing to the peer's socket) is in the
server's system time, as it is for chatd.

CPU time on a shared machine moves with what else runs (caches, frequency);
`--callgrind` counts instructions instead, which do not: for each k, this
module runs twice under `valgrind --tool=callgrind` (rounds R and 3R, the
steps left out), and (I(3R) - I(R)) / (the extra lines) is what a delivered
line costs, delivering, flushing and draining the clients' sockets
(user space only: the kernel's work is not counted).
"""

from __future__ import annotations

import argparse
import array
import fcntl
import logging
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from bench.servers import dev_certs
from chatd.config import LimitsConfig, TLSConfig
from chatd.outlet import Outlet
from chatd.tls import server_context
from chatd.transport.codec import Codec
from chatd.transport.endpoint import Endpoint
from chatd.transport.iostats import IOStats
from chatd.transport.lines import LineCodec
from chatd.transport.tlsstream import RECV_SIZE, TLSStream

# A line as the bench's paced scenario makes them (tags, room, nick, its 38-byte text).
LINE = b"@id=123456;time=2026-12-07T07:00:00.000Z MSG #lobby bench0042 t=1733554800000000000 s=0042 n=0001234\n"


class _App:
    """A session as the codec sees it; nothing reaches it here."""

    nick = "bench"
    messages_in = 0
    rate_limited = 0

    def __init__(self, outlet: Outlet) -> None:
        self.outlet = outlet

    def on_open(self, reject: str | None, cert_nick: str | None) -> None:
        pass

    def on_lines(self, lines: list[bytes | None]) -> None:
        pass

    def charge(self, frames: int) -> bool:
        return True

    def on_timer(self, now: float) -> None:
        pass

    def on_close(self, reason: str, text: str) -> bytes:
        return b"BYE %s\n" % reason.encode()

    def limits_changed(self) -> None:
        pass


@dataclass
class _Host:
    limits: LimitsConfig

    def open_codec(self, endpoint: Endpoint, alpn: str | None) -> Codec:
        return LineCodec(endpoint, _App(endpoint))

    def unregister(self, endpoint: Endpoint) -> None:
        pass

    def note_handshake_failure(self) -> None:
        pass

    def note_rejected(self, endpoint: Endpoint, reason: str) -> None:
        pass


class _Worker:
    """An I/O worker's part, on this thread: what is marked dirty waits for
    `flush_all`; a handshake step is taken at once, here."""

    hands_over = False

    def __init__(self) -> None:
        self.stats = IOStats()
        self.dirty: list[Endpoint] = []

    def in_thread(self) -> bool:
        return True

    def call_soon(self, call: Callable[[], None], conn: Endpoint | None = None) -> bool:
        call()
        return True

    def mark_dirty(self, conn: Endpoint) -> None:
        self.dirty.append(conn)

    def mark_readable(self, conn: Endpoint) -> None:
        pass

    def queue_handshake(self, conn: Endpoint) -> None:
        conn.handshake_step()

    def set_interest(self, conn: Endpoint, read: bool, write: bool) -> None:
        pass

    def arm_timer(self, conn: Endpoint, when: float) -> None:
        pass

    def forget(self, conn: Endpoint) -> None:
        pass

    def flush_all(self) -> None:
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.flush()


def _pair(
    host: _Host, worker: _Worker, context: ssl.SSLContext, ca: Path, scratch: bytearray
) -> tuple[Endpoint, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    endpoint = Endpoint(host, worker, TLSStream(ours, context, scratch), ("127.0.0.1", 1), 1, None)  # type: ignore[arg-type]
    client_context = ssl.create_default_context(cafile=str(ca))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    endpoint.start()
    theirs.setblocking(False)
    for _ in range(100):
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        if outgoing.pending:
            theirs.sendall(outgoing.read())
        endpoint.on_readable()
        try:
            incoming.write(theirs.recv(65536))
        except BlockingIOError:
            pass
    if outgoing.pending:
        theirs.sendall(outgoing.read())
    endpoint.on_readable()
    return endpoint, theirs


def _drain(peers: list[socket.socket]) -> None:
    """Read what the clients were sent (without decrypting it), asking the
    kernel how much there is first: no exception per client."""
    count = array.array("i", [0])
    for peer in peers:
        fcntl.ioctl(peer, termios.FIONREAD, count)
        if count[0]:
            peer.recv(count[0])


def measure(
    k: int, endpoints: list[Endpoint], peers: list[socket.socket], worker: _Worker, rounds: int
) -> tuple[float, float]:
    """µs of this thread's CPU per delivered line: (delivering, flushing)."""
    deliver_s = flush_s = 0.0
    delivers = [endpoint.deliver for endpoint in endpoints]
    drain_every = max(1, DRAIN_BYTES // (k * len(LINE)))
    for done in range(1, rounds + 1):
        t0 = time.thread_time()
        for _ in range(k):
            for deliver in delivers:
                deliver(LINE)
        t1 = time.thread_time()
        worker.flush_all()
        t2 = time.thread_time()
        deliver_s += t1 - t0
        flush_s += t2 - t1
        if done % drain_every == 0:
            _drain(peers)
    lines = rounds * k * len(endpoints)
    return 1e6 * deliver_s / lines, 1e6 * flush_s / lines


DRAIN_BYTES = 32768  # what a client's socket may hold before it is drained (far below its buffer)


def steps(k: int, endpoints: list[Endpoint], peers: list[socket.socket], rounds: int) -> tuple[float, float, float]:
    """µs of CPU per flush for its steps alone, straight on the SSL object,
    BIO and socket of each endpoint: (SSL write, BIO read, send)."""
    data = LINE * k
    write_s = read_s = send_s = 0.0
    flushes = 0
    for _ in range(rounds):
        for endpoint in endpoints:
            stream = endpoint.tls
            t0 = time.thread_time()
            stream._tls.write(data)
            t1 = time.thread_time()
            ciphertext = stream._outgoing.read()
            t2 = time.thread_time()
            stream.sock.send(ciphertext)
            t3 = time.thread_time()
            write_s, read_s, send_s = write_s + t1 - t0, read_s + t2 - t1, send_s + t3 - t2
            flushes += 1
        _drain(peers)
    return 1e6 * write_s / flushes, 1e6 * read_s / flushes, 1e6 * send_s / flushes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flushcost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100, help="endpoints (default 100)")
    parser.add_argument("--rounds", type=int, default=400, help="rounds per k (default 400)")
    parser.add_argument("--k", default="1,2,4,8,16", help="lines per flush (default 1,2,4,8,16)")
    parser.add_argument("--repeat", type=int, default=5, help="measurements per k, the median is shown (default 5)")
    parser.add_argument("--callgrind", action="store_true", help="count instructions per line under callgrind instead")
    parser.add_argument("--no-steps", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.callgrind:
        return _count(args)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # no `connect` events
    certs = dev_certs()
    context = server_context(TLSConfig(cert=certs.cert, key=certs.key), Path("."), web=False)
    host, worker = _Host(LimitsConfig(send_queue_bytes=1 << 24)), _Worker()
    scratch = bytearray(RECV_SIZE)
    pairs = [_pair(host, worker, context, certs.ca, scratch) for _ in range(args.clients)]
    endpoints, peers = [p[0] for p in pairs], [p[1] for p in pairs]
    print(f"{args.clients} endpoints, {len(LINE)}-byte lines, {args.rounds} rounds, median of {args.repeat}")
    print(
        f"{'k':>3} {'deliver µs/line':>15} {'flush µs/line':>13} {'total µs/line':>13}   per flush: SSL write, BIO read, send() µs"
    )
    for k in (int(v) for v in args.k.split(",")):
        runs = [measure(k, endpoints, peers, worker, args.rounds) for _ in range(args.repeat)]
        deliver, flush = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        parts = [steps(k, endpoints, peers, args.rounds // 4 or 1) for _ in range(0 if args.no_steps else args.repeat)]
        write, read, send = (statistics.median(p[i] for p in parts) if parts else 0.0 for i in range(3))
        print(f"{k:>3} {deliver:15.3f} {flush:13.3f} {deliver + flush:13.3f}   {write:.2f}, {read:.2f}, {send:.2f}")
    for endpoint in endpoints:
        endpoint.finish("shutdown", quiet=True)
    for peer in peers:
        peer.close()
    return 0


def _count(args: argparse.Namespace) -> int:
    """Instructions per delivered line for each k, from two runs under callgrind."""
    from bench.callgrind import parse_callgrind

    print(f"{args.clients} endpoints, {len(LINE)}-byte lines; instructions per delivered line (callgrind)")
    print(f"{'k':>3} {'instructions/line':>17}")
    rounds = max(1, args.rounds // 8)
    with tempfile.TemporaryDirectory(prefix="flushcost-") as tmp:
        for k in (int(v) for v in args.k.split(",")):
            totals = []
            for r in (rounds, 3 * rounds):
                out = os.path.join(tmp, f"k{k}-r{r}.out")
                cmd = ["valgrind", "--tool=callgrind", "--cache-sim=no", f"--callgrind-out-file={out}"]
                cmd += [sys.executable, "-m", "bench.flushcost", "--k", str(k), "--rounds", str(r)]
                cmd += ["--repeat", "1", "--no-steps", "--clients", str(args.clients)]
                subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
                totals.append(parse_callgrind(Path(out))[0])
            lines = 2 * rounds * k * args.clients
            print(f"{k:>3} {(totals[1] - totals[0]) / lines:17,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
