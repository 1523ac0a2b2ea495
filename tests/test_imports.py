"""The core never imports streamlit, and data/store code does not pull in torch.

The imports run in a fresh interpreter outside the checkout, so ``mgi_core`` comes from the
installed package (``make setup`` installs it), not from the current folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _modules_after(code: str, cwd: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        cwd=cwd, capture_output=True, text=True, check=True,
    ).stdout
    return set(out.split())


def test_mgi_core_does_not_import_streamlit(tmp_path: Path) -> None:
    mods = _modules_after(
        "import mgi_core, mgi_core.cli, mgi_core.data.ingest, mgi_core.data.datasets, "
        "mgi_core.store.reviews_splits, mgi_core.store",
        cwd=tmp_path,
    )
    assert "mgi_core.data.ingest" in mods  # the imports really happened
    assert "streamlit" not in mods
    assert "torch" not in mods
