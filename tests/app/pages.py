"""What every page's AppTest does: open the app on a page, rerun, read texts back.

Pages draw slow sections (a ranking fit, the catalogue map) once background work ends
(``dashboard.pending``); ``run`` waits for that work and reruns, as a browser's refreshing
status would, so a test sees the settled page. ``run_once`` sees the page as first drawn.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from streamlit.testing.v1 import AppTest

from dashboard import background, pending
from tests.conftest import ROOT

APP = str(ROOT / "app.py")


def run_once(at: AppTest) -> AppTest:
    """Rerun the script; fail with the page's exceptions if it raised any."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run(at: AppTest, max_reruns: int = 10) -> AppTest:
    """Rerun the script, then again after its background work ended, until a run shows no
    section "being prepared"; fail with the page's exceptions if it raised any."""
    for _ in range(max_reruns):
        before = pending.statuses_drawn()
        run_once(at)
        if pending.statuses_drawn() == before:
            return at
        assert background.wait_all(timeout=300), "background work still running after 300 s"
    raise AssertionError(f"the page still waits for background work after {max_reruns} runs")


def open_page(page: str) -> AppTest:
    """The app started on its default page, then switched to ``page`` (as a click does)."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page(page)
    return run(at)


def texts(elements: Any) -> str:
    """The elements' texts as a reader sees them: markdown escapes (dashboard.text.plain)
    and its hard line breaks and word joiners removed. ``raw_texts`` gives the markdown
    source."""
    shown = raw_texts(elements).replace("  \n", "\n").replace("\u2060", "")
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", shown)


def raw_texts(elements: Any) -> str:
    return "\n".join(str(e.value) for e in elements)


def hold(monkeypatch: Any, owner: Any, name: str) -> tuple[threading.Event, threading.Event]:
    """Replace ``owner.name`` by a version that sets ``started`` and waits for ``release``
    before doing the real work: a test sees a page while that background work runs."""
    started, release = threading.Event(), threading.Event()
    real = getattr(owner, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(120), f"the test never released {name}"
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)
    return started, release


def release_app_store(path: Any) -> None:
    """After a test module's app database: end its background work, close the cached
    store of ``path`` and forget it."""
    from dashboard.resources import _open_store

    background.wait_all()
    background.clear_all()
    _open_store(str(path)).close()
    _open_store.clear()
