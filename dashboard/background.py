"""Work that takes longer than a page render, run once per key in a background thread.

A page never blocks its first render on fitting a ranking at size (seconds to minutes):
it starts the work here, draws everything else, and shows the section as being prepared
until the task is done (``dashboard.pending``). A task is started once per key and shared
by every session of the process; its result, or the error it raised, is kept for the next
rerun. No Streamlit here: the registries are plain process-wide objects.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class Task:
    """One piece of background work: what it does (``label``), when, and how it ended."""

    label: str
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    value: Any = None
    error: BaseException | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        """Whether the work has ended (with a value or an error)."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: until done); whether it is done."""
        return self._done.wait(timeout)

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the work started, up to when it finished."""
        end = self.finished if self.finished is not None else (now or time.monotonic())
        return max(end - self.started, 0.0)

    def result(self) -> Any:
        """The value; raises the error the work raised. Only once ``done``."""
        if not self.done:
            raise RuntimeError(f"{self.label} is still running.")
        if self.error is not None:
            raise self.error
        return self.value

    def peek(self) -> Any:
        """The value when the work ended well, else None (running, or failed)."""
        return self.value if self.done and self.error is None else None

    def _run(self, work: Callable[[], Any]) -> None:
        try:
            self.value = work()
        except Exception as exc:  # kept for the page to show (or raise), never lost
            logger.exception("background task failed: %s", self.label)
            self.error = exc
        finally:
            self.finished = time.monotonic()
            self._done.set()


_deferred: list[threading.Thread] = []  # threads of deferred tasks, started by start_deferred
_deferred_lock = threading.Lock()


class Tasks:
    """Background tasks by key: each started once, at most ``max_entries`` kept.

    When more are kept, the oldest finished ones are forgotten (their values freed once
    nobody else holds them); running tasks are never forgotten, so a key never runs twice
    at once. A ``deferred`` registry's work begins at the next ``start_deferred`` (the app
    calls it once a page is drawn), so a heavy fit never competes with the render that
    asked for it: threads of one process share the interpreter.
    """

    def __init__(self, name: str, max_entries: int, deferred: bool = False) -> None:
        self.name = name
        self.max_entries = max_entries
        self.deferred = deferred
        self._tasks: OrderedDict[Hashable, Task] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, key: Hashable, label: str, work: Callable[[], Any]) -> Task:
        """The task for ``key``: the kept one, or ``work`` started now in a daemon thread."""
        with self._lock:
            task = self._tasks.get(key)
            if task is not None:
                self._tasks.move_to_end(key)
                return task
            task = Task(label)
            self._tasks[key] = task
            self._forget_oldest_finished()
        thread = threading.Thread(target=task._run, args=(work,), name=f"mgi-{self.name}",
                                  daemon=True)
        if self.deferred:
            with _deferred_lock:
                _deferred.append(thread)
        else:
            thread.start()
        return task

    def get(self, key: Hashable) -> Task | None:
        """The kept task for ``key``, or None."""
        with self._lock:
            return self._tasks.get(key)

    def keys(self) -> list[Hashable]:
        """The kept keys, least recently started or asked for first."""
        with self._lock:
            return list(self._tasks)

    def forget(self, where: Callable[[Hashable], bool]) -> None:
        """Forget the finished tasks whose key ``where`` accepts."""
        with self._lock:
            for key in [k for k, t in self._tasks.items() if t.done and where(k)]:
                del self._tasks[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)

    def running(self) -> list[Task]:
        """The tasks not done yet."""
        with self._lock:
            return [t for t in self._tasks.values() if not t.done]

    def clear(self) -> None:
        """Forget every task (running ones finish unobserved)."""
        with self._lock:
            self._tasks.clear()

    def _forget_oldest_finished(self) -> None:
        extra = len(self._tasks) - self.max_entries
        for key in [k for k, t in self._tasks.items() if t.done][: max(extra, 0)]:
            del self._tasks[key]


_REGISTRIES: list[Tasks] = []


def registry(name: str, max_entries: int, deferred: bool = False) -> Tasks:
    """A process-wide ``Tasks`` (registered so that ``wait_all`` and ``clear_all`` see it)."""
    tasks = Tasks(name, max_entries, deferred)
    _REGISTRIES.append(tasks)
    return tasks


def start_deferred() -> int:
    """Start the work of every deferred task asked for so far; how many were started."""
    with _deferred_lock:
        threads = _deferred[:]
        _deferred.clear()
    for thread in threads:
        thread.start()
    return len(threads)


def wait_all(timeout: float = 600.0) -> bool:
    """Wait until no task of any registry runs (new ones started meanwhile included).

    For tests and benchmarks ("after warm-up"); deferred work is started first. Returns
    whether all ended in ``timeout``.
    """
    start_deferred()
    deadline = time.monotonic() + timeout
    while running := [t for r in _REGISTRIES for t in r.running()]:
        if not running[0].wait(max(deadline - time.monotonic(), 0.0)):
            return False
    return True


def clear_all() -> None:
    """Forget every task of every registry (tests: a fresh database)."""
    for tasks in _REGISTRIES:
        tasks.clear()
