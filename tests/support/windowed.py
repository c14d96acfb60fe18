"""Chatters that keep a window, for the slow-consumer tests (test_concurrency,
test_limits): each sends its lines never more than `window` ahead of its
slowest reader, so that the readers are owed a bounded amount, and reads
everyone's lines, checking that they arrive whole and in order, while a
client named `sleeper` reads nothing and is dropped."""

from __future__ import annotations

import time

from tests.support.chatclient import ChatClient


def chat_windowed(
    client: ChatClient,
    progress: dict[str, dict[str, int]],
    count: int,
    errors: list[BaseException],
    *,
    line_bytes: int = 4000,
    window: int = 8,
    latencies: list[float] | None = None,
    left: set[str] | None = None,
) -> None:
    """Send `count` lines of `line_bytes` (newline included) to #lobby, staying
    within `window` lines of the slowest reader, and read every reader's lines,
    checking that they are complete and in order. Run in a thread per chatter;
    what fails goes to `errors`.

    `progress[reader][sender]` is how many of sender's lines reader has seen.
    Each line carries its send time: the delay of each delivery goes to
    `latencies`, and the chatters that saw the sleeper leave to `left`.
    """
    try:
        seen = progress[client.nick]
        sent = 0
        deadline = time.monotonic() + 30
        while sum(seen.values()) < len(progress) * count:
            assert time.monotonic() < deadline, f"{client.nick}: sent {sent}, seen {seen}"
            slowest = min(p[client.nick] for p in progress.values())
            if sent < count and sent - slowest < window:
                head = f"{client.nick} {sent} {time.monotonic():.6f} "
                client.send(head + "x" * (line_bytes - len(head) - 1))
                sent += 1
                continue
            try:
                # Short: what unblocks this sender may arrive at another reader.
                line = client.readline(timeout=0.05)
            except TimeoutError:
                continue
            if line.startswith("MSG "):
                _, room, sender, owner, number, stamp, _ = line.split(" ")
                assert room == "#lobby", line[:80]
                assert owner == sender and int(number) == seen[sender], line[:80]
                if latencies is not None:
                    latencies.append(time.monotonic() - float(stamp))
                seen[sender] += 1
            else:
                assert line == "LEAVE sleeper slow_consumer", line[:80]
                if left is not None:
                    left.add(client.nick)
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)
