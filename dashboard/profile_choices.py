"""The Profiles page's picker helpers: version order, user labels, download names.

Pure functions (no Streamlit) over the plain rows ``mgi_core`` returns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mgi_core.store.versions import BASE_VERSION

NONE = "— none —"  # the "Compare with" option that compares nothing


def version_options(versions: Sequence[Mapping[str, Any]]) -> list[str]:
    """Usable versions for the picker: fine-tuned ones newest first, then ``base``.

    ``versions`` is ``list_versions(store, dataset, usable_only=True)`` (base first, then
    newest first); the page opens on the newest fine-tuned version.
    """
    ready = [v["version"] for v in versions if v.get("status", "ready") == "ready"]
    return [v for v in ready if v != BASE_VERSION] + [v for v in ready if v == BASE_VERSION]


def file_stem(*parts: str) -> str:
    """A download file name from names that come from user data (letters, digits, ``._-``)."""
    return "_".join(re.sub(r"[^\w.-]+", "-", str(p)).strip("-.") or "x" for p in parts)


def user_label(row: Mapping[str, Any]) -> str:
    """How a user reads in the picker: id, train reviews, main L1, cold flag."""
    parts = [str(row["user_id"]), f"{int(row['n_train_reviews'])} train reviews"]
    if isinstance(row.get("top_l1"), str):
        parts.append(row["top_l1"])
    if row.get("cold"):
        parts.append("cold")
    return " · ".join(parts)
