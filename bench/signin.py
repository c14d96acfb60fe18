"""The clients of the accounts scenario (bench/logins.py): how a client signs
in (`SignIn`: `/login` or `/resume` instead of a nickname, and `/remember`
after), a flood connection's attempts (`Attempts`) and the flood of them
(`Flood`), and the loopback address each connection comes from. No sockets
here but the engine's (bench/engine.py); what is measured is logins.py's.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator

from bench.dialects import Registration, RegistrationFailed
from bench.engine import Conn, perf_ns
from bench.harness import Spec
from bench.loop import Engine


def loopback(n: int) -> str:
    """The n-th client address of 127/8, skipping the .0 and .255 of each /24."""
    per_block = 254
    block, host = divmod(n, per_block)
    return f"127.{(block >> 8) & 255}.{block & 255}.{host + 1}"


class SignIn(Registration):
    """Answers `NICK` with `line` (`/login ...`, `/resume ...`); registered at the
    autojoin's `CURRENT`, or with `remember` at the `TOKEN` that `/remember` then asks."""

    def __init__(self, line: str, remember: bool = False) -> None:
        self.line = line.encode() + b"\n"
        self.remember = remember
        self.buf = b""
        self.hello = self.asked = self.welcomed = self.remembering = False
        self.token = ""
        self.t_welcome = 0

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = b""
        while not self.done and (end := self.buf.find(b"\n")) >= 0:
            line, self.buf = self.buf[:end], self.buf[end + 1 :]
            out += self._line(line.partition(b" ")[2] if line.startswith(b"@") else line)
        if self.done:
            self.leftover, self.buf = self.buf, b""
        return out

    def _line(self, line: bytes) -> bytes:
        verb, _, rest = line.partition(b" ")
        if not self.hello:
            if not line.startswith((b"HELLO 4 ", b"HELLO 5 ")):
                raise RegistrationFailed(f"expected HELLO 4 or 5 (protocol v4: accounts), got {line[:80]!r}")
            self.hello = True
        elif verb in (b"ERR", b"BYE"):
            raise RegistrationFailed(line.decode(errors="replace"))
        elif verb == b"NICK" and not self.asked:
            self.asked = True
            return self.line
        elif verb == b"WELCOME":
            self.welcomed, self.t_welcome = True, perf_ns()
        elif verb == b"CURRENT" and self.welcomed and not self.remembering:
            self.remembering = self.remember
            self.done = not self.remember
            return b"/remember\n" if self.remember else b""
        elif verb == b"TOKEN" and self.remembering:
            self.token = rest.partition(b" ")[0].decode()
            self.done = True
        return b""


class Attempts(Registration):
    """One flood connection: a sign-in at each `NICK` while the flood lasts,
    its answer counted; registered (and then closed) at `WELCOME`."""

    def __init__(self, flood: Flood, slot: int, conn: Conn) -> None:
        self.flood, self.slot, self.conn = flood, slot, conn
        self.buf = b""
        self.pause = 0.0  # before the next attempt (after auth_busy)
        self.t_sent = 0

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = b""
        while not self.done and (end := self.buf.find(b"\n")) >= 0:
            line, self.buf = self.buf[:end], self.buf[end + 1 :]
            verb, _, rest = line.partition(b" ")
            if verb == b"NICK":
                out += self._attempt()
            elif verb == b"ERR" and self.t_sent:
                code = rest.partition(b" ")[0].decode()
                self.pause = self.flood.busy_pause if code == "auth_busy" else 0.0
                self._answered(code)
            elif verb == b"WELCOME" and self.t_sent:
                self._answered("welcome")
                self.done = True
            elif verb == b"BYE":
                raise RegistrationFailed(line.decode(errors="replace"))  # nick_failed after 5: a new connection
        return out

    def _attempt(self) -> bytes:
        if not self.flood.on:
            return b""
        if self.pause:
            when, self.pause = time.monotonic() + self.pause, 0.0
            self.flood.engine.call_at(when, self._attempt_later)
            return b""
        self.t_sent = perf_ns()
        self.flood.outstanding += 1
        return self.flood.attempt(self.slot)

    def _attempt_later(self) -> None:
        line = self._attempt() if self.conn.state == "open" else b""
        if line:
            self.conn.write(line)

    def _answered(self, code: str) -> None:
        self.flood.answers[code] += 1
        if code == "welcome":
            self.flood.welcome_ns.append(perf_ns() - self.t_sent)
        self.flood.outstanding -= 1
        self.t_sent = 0

    def abandoned(self) -> None:
        """The connection ended with an attempt unanswered."""
        if self.t_sent:
            self.flood.answers["closed"] += 1
            self.flood.outstanding -= 1
            self.t_sent = 0


class Flood:
    """`spec["flood"]` connections signing in again and again while `on`, each
    replaced by a new one (from a new address) when it ends."""

    def __init__(self, engine: Engine, spec: Spec, addresses: Iterator[str]) -> None:
        self.engine, self.spec, self.addresses = engine, spec, addresses
        self.busy_pause = float(spec.get("busy_pause_s", 1.0))
        self.on = False
        self.conns: dict[Conn, Attempts] = {}
        self.answers: collections.Counter[str] = collections.Counter()
        self.welcome_ns: list[int] = []
        self.outstanding = 0
        self.connections = 0
        self._victim = 0

    def attempt(self, slot: int) -> bytes:
        spec = self.spec
        if slot % 4 == 0:  # one in four: a user with the right password
            return b"/login %s%d %s\n" % (spec["flood_prefix"].encode(), slot // 4, spec["password"].encode())
        self._victim = (self._victim + 1) % spec["victims"]
        return b"/login %s%d wrong-%s\n" % (spec["victim_prefix"].encode(), self._victim, spec["password"].encode())

    def start(self) -> None:
        self.on = True
        self.engine.on_registered = self._ended
        self.engine.on_closed = self._ended
        for slot in range(self.spec["flood"]):
            self._connect(slot)

    def _connect(self, slot: int) -> None:
        conn = Conn(self.engine, slot, "flood")
        conn.source = next(self.addresses)
        attempts = Attempts(self, slot, conn)
        conn.registration = attempts
        self.conns[conn] = attempts
        self.connections += 1
        conn.connect()

    def _ended(self, conn: Conn) -> None:
        """Signed in, or closed by the server (`BYE nick_failed`): the next connection."""
        attempts = self.conns.pop(conn, None)
        if attempts is None:
            return
        attempts.abandoned()
        conn.close()
        if self.on:
            # From the loop's next turn, not from here: a connection that fails
            # at once (a server refusing, or stopped by a profiler) recursed
            # until Python's limit. Due now, not at 0: the loop runs the timers
            # due when it looked at the clock, not those they set meanwhile.
            slot = attempts.slot
            self.engine.call_at(time.monotonic(), lambda: self._reconnect(slot))

    def _reconnect(self, slot: int) -> None:
        if self.on:
            self._connect(slot)

    def stop(self, timeout: float) -> str:
        """No further attempts; wait for the answers to those in flight, then close."""
        self.on = False
        outcome = self.engine.run(lambda: self.outstanding <= 0, timeout)
        for conn, attempts in list(self.conns.items()):
            attempts.abandoned()
            conn.close()
        self.conns.clear()
        return outcome
