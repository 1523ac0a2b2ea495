"""Background tasks: started once per key, results and errors kept, finished ones forgotten
beyond the limit (running ones never). Work is gated on events, so no test sleeps."""

from __future__ import annotations

import threading

import pytest

from dashboard.background import Tasks, registry, start_deferred, wait_all
from mgi_core.errors import ConfigError


def test_a_key_starts_its_work_once_and_keeps_the_value() -> None:
    tasks, calls, go = Tasks("t", 4), [], threading.Event()

    def work() -> int:
        calls.append(1)
        go.wait()
        return 42

    first = tasks.start("k", "Working", work)
    again = tasks.start("k", "Working", work)
    assert again is first and not first.done
    with pytest.raises(RuntimeError, match="still running"):
        first.result()
    assert first.peek() is None
    go.set()
    assert first.wait(5)
    assert first.result() == 42 and first.peek() == 42 and calls == [1]
    assert tasks.start("k", "Working", work).result() == 42 and calls == [1]


def test_errors_are_kept_and_raised_by_result() -> None:
    tasks = Tasks("t", 4)

    def fail() -> None:
        raise ConfigError("no such scorer")

    task = tasks.start("bad", "Failing", fail)
    assert task.wait(5)
    assert isinstance(task.error, ConfigError) and task.peek() is None
    with pytest.raises(ConfigError, match="no such scorer"):
        task.result()
    assert tasks.start("bad", "Failing", fail) is task  # not retried behind the page's back


def test_only_finished_tasks_are_forgotten_beyond_the_limit() -> None:
    tasks, go = Tasks("t", 2), threading.Event()
    running = tasks.start("slow", "Slow", go.wait)
    for key in ("a", "b", "c"):
        tasks.start(key, key, lambda: None).wait(5)
    tasks.start("d", "d", lambda: None)  # forgets the oldest finished ones, never "slow"
    kept = tasks.keys()
    assert "slow" in kept and "a" not in kept
    assert len(tasks) <= 3
    tasks.forget(lambda key: key == "slow")  # running: kept
    assert tasks.get("slow") is running
    go.set()
    running.wait(5)
    tasks.forget(lambda key: key == "slow")
    assert tasks.get("slow") is None


def test_wait_all_waits_for_work_started_on_other_work() -> None:
    tasks, go = registry("chain", 8), threading.Event()

    def second() -> str:
        go.wait()
        return "done"

    def first() -> str:
        tasks.start("second", "Second", second)
        go.set()
        return "started"

    head = tasks.start("first", "First", first)
    assert wait_all(timeout=10)
    assert head.result() == "started" and tasks.get("second").result() == "done"
    tasks.clear()
    assert len(tasks) == 0


def test_deferred_work_begins_at_start_deferred() -> None:
    tasks, began = registry("deferred", 4, deferred=True), threading.Event()

    def work() -> str:
        began.set()
        return "fitted"

    task = tasks.start("fit", "Fitting", work)
    assert tasks.start("fit", "Fitting", work) is task
    assert not began.wait(0.2) and not task.done  # asked for, not begun: the page renders
    assert start_deferred() == 1
    assert task.wait(5) and task.result() == "fitted"
    assert start_deferred() == 0  # each thread starts once
    tasks.clear()
