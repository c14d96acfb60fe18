"""chatd/jobthreads.py with real threads: a job runs on a thread of its own
that lowered its priority first, its answer is given on that thread, a job
that crashes is answered with its exception and costs nothing to the jobs
after it, and `stop` ends the threads after the jobs already submitted."""

from __future__ import annotations

import queue
import threading

from structlog.testing import capture_logs

from chatd.jobthreads import JobThreads

WAIT = 10.0


def test_the_work_and_its_answer_run_on_a_thread_that_lowered_itself_first() -> None:
    lowered: list[str] = []
    answers: queue.Queue[tuple[object, str]] = queue.Queue()
    threads = JobThreads("chatd-test", 1, on_start=lambda: lowered.append(threading.current_thread().name))
    threads.start()
    try:
        threads.submit(
            lambda: threading.current_thread().name, lambda r: answers.put((r, threading.current_thread().name))
        )
        assert answers.get(timeout=WAIT) == ("chatd-test-0", "chatd-test-0")
        assert lowered == ["chatd-test-0"]
    finally:
        threads.stop()


def test_a_job_that_crashes_is_logged_answered_with_its_error_and_the_next_is_taken() -> None:
    answers: queue.Queue[object] = queue.Queue()
    threads = JobThreads("chatd-test", 1)
    threads.start()
    try:
        with capture_logs() as logs:
            threads.submit(lambda: 1 // 0, answers.put)
            threads.submit(lambda: "next", answers.put)
            assert isinstance(answers.get(timeout=WAIT), ZeroDivisionError)  # whoever waits is answered
            assert answers.get(timeout=WAIT) == "next"
        assert [(entry["event"], entry["threads"]) for entry in logs] == [("job_crashed", "chatd-test")]
    finally:
        threads.stop()


def test_stop_ends_the_threads_after_the_jobs_submitted() -> None:
    answers: list[int] = []
    threads = JobThreads("chatd-test", 2)
    threads.start()
    for n in range(20):
        threads.submit(lambda n=n: n, answers.append)  # type: ignore[misc]
    threads.stop()
    assert sorted(answers) == list(range(20))
    assert not [t for t in threading.enumerate() if t.name.startswith("chatd-test-")]
