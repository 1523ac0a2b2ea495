"""What every page's AppTest does: open the app on a page, rerun, read texts back."""

from __future__ import annotations

import re
from typing import Any

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "app.py")


def run(at: AppTest) -> AppTest:
    """Rerun the script; fail with the page's exceptions if it raised any."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


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
