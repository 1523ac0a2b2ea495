"""The CLI as a user runs it: python -m mgi_core in a subprocess."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_DATA, small_rows, write_csv

MUSIC = SHARED_DATA / "amazon_digital_music.csv"
needs_shared = pytest.mark.skipif(not MUSIC.exists(), reason="shared data not beside project")


def mgi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mgi_core", *args], cwd=ROOT, capture_output=True, text=True
    )


def _datasets(db: Path) -> list[dict]:
    result = mgi("datasets", "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_shared
def test_ingest_shared_music_data_reports_the_known_counts(tmp_path: Path) -> None:
    db = tmp_path / "mgi.duckdb"
    result = mgi("ingest", str(MUSIC), "--name", "dm", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "6,898 of 6,898 rows stored" in result.stdout
    [dm] = _datasets(db)
    assert (dm["reviews"], dm["users"], dm["items"], dm["distinct_l1"]) == (6898, 2489, 381, 18)
    assert (dm["distinct_l2"], dm["distinct_l3"], dm["rejected"]) == (62, 26, 0)


@needs_shared
def test_amazon_original_column_names_ingest_through_a_mapping(tmp_path: Path) -> None:
    renamed = tmp_path / "amazon_original.csv"
    with open(MUSIC, newline="", encoding="utf-8") as src, open(
        renamed, "w", newline="", encoding="utf-8"
    ) as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        next(reader)
        writer.writerow(["reviewerID", "asin", "reviewText", "overall", "unixReviewTime",
                         "genre_path", "album"])
        writer.writerows(reader)
    db = tmp_path / "mgi.duckdb"
    result = mgi("ingest", str(renamed), "--name", "dm_orig", "--db", str(db), "--mapping",
                 "reviewerID=user_id", "asin=item_id", "reviewText=text", "overall=rating",
                 "unixReviewTime=timestamp", "genre_path=category", "album=item_title")
    assert result.returncode == 0, result.stderr
    [dm] = _datasets(db)
    assert (dm["reviews"], dm["users"], dm["items"], dm["distinct_l1"]) == (6898, 2489, 381, 18)


def test_rejected_file_exits_non_zero_with_reason_on_stderr(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [r[:3] for r in small_rows()],
                     header=["user_id", "item_id", "text"])
    db = tmp_path / "mgi.duckdb"
    result = mgi("ingest", str(path), "--name", "x", "--db", str(db))
    assert result.returncode == 2
    assert "Missing required column(s): rating" in result.stderr
    assert _datasets(db) == []


def test_bad_mapping_argument_is_explained(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", small_rows())
    result = mgi("ingest", str(path), "--name", "x", "--db", str(tmp_path / "m.duckdb"),
                 "--mapping", "stars=score")
    assert result.returncode == 2
    assert "not an MGI column" in result.stderr


def test_ingest_json_and_load_demo(tmp_path: Path) -> None:
    db = tmp_path / "mgi.duckdb"
    rows = small_rows()
    rows[0][3] = "five"
    result = mgi("ingest", str(write_csv(tmp_path / "s.csv", rows)), "--name", "s",
                 "--db", str(db), "--json")
    report = json.loads(result.stdout)
    assert report["n_rejected"] == 1
    assert report["rejected_rows"][0]["line"] == 2
    # load-demo does nothing on a store that already has data …
    assert "demo not loaded" in mgi("load-demo", "--db", str(db)).stdout
    # … and loads the bundled demo into an empty one.
    empty = tmp_path / "empty.duckdb"
    assert mgi("load-demo", "--db", str(empty)).returncode == 0
    [demo] = _datasets(empty)
    assert demo["name"] == "demo" and demo["reviews"] > 2000 and demo["rejected"] == 0
