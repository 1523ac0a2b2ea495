"""A small terminal progress bar for the CLI: label, done/total, percentage, rate and ETA.

The bar is redrawn in place (``\\r``) at most a few times per second and ends with a final
line. It writes nothing at all unless its stream is a terminal (or it is forced on), so
piped output, ``--json`` runs and tests stay quiet. The formatting and the throttle are
pure functions of their arguments, tested without a terminal.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

MIN_INTERVAL_S = 0.25  # redraw at most four times per second
BAR_WIDTH = 20


def format_duration(seconds: float | None) -> str:
    """``seconds`` as ``m:ss`` (``h:mm:ss`` from an hour); ``--:--`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(rate: float | None, unit: str) -> str:
    """Items per second with three significant figures, e.g. ``'123 reviews/s'``."""
    if rate is None or not math.isfinite(rate) or rate < 0:
        return f"-- {unit}/s"
    if rate >= 100:
        text = f"{rate:,.0f}"
    elif rate >= 10:
        text = f"{rate:.1f}"
    else:
        text = f"{rate:.2f}"
    return f"{text} {unit}/s"


def rate_and_eta(done: int, total: int | None, elapsed: float) -> tuple[float | None,
                                                                        float | None]:
    """Items per second so far and the seconds left at that rate (None when unknown)."""
    if done <= 0 or elapsed <= 0:
        return None, None
    rate = done / elapsed
    if total is None:
        return rate, None
    return rate, max(0, total - done) / rate


def format_line(label: str, done: int | None, total: int | None, elapsed: float,
                unit: str | None = "items", final: bool = False,
                width: int = BAR_WIDTH) -> str:
    """One line of the bar.

    Args:
        label: what is running, e.g. ``'embedding reviews'``.
        done: items done (None: only the label and the elapsed time are shown).
        total: items in all (None: no bar, percentage or ETA).
        elapsed: seconds since the bar started.
        unit: what is counted, for the rate (None: no rate, e.g. for a percentage).
        final: the closing line: the elapsed time instead of the ETA.
        width: characters of the bar itself.

    Example: ``embedding reviews [########------------] 4,096/10,000  41%
    123 reviews/s  ETA 0:48``.
    """
    parts = [label]
    if done is None:
        parts.append(f"{'done in' if final else 'elapsed'} {format_duration(elapsed)}")
        return "  ".join(parts)
    rate, eta = rate_and_eta(done, total, elapsed)
    if total:
        fraction = min(1.0, max(0.0, done / total))
        filled = int(fraction * width)
        parts.append(f"[{'#' * filled}{'-' * (width - filled)}] {done:,}/{total:,} "
                     f"{fraction:4.0%}")
    else:
        parts.append(f"{done:,}")
    if unit is not None:
        parts.append(format_rate(rate, unit))
    if final:
        parts.append(f"in {format_duration(elapsed)}")
    elif total:
        parts.append(f"ETA {format_duration(eta)}")
    else:
        parts.append(f"elapsed {format_duration(elapsed)}")
    return "  ".join(parts)


class Throttle:
    """Says when enough time has passed since the last redraw (the first one always)."""

    def __init__(self, min_interval: float = MIN_INTERVAL_S) -> None:
        self.min_interval = min_interval
        self.last: float | None = None

    def ready(self, now: float) -> bool:
        """True (and remember ``now``) when a redraw at ``now`` is due."""
        if self.last is not None and now - self.last < self.min_interval:
            return False
        self.last = now
        return True


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes, captures)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class ProgressBar:
    """A progress bar redrawn in place on ``stream`` (stderr by default).

    Args:
        label: what is running.
        total: items in all (None: unknown; ``update`` may set it).
        unit: what is counted, shown in the rate (None: no rate).
        stream: where to draw.
        enabled: draw at all; default: only when ``stream`` is a terminal.
        clock: seconds, monotonic (a fake one in tests).
        min_interval: seconds between redraws at least.
    """

    def __init__(self, label: str, total: int | None = None, unit: str | None = "items",
                 stream: TextIO | None = None, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 min_interval: float = MIN_INTERVAL_S) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = is_terminal(self.stream) if enabled is None else enabled
        self.clock = clock
        self.started = clock()
        self.done: int | None = None
        self.throttle = Throttle(min_interval)
        self.closed = False
        self._width = 0  # characters of the last line drawn, to blank a longer one

    def update(self, done: int | None = None, total: int | None = None,
               label: str | None = None) -> None:
        """Record progress; redraw when the last redraw is old enough."""
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total
        if label is not None:
            self.label = label
        if self.enabled and not self.closed and self.throttle.ready(self.clock()):
            self._draw(final=False)

    def __call__(self, done: int, total: int | None = None) -> None:
        """``progress(done, total)``: the shape of the core's progress callbacks."""
        self.update(done, total)

    def close(self) -> None:
        """Draw the final line (once) and move to the next line."""
        if self.closed:
            return
        self.closed = True
        if self.enabled:
            self._draw(final=True)
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, final: bool) -> None:
        line = format_line(self.label, self.done, self.total, self.clock() - self.started,
                           self.unit, final=final)
        self.stream.write("\r" + line + " " * max(0, self._width - len(line)))
        self.stream.flush()
        self._width = len(line)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ProgressView:
    """What a polled source reports: one bar's key, label and counts.

    Attributes:
        key: a new bar starts (and the previous one ends) when the key changes.
        label: what is running.
        done: items done (None: label and elapsed time only).
        total: items in all (None: unknown).
        unit: what is counted, for the rate (None: no rate).
    """

    key: str
    label: str
    done: int | None = None
    total: int | None = None
    unit: str | None = "items"


class PolledProgress:
    """Bars for work that reports elsewhere (a status file, a database): a thread polls.

    ``poll()`` returns the current :class:`ProgressView` (None: nothing to show). Nothing
    is drawn, and no thread started, when the bars are disabled (not a terminal, --json).

    Args:
        poll: the source's current state.
        stream: where to draw (stderr by default).
        enabled: draw at all; default: only when ``stream`` is a terminal.
        interval: seconds between polls.
        clock: seconds, monotonic.
        complete_on_change: a bar that ends because the next key came (or the work ended
            without error) shows its total done: for stages that always run to the end.
    """

    def __init__(self, poll: Callable[[], ProgressView | None], stream: TextIO | None = None,
                 enabled: bool | None = None, interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic,
                 complete_on_change: bool = False) -> None:
        self.poll = poll
        self.complete_on_change = complete_on_change
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = is_terminal(self.stream) if enabled is None else enabled
        self.interval = interval
        self.clock = clock
        self.bar: ProgressBar | None = None
        self.key: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> None:
        """Poll once and update (or replace) the bar."""
        view = self.poll()
        if view is None:
            return
        if self.bar is None or view.key != self.key:
            self._end_bar()
            self.key = view.key
            self.bar = ProgressBar(view.label, view.total, view.unit, self.stream,
                                   enabled=self.enabled, clock=self.clock)
        self.bar.unit = view.unit
        self.bar.update(view.done, view.total, view.label)

    def _end_bar(self) -> None:
        if self.bar is None:
            return
        if self.complete_on_change and self.bar.total:
            self.bar.done = self.bar.total
        self.bar.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.step()

    def __enter__(self) -> PolledProgress:
        if self.enabled:
            self.step()
            self._thread = threading.Thread(target=self._run, name="mgi-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self.step()
        if exc_type is not None:
            self.complete_on_change = False
        self._end_bar()
