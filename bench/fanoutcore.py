"""Instructions per message of a room's fan-out in the chat core, no sockets.

`python -m bench.fanoutcore --clients irc --n 50` builds, in this process, a
`Chat` with N members in one room, each an IRC codec (`IrcCodec` with its
`Session`, in one delivery group, as the IRC listener makes them) or a
native session, on stand-in endpoints whose `deliver` is a no-op: no TLS,
no send queue, no socket. Ten of them take turns saying a read of ten
messages (IRC: `PRIVMSG #bench :…` through the codec's read; native: lines
through `Session.on_lines`), and each read leaves as one block to every
member, as in the bench's fan-out.

It runs itself twice under `valgrind --tool=callgrind` (K reads and none)
and prints the difference per message: what reading, handling, translating
and handing a message to N members costs, beside what `bench.callgrind`
counts for the whole server (that adds the send queues, TLS and sockets,
the same for both kinds of client). A run takes well under a minute, and
instruction counts do not depend on what else the machine runs.
bench/INSTRUCTIONS.md ("IRC clients") has what it measured.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from bench.dialects import MSG_BODY

READS = 300  # counted reads of ten messages, beside a run with none
WARM = 200  # reads before counting: the caches and the rooms' blocks settle


def _sink(data: bytes, lines: int = 1, sender: object = None) -> None:
    """Where a member's lines would go: its send queue."""


class StandInEndpoint:
    """What a codec or session reads of its endpoint."""

    peer = "127.0.0.1:50000"
    connected_at = 0.0

    def __init__(self) -> None:
        self.context: dict[str, object] = {}
        self.worker = SimpleNamespace(in_thread=lambda: True, stats=SimpleNamespace(lines_in=0))
        self.deliver = _sink

    def is_open(self) -> bool:
        return True

    def close(self, reason: str, text: str = "") -> None:
        pass

    def set_deadline(self, when: float) -> None:
        pass

    def pause_for_backlog(self) -> bool:
        return False

    def resume_after_backlog(self) -> None:
        pass


def _room(clients: str, members: int) -> Callable[[int], None]:
    """A chat with `members` in one room; returns what makes read `k`."""
    from chatd.config import Config, LimitsConfig
    from chatd.core.chat import Chat
    from chatd.core.session import Session
    from chatd.irc_listener import ChatDirectory
    from chatd.outlet import Outlet, SharedDelivery
    from chatd.transport.irc import IrcCodec, IrcGroup
    from chatd.transport.ircout import Frames
    from chatd.transport.ircreg import Settings

    limits = LimitsConfig(message_rate=0, message_burst=1_000_000, max_clients_per_ip=0)
    chat = Chat(Config(path=Path("bench.yaml"), limits=limits))
    if clients == "irc":
        frames = Frames(ChatDirectory(chat), "irc.bench")
        settings = Settings("irc.bench", "bench", "0", "today", 16, 10, 0)
        group = IrcGroup(frames)
        codecs = []
        for i in range(members):
            codec = IrcCodec(
                StandInEndpoint(),  # type: ignore[arg-type]
                settings,
                frames,
                lambda codec: Session(
                    chat, codec, {}, tracer=codec, autojoin=False, shared=SharedDelivery(group, codec)
                ),
            )
            codec.on_open(None, None)
            codec.on_data(b"NICK u%d\r\nUSER u 0 * :u\r\nJOIN #bench\r\n" % i)
            codecs.append(codec)
        return lambda k: codecs[k % 10].on_data(
            b"".join(b"PRIVMSG #bench :" + MSG_BODY % (k, k % 10, j) + b"\r\n" for j in range(10))
        )
    sessions = []
    for i in range(members):
        outlet: Outlet = StandInEndpoint()  # type: ignore[assignment]
        session = Session(chat, outlet, {})
        session.on_open(None, None)
        session.on_lines([b"u%d" % i])  # registered, and in the autojoin's #lobby
        sessions.append(session)
    return lambda k: sessions[k % 10].on_lines([MSG_BODY % (k, k % 10, j) for j in range(10)])


def _serve(clients: str, members: int, reads: int) -> None:
    """The counted side, under valgrind: set up, warm up, then `reads` reads."""
    import structlog

    structlog.configure(processors=[], logger_factory=structlog.ReturnLoggerFactory())
    read = _room(clients, members)
    for k in range(WARM):
        read(k)
    for k in range(WARM, WARM + reads):
        read(k)


def _instructions(clients: str, members: int, reads: int) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "bench.fanoutcore",
            "--serve",
            clients,
            str(members),
            str(reads),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total in: {done.stderr[-500:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanoutcore", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", choices=("native", "irc"), default="irc")
    parser.add_argument("--n", type=int, default=50, help="members of the room (10 or more)")
    parser.add_argument("--reads", type=int, default=READS, help="counted reads of ten messages")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve[0], int(args.serve[1]), int(args.serve[2]))
        return 0
    if shutil.which("valgrind") is None:
        print("bench.fanoutcore: valgrind not found (apt-get install valgrind)", file=sys.stderr)
        return 2
    if args.n < 10:
        print("bench.fanoutcore: --n must be 10 or more (ten members take turns to speak)", file=sys.stderr)
        return 2
    counted = _instructions(args.clients, args.n, args.reads) - _instructions(args.clients, args.n, 0)
    per_message = counted / (args.reads * 10)
    print(
        f"{args.clients} N={args.n}: {per_message:,.0f} instructions per message, {per_message / args.n:,.0f} per delivery"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
