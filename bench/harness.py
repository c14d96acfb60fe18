"""What every scenario of the load generator sets up the same way: its engine
(a client TLS context and the target's dialect), connecting and registering
its clients with bounded concurrency, the barrier after which it counts, its
clients' names, the record of a run that failed before it was measured, and
the TLS it ended up speaking.

The scenarios themselves are in scenarios.py, rooms.py and churn.py; the
measured phase that fan-out and rooms share is in phase.py.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

from bench.dialects import DIALECTS
from bench.engine import Conn
from bench.loop import Engine

Spec = dict[str, Any]


def make_context(ca: str | None) -> ssl.SSLContext:
    """A client context that verifies against `ca`, or verifies nothing.

    Without a CA no trust store is loaded at all: OpenSSL builds a chain even
    under CERT_NONE, and with the system store (a directory, read on every
    lookup by OpenSSL 3.0) that alone cost the generator more than the
    server's whole handshake.
    """
    if ca:
        return ssl.create_default_context(cafile=ca)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def make_engine(spec: Spec) -> Engine:
    """The engine a scenario runs its clients in, as `spec` says: where, which
    dialect, whether to verify, and whether over a WebSocket."""
    ca = spec.get("ca") if spec.get("verify", True) else None
    context = make_context(ca)
    dialect = DIALECTS[spec["dialect"]]
    if spec.get("websocket"):  # the target's lines over a WebSocket, as a browser connects
        dialect = DIALECTS[dialect.name + "-ws"]
        context.set_alpn_protocols(["http/1.1"])
    return Engine(spec["host"], spec["port"], context, dialect)


def connect_all(engine: Engine, conns: list[Conn], concurrency: int, timeout: float, then: Any = None) -> str:
    """Connect and register `conns`, at most `concurrency` in progress at once."""
    queue = list(reversed(conns))
    in_progress = 0

    def start_more() -> None:
        nonlocal in_progress
        while queue and in_progress < concurrency:
            conn = queue.pop()
            in_progress += 1
            conn.connect()

    def registered(conn: Conn) -> None:
        nonlocal in_progress
        in_progress -= 1
        if then is not None:
            then(conn)
        start_more()

    def closed(conn: Conn) -> None:
        nonlocal in_progress
        if not conn.registration.done:
            in_progress -= 1
            start_more()

    engine.on_registered = registered
    engine.on_closed = closed
    start_more()
    total = len(conns)
    return engine.run(lambda: engine.registered + engine.connect_failed >= total, timeout)


def handshake_then_register(
    engine: Engine,
    conns: list[Conn],
    concurrency: int,
    timeout: float,
    then: Any,
    wave: int = 1000,
    sources: int = 8,
) -> str:
    """As the capacity scenario does: every client completes its TLS handshake
    (at most `concurrency` at once, from 127.0.0.1 .. 127.0.0.<sources> in
    turn) and waits, then they register `wave` at a time
    (`register_in_waves`), each handed to `then` when registered."""
    queue = list(reversed(conns))
    in_progress = 0

    def start_more(conn: Conn | None = None) -> None:
        nonlocal in_progress
        if conn is not None:
            in_progress -= 1
        while queue and in_progress < concurrency:
            in_progress += 1
            queue.pop().connect()

    def closed(conn: Conn) -> None:
        if conn.t_handshake == 0:
            # From the loop, not from here: a connect that fails at once (no
            # local port left) would otherwise recurse into the next one.
            engine.call_at(time.monotonic(), lambda: start_more(conn))

    for conn in conns:
        conn.hold = True
        if sources > 1:
            conn.source = f"127.0.0.{1 + conn.index % sources}"
    engine.on_handshake = start_more
    engine.on_closed = closed
    engine.on_registered = then
    start_more()
    deadline = time.monotonic() + timeout
    outcome = engine.run(lambda: engine.handshaken + engine.connect_failed >= len(conns), timeout)
    if outcome != "done":
        return outcome
    return register_in_waves(engine, conns, wave, deadline)


def register_in_waves(engine: Engine, conns: list[Conn], wave: int, deadline: float) -> str:
    """Register the handshaken clients `wave` at a time, each wave once the one
    before is registered. All at once (`wave` = all) is a reconnect storm; at
    20,000 in one room its O(N²) JOINs reach every member in thousands of
    small writes, more than one generator process can read before TCP gives up
    on its sockets, so the capacity scenario goes in waves of 1,000 (README,
    capacity)."""
    ready = [conn for conn in conns if conn.state == "open"]
    outcome = "done"
    for start in range(0, len(ready), wave):
        for conn in ready[start : start + wave]:
            if conn.state == "open":
                conn.register()
        target = min(len(conns), start + wave) + (len(conns) - len(ready))
        outcome = engine.run(
            lambda target=target: engine.registered + engine.connect_failed >= target,
            max(1.0, deadline - time.monotonic()),
        )
        if outcome != "done":
            break
    return outcome


def barrier(engine: Engine, conns: list[Conn], timeout: float, leaders: list[Conn] | None = None) -> str:
    """Everyone skips what the set-up sent them (JOIN lines and the like) until
    the `SYNC-BARRIER` line of its room's leader (default: client 0, for one
    room). A leader that does not hear itself (IRC) waits for a PONG instead."""
    dialect = engine.dialect
    for leader in leaders or conns[:1]:
        leader.is_sync_sender = True
        leader.write(dialect.sync_message(leader.prefix) + (b"" if dialect.echo else dialect.ping(999999)))
    live = [c for c in conns if c.state == "open"]
    return engine.run(lambda: all(c.synced for c in live), timeout)


def nick(i: int) -> str:
    return f"c{i:05d}"


def fail_result(spec: Spec, engine: Engine, stage: str, outcome: str) -> dict[str, Any]:
    """The record of a run that failed at `stage` (connect, barrier), before anything was measured."""
    return {
        **spec,
        "ok": False,
        "stage": stage,
        "outcome": outcome,
        "registered": engine.registered,
        "errors": dict(engine.errors.most_common(8)),
    }


def tls_info(conns: list[Conn]) -> str:
    """The TLS version and cipher of the first open client, as `TLSv1.3 TLS_AES_256_GCM_SHA384`."""
    for conn in conns:
        if conn.tls is not None and conn.state == "open":
            cipher = conn.tls.cipher()
            return f"{conn.tls.version()} {cipher[0] if cipher else '?'}"
    return "?"
