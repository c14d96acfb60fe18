"""The background threads' scheduling priority (chatd/priority.py), read from
the real daemon's /proc: the hashing threads and the history and accounts
writers run at a nice value 10 above the I/O workers'; under a seccomp filter
that refuses setpriority they run at the workers' priority, and it is said once."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Daemon, wait_until
from tests.support import seccomp_chatd
from tests.support.accounts import FAST_ARGON2, signed_in


def _nice(pid: int, tid: int) -> int:
    """Field 19 of /proc/<pid>/task/<tid>/stat; the fields start after the
    command name's closing parenthesis (the name may hold spaces)."""
    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[19 - 3])


def test_the_hashing_threads_and_the_writers_run_below_the_io_threads(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon(accounts={"auth_threads": 2}, history={"enabled": True})
    lowered = wait_until(
        lambda: (found := daemon.find_events("thread_priority_lowered")) and len(found) >= 5 and found,
        10,
        "five threads lowered",
    )
    names = sorted(event["thread"] for event in lowered)
    assert names == [
        "chatd-accounts-writer",
        "chatd-auth-0",
        "chatd-auth-1",
        "chatd-handshake-0",
        "chatd-history-writer",
    ], lowered
    base = _nice(daemon.pid, daemon.pid)  # the main thread's, as every I/O worker's
    assert base == os.getpriority(os.PRIO_PROCESS, 0)  # the test's own: unchanged by chatd
    for event in lowered:
        assert _nice(daemon.pid, event["tid"]) == event["nice"] == min(19, base + 10), event
    io = [
        tid
        for tid in map(int, os.listdir(f"/proc/{daemon.pid}/task"))
        if tid not in {event["tid"] for event in lowered}
    ]
    assert io and all(_nice(daemon.pid, tid) == base for tid in io)


@pytest.mark.skipif(not seccomp_chatd.supported(), reason="the seccomp filter is written for x86-64 and aarch64")
def test_a_filter_that_refuses_setpriority_is_survived_and_said_once(start_daemon: Callable[..., Daemon]) -> None:
    """As under a unit with SystemCallFilter=~@resources and no setpriority:
    one warning, every thread at the process's priority, and sign-ins work."""
    daemon = start_daemon(
        command=[sys.executable, "-m", "tests.support.seccomp_chatd"],
        accounts={"auth_threads": 2, "argon2": FAST_ARGON2},
        history={"enabled": True},
    )
    refused = daemon.wait_for_event("thread_priority_refused", timeout=10)
    assert refused["level"] == "warning" and "SystemCallFilter=setpriority" in refused["hint"]
    alice = signed_in(daemon, "/register alice * correct horse battery", "alice")
    alice.close()
    assert signed_in(daemon, "/login alice correct horse battery", "alice")  # a check on a hashing thread
    assert len(daemon.find_events("thread_priority_refused")) == 1
    assert not daemon.find_events("thread_priority_lowered")
    base = _nice(daemon.pid, daemon.pid)
    assert all(_nice(daemon.pid, int(tid)) == base for tid in os.listdir(f"/proc/{daemon.pid}/task"))
