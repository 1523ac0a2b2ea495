"""A page section that waits for background work (``dashboard.background``) without blocking.

``ready(task)`` is True when the task has its value; otherwise it draws where the work
stands, in a fragment that refreshes by itself and reruns the page when the work ends, or
the error the work raised, and returns False: the page draws everything else meanwhile.
"""

from __future__ import annotations

import streamlit as st

from dashboard.background import Task
from dashboard.resources import show_error
from dashboard.training import format_duration
from mgi_core.errors import MgiError

REFRESH_S = 1.0  # seconds between checks while a section is being prepared
QUICK_S = 0.3  # a task expected to end this soon is waited for (no "being prepared" flash)
_statuses = 0  # statuses drawn in this process (tests: did a run leave work pending?)


def ready(task: Task, what: str, wait_s: float = 0.0) -> bool:
    """Whether ``task`` ended with a value; else show its status or error and say False.

    Args:
        task: the background work.
        what: the section it prepares, for the status line ("The recommendations").
        wait_s: wait this long first (for work that usually ends at once, e.g. one user's
            ranking on a fitted recommender); fits pass 0, so a first render never waits
            for one.

    Raises:
        Exception: the task's own error when it is not an ``MgiError`` (a bug: shown as one).
    """
    if wait_s > 0:
        task.wait(wait_s)
    if not task.done:
        _status(task, what)
        return False
    if isinstance(task.error, MgiError):
        show_error(task.error)
        return False
    task.result()  # raises any other error: a bug is shown as one, never hidden
    return True


def statuses_drawn() -> int:
    """How many "being prepared" statuses have been drawn in this process."""
    return _statuses


@st.fragment(run_every=REFRESH_S)
def _status(task: Task, what: str) -> None:
    """The work's label and time so far; reruns the whole page once the work has ended."""
    global _statuses
    if task.done:
        st.rerun()
    _statuses += 1
    st.info(f"{what}: being prepared ({task.label[0].lower()}{task.label[1:]}, "
            f"{format_duration(task.elapsed())} so far), shown here when ready; the rest "
            "of the page works meanwhile.", icon=":material/hourglass_top:")
