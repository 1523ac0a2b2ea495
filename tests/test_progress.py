"""The terminal progress bar: formatting, throttling, and silence off a terminal."""

from __future__ import annotations

import io

from mgi_core.progress import (
    PolledProgress,
    ProgressBar,
    ProgressView,
    Throttle,
    format_duration,
    format_line,
    format_rate,
    rate_and_eta,
)


class FakeTerminal(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_as_minutes_and_seconds() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(48.4) == "0:48"
    assert format_duration(61) == "1:01"
    assert format_duration(3600 + 2 * 60 + 5) == "1:02:05"
    for unknown in (None, -1.0, float("inf"), float("nan")):
        assert format_duration(unknown) == "--:--"


def test_rates_keep_three_significant_figures() -> None:
    assert format_rate(1234.4, "reviews") == "1,234 reviews/s"
    assert format_rate(12.345, "steps") == "12.3 steps/s"
    assert format_rate(0.5, "users") == "0.50 users/s"
    assert format_rate(None, "users") == "-- users/s"


def test_rate_and_eta_follow_the_work_done_so_far() -> None:
    # 400 of 1,000 in 8 s: 50/s, so the 600 left take 12 s.
    assert rate_and_eta(400, 1000, 8.0) == (50.0, 12.0)
    assert rate_and_eta(400, None, 8.0) == (50.0, None)  # no total, no ETA
    assert rate_and_eta(0, 1000, 8.0) == (None, None)  # nothing done yet: unknown


def test_a_line_shows_bar_counts_percentage_rate_and_eta() -> None:
    line = format_line("embedding reviews", 400, 1000, 8.0, "reviews", width=10)
    assert line == ("embedding reviews  [####------] 400/1,000  40%  50.0 reviews/s  "
                    "ETA 0:12")
    final = format_line("embedding reviews", 1000, 1000, 20.0, "reviews", final=True,
                        width=10)
    assert final == ("embedding reviews  [##########] 1,000/1,000 100%  50.0 reviews/s  "
                     "in 0:20")
    # Without counts: the label and the elapsed time; without a unit: no rate.
    assert format_line("loading encoder", None, None, 3.0) == "loading encoder  elapsed 0:03"
    assert "/s" not in format_line("reading", 50, 100, 5.0, unit=None)


def test_the_throttle_lets_a_few_redraws_a_second_through() -> None:
    throttle = Throttle(0.25)
    assert throttle.ready(10.0)  # the first always
    assert not throttle.ready(10.1)
    assert not throttle.ready(10.24)
    assert throttle.ready(10.25)
    assert not throttle.ready(10.3)


def test_nothing_is_written_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()  # isatty() is False, as for a pipe or a file
    with ProgressBar("embedding", 10, stream=stream) as bar:
        for done in range(1, 11):
            bar.update(done)
    assert stream.getvalue() == ""
    # Nor when the command asked for JSON (the CLI passes enabled=False).
    terminal = FakeTerminal()
    with ProgressBar("embedding", 10, stream=terminal, enabled=False) as bar:
        bar.update(10)
    assert terminal.getvalue() == ""


def test_on_a_terminal_the_bar_redraws_in_place_and_ends_with_n_of_n() -> None:
    terminal, clock = FakeTerminal(), FakeClock()
    n = 50
    with ProgressBar("embedding reviews", n, "reviews", stream=terminal, clock=clock) as bar:
        for done in range(1, n + 1):
            clock.now += 0.1
            bar.update(done)
    text = terminal.getvalue()
    assert text.endswith("\n")
    frames = text.rstrip("\n").split("\r")[1:]
    # 50 updates 0.1 s apart over 5 s, redrawn at most every 0.25 s: 17 frames and the
    # final line, not 50.
    assert len(frames) == 17 + 1
    final = frames[-1].rstrip()
    assert "50/50 100%" in final and "10.0 reviews/s" in final and "in 0:05" in final
    assert "ETA" in frames[1] and "reviews/s" in frames[1]


def test_a_shorter_line_blanks_the_rest_of_the_longer_one_before_it() -> None:
    terminal, clock = FakeTerminal(), FakeClock()
    bar = ProgressBar("a much longer label than the next", None, stream=terminal, clock=clock,
                      min_interval=0)
    bar.update()
    bar.update(label="short")
    first, second = terminal.getvalue().split("\r")[1:]
    assert len(second) == len(first) and second.startswith("short")


def test_polled_progress_starts_a_new_bar_when_the_phase_changes() -> None:
    terminal, clock = FakeTerminal(), FakeClock()
    views = iter([ProgressView("loading", "loading encoder"),
                  ProgressView("embedding", "embedding", unit=None),
                  ProgressView("embedding", "embedding reviews", 5, 10, "reviews"),
                  ProgressView("embedding", "embedding reviews", 10, 10, "reviews")])
    follower = PolledProgress(lambda: next(views), stream=terminal, clock=clock)
    for _ in range(4):
        clock.now += 1
        follower.step()
    follower.bar.close()
    lines = terminal.getvalue().split("\n")
    assert lines[0].split("\r")[-1].startswith("loading encoder  done in")
    # The same phase: one bar, its label and unit taken from the latest view.
    assert lines[1].split("\r")[-1].startswith("embedding reviews")
    assert "10/10 100%" in lines[1] and "reviews/s" in lines[1].split("\r")[-1]


def test_polled_progress_starts_no_thread_off_a_terminal() -> None:
    calls: list[int] = []
    stream = io.StringIO()
    with PolledProgress(lambda: calls.append(1), stream=stream) as follower:
        pass
    assert follower._thread is None and calls == [] and stream.getvalue() == ""
