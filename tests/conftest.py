"""Shared fixtures: a store on a temporary DuckDB file, small review files written in code."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from mgi_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
HEADER = ["user_id", "item_id", "text", "rating", "timestamp", "category", "item_title"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The demo data (300 users with planted favourites, cold ones) with the keyword fake
    encoder as version 'fake'; one store per test module."""
    from mgi_core.cli import DEMO_DIR
    from mgi_core.data.ingest import ingest_file
    from tests.fake_encoder import DEMO_VOCAB, register_fake_version

    s = Store(tmp_path_factory.mktemp("demo") / "demo.duckdb")
    ingest_file(s, DEMO_DIR / "reviews.csv", "demo")
    register_fake_version(s, "demo", DEMO_VOCAB)
    yield s
    s.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "mgi.duckdb")
    yield s
    s.close()


def write_csv(
    path: Path,
    rows: list[list[object]],
    header: list[str] | None = None,
    encoding: str = "utf-8",
    delimiter: str = ",",
) -> Path:
    """Write a CSV the way a spreadsheet export would (quotes only where needed)."""
    with open(path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header or HEADER)
        writer.writerows(rows)
    return path


def small_rows() -> list[list[object]]:
    """Three users over two L1 categories; u1 and u2 have >= 3 reviews, u3 has one."""
    return [
        ["u1", "i1", "Great wireless headphones, battery lasts.", 5, 1_600_000_000,
         "Audio > Headphones > Wireless", "Arc Headphones"],
        ["u1", "i2", "Good speaker.", 4, 1_600_100_000, "Audio > Speakers", "Boom"],
        ["u1", "i3", "Blurry lens, sent it back.", 1, 1_600_200_000,
         "Cameras > Lenses > Zoom", "Zoomy"],
        ["u1", "i4", "Decent tripod.", 3, 1_600_300_000, "Cameras > Tripods", "Tri"],
        ["u2", "i1", "Comfortable, pairs fast.", 5, 1_600_000_500,
         "Audio > Headphones > Wireless", "Arc Headphones"],
        ["u2", "i3", "Sharp enough.", 4, 1_600_000_900, "Cameras > Lenses > Zoom", "Zoomy"],
        ["u2", "i2", "Too quiet.", 2, 1_600_000_700, "Audio > Speakers", "Boom"],
        ["u3", "i4", "Sturdy.", 5, 1_600_000_000, "Cameras > Tripods", "Tri"],
    ]


def table_counts(store: Store) -> dict[str, int]:
    """Row counts of every data table: compared before and after a rejected ingest."""
    cur = store.cursor()
    return {
        t: cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("datasets", "reviews", "items", "ingest_rejects")
    }


# The tiny local BERT and its review snapshot, shared by encoder, job and app tests.
from tests.tiny_model import snapshot, tiny_bert  # noqa: E402, F401
