"""chatd/priority.py and the threads that use it (chatd/auth.py's hashing
threads, the history and accounts writers): they lower their own scheduling priority, and
a system that refuses (systemd's SystemCallFilter=~@resources) is survived
and said once."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from chatd import priority
from chatd.auth import AuthThreads
from chatd.config import HistoryConfig
from chatd.core.accounts import Verdict
from chatd.priority import BackgroundPriority
from chatd.storage.accounts import open_accounts
from chatd.storage.sqlite import open_store
from tests.conftest import wait_until


def _own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _on_a_thread(work: Callable[[], object]) -> list[object]:
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(work()))
    thread.start()
    thread.join(10)
    return results


def _refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    def setpriority(which: int, who: int, value: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(priority.os, "setpriority", setpriority)


class Hasher:
    """Records the nice value of the thread each check runs on."""

    def __init__(self) -> None:
        self.nice: list[int] = []

    def hash(self, password: str) -> str:
        self.nice.append(_own_nice())
        return "$argon2id$fake"

    def verify(self, hashed: str, password: str) -> Verdict:
        self.nice.append(_own_nice())
        return Verdict(True, None)


def _one_check(auth: AuthThreads) -> Verdict:
    done = threading.Event()
    verdicts: list[Verdict] = []
    assert auth.verify("$argon2id$fake", "pw", lambda v: (verdicts.append(v), done.set()))
    assert done.wait(10)
    return verdicts[0]


def test_a_thread_lowers_its_own_priority_and_no_other() -> None:
    before = _own_nice()
    lowered = _on_a_thread(lambda: (BackgroundPriority(5).lower(), _own_nice()))
    assert lowered == [(min(19, before + 5), min(19, before + 5))]
    assert _own_nice() == before


def test_a_refusal_is_survived_and_logged_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse(monkeypatch)
    background = BackgroundPriority()
    with capture_logs() as logs:
        assert _on_a_thread(background.lower) == [None]
        assert _on_a_thread(background.lower) == [None]
    assert [(e["event"], e["log_level"]) for e in logs] == [("thread_priority_refused", "warning")]
    assert "SystemCallFilter=setpriority" in logs[0]["hint"]


def test_the_hashing_threads_check_passwords_at_a_lower_priority() -> None:
    hasher = Hasher()
    auth = AuthThreads(hasher, 2, 4, BackgroundPriority())
    try:
        assert _one_check(auth).ok
    finally:
        auth.stop()
    assert hasher.nice == [min(19, _own_nice() + priority.BACKGROUND_NICE)]


def test_the_hashing_threads_check_passwords_when_the_system_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse(monkeypatch)
    hasher = Hasher()
    with capture_logs() as logs:
        auth = AuthThreads(hasher, 2, 4, BackgroundPriority())
        try:
            assert _one_check(auth).ok
            assert _one_check(auth).ok
        finally:
            auth.stop()
    assert hasher.nice == [_own_nice(), _own_nice()]
    assert [e["event"] for e in logs] == ["thread_priority_refused"]


def test_the_history_writer_runs_at_a_lower_priority(tmp_path: Path) -> None:
    store = open_store(HistoryConfig(path=tmp_path / "chatd.db"), tmp_path / "chatd.yaml", BackgroundPriority())
    try:
        store.load(0)  # starts the writer
        tid = store._writer._thread.native_id
        assert tid is not None
        wanted = min(19, _own_nice() + priority.BACKGROUND_NICE)
        wait_until(lambda: os.getpriority(os.PRIO_PROCESS, tid) == wanted, 10, "the writer's nice value")
    finally:
        store.close()


def test_the_accounts_writer_runs_at_a_lower_priority(tmp_path: Path) -> None:
    store = open_accounts(tmp_path / "chatd.db", tmp_path / "chatd.yaml", BackgroundPriority())
    try:
        store.load()  # starts the writer
        tid = store._thread.native_id
        assert tid is not None
        wanted = min(19, _own_nice() + priority.BACKGROUND_NICE)
        wait_until(lambda: os.getpriority(os.PRIO_PROCESS, tid) == wanted, 10, "the writer's nice value")
    finally:
        store.close()
