"""The core never imports streamlit, and data/store code does not pull in torch."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return set(out.split())


def test_mgi_core_does_not_import_streamlit() -> None:
    mods = _modules_after(
        "import mgi_core, mgi_core.cli, mgi_core.data.ingest, mgi_core.data.datasets, "
        "mgi_core.data.splits, mgi_core.store"
    )
    assert "mgi_core.data.ingest" in mods  # the imports really happened
    assert "streamlit" not in mods
    assert "torch" not in mods
