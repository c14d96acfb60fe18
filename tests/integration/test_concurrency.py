"""One SSL object per thread, under load: concurrent senders, TLS 1.3 KeyUpdate,
and a client that stops reading.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from tests.conftest import Daemon, wait_until, with_io_threads
from tests.support.chatclient import EVENT_TAGS, ChatClient
from tests.support.windowed import chat_windowed

SENDERS = 8
PER_SENDER = 150


def _blast(client: ChatClient, count: int, errors: list[BaseException]) -> None:
    try:
        for n in range(count):
            client.send(f"{client.nick} {n} " + "x" * 60)
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@with_io_threads(1, 2)
def test_key_updates_under_concurrent_load(start_daemon, tmp_path, io_threads: int) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = start_daemon(server={"io_threads": io_threads})
    out_path = tmp_path / "s_client.out"
    with out_path.open("wb") as out:
        # s_client turns a line "K" into a TLS 1.3 KeyUpdate that also asks the
        # server to update its keys; lines starting with k, K, Q or R are commands.
        s_client = subprocess.Popen(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{daemon.port}",
                "-tls1_3",
                "-CAfile",
                str(daemon.pki.ca),
                "-verify_return_error",
            ],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    assert s_client.stdin is not None
    observer = daemon.client("observer")
    s_client.stdin.write(b"updater\n")
    s_client.stdin.flush()
    observer.expect("JOIN #lobby updater", timeout=10)
    senders = [daemon.client(f"s{i}") for i in range(SENDERS)]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_blast, args=(s, PER_SENDER, errors)) for s in senders]
    for thread in threads:
        thread.start()
    for n in range(20):
        # s_client reads commands per read() of stdin, so each line waits for
        # the effect of the one before: the KeyUpdate, then the message's echo.
        s_client.stdin.write(b"K\n")
        s_client.stdin.flush()
        wait_until(lambda: out_path.read_bytes().count(b"KEYUPDATE") > n, 10, "KeyUpdate sent")
        s_client.stdin.write(f"update {n}\n".encode())
        s_client.stdin.flush()
        observer.expect_eventually(f"MSG #lobby updater update {n}", timeout=20)
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a sender hung"
    assert not errors

    def s_client_saw_everything() -> bool:
        text = out_path.read_bytes().decode(errors="replace")
        return text.count("MSG #lobby s") == SENDERS * PER_SENDER and "MSG #lobby updater update 19" in text

    wait_until(s_client_saw_everything, 30, "every line to reach the KeyUpdate client")
    text = out_path.read_text(errors="replace")
    assert re.search(r"^HELLO 5 chatd \S+\nACCOUNTS .*\nNICK\nWELCOME updater ", text, re.M), text[:2000]
    # Every line reached it whole, tags included. (s_client prints KEYUPDATE
    # where it is when it reads the command, which may be inside a line.)
    received = text.replace("KEYUPDATE\n", "")
    assert len(re.findall(rf"{EVENT_TAGS} MSG #lobby (s\d) \1 \d+ x{{60}}\n", received)) == SENDERS * PER_SENDER
    assert text.count("KEYUPDATE") == 20
    s_client.stdin.write(b"/quit\n")
    s_client.stdin.close()
    s_client.wait(10)
    assert not [e for e in daemon.events() if e.get("level") == "error"]


@with_io_threads(1, 2)
def test_a_client_that_stops_reading_does_not_slow_the_others(start_daemon, io_threads: int) -> None:  # type: ignore[no-untyped-def]
    # Readers are owed at most 3 senders x 8 lines x 4 KB = 96 KB at any time.
    daemon = start_daemon(server={"io_threads": io_threads}, limits={"send_queue_bytes": 262144})
    sleeper = daemon.client("sleeper")
    sleeper.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    readers = [daemon.client(f"r{i}") for i in range(3)]
    for i, reader in enumerate(readers):
        for later in readers[i + 1 :]:
            reader.expect(f"JOIN #lobby {later.nick}")
    errors: list[BaseException] = []
    # 3 x 400 x 4 KB: far more than the kernel's socket buffers can hide.
    progress = {r.nick: {s.nick: 0 for s in readers} for r in readers}
    threads = [threading.Thread(target=chat_windowed, args=(r, progress, 400, errors)) for r in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a reader hung"
    assert not errors, errors
    event = daemon.wait_for_event("disconnect", nick="sleeper")
    assert event["reason"] == "slow_consumer"
    sleeper.close()
    fresh = daemon.client("fresh")
    fresh.send("/who")
    assert fresh.readline() == "USERS #lobby fresh r0 r1 r2"


@with_io_threads(1, 2)
def test_write_timeout_drops_a_peer_whose_window_stays_shut(start_daemon, io_threads: int) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon(server={"io_threads": io_threads}, limits={"write_timeout": 1, "send_queue_bytes": 256 << 20})
    stuck = daemon.client("stuck")
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    talker = daemon.client("talker")
    started = time.monotonic()
    payload = "y" * 3000
    others: list[str] = []
    while not daemon.find_events("disconnect", nick="stuck"):
        talker.send(payload)
        while (line := talker.readline()) != f"MSG #lobby talker {payload}":
            others.append(line)
        assert time.monotonic() - started < 30, "the stuck client was never dropped"
    if not others:
        others.append(talker.readline())
    assert others == ["LEAVE stuck write_timeout"]
    assert daemon.find_events("disconnect", nick="stuck")[0]["reason"] == "write_timeout"
    stuck.close()
