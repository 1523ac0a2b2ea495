"""The Data page under AppTest: empty state, a stored dataset, and uploads through the form."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.resources import _open_store
from mgi_core.data.ingest import ingest_file
from mgi_core.store import Store
from mgi_core.store.queries.datasets import list_datasets
from tests.app.pages import APP
from tests.app.pages import texts as _texts
from tests.conftest import HEADER, small_rows, table_counts, write_csv

NONE = "— none —"  # the mapping choice that leaves an optional column out


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh database file for the app (via $MGI_DB); the cached store is released after."""
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    yield path
    _open_store(str(path)).close()  # the app's store for this path (cached per path)
    _open_store.clear()


def _app_store(db: Path) -> Store:
    """The store the app uses for ``db`` (the same cached root connection)."""
    return _open_store(str(db))


def _run(at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(APP, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _csv_bytes(rows: list[list[object]], header: list[str] | None = None) -> bytes:
    buf = io.StringIO()
    pd.DataFrame(rows, columns=header or HEADER).to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def _upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, content, "text/csv"))
    return _run(at)


def _ingest(at: AppTest) -> AppTest:
    at.button(key="data_ingest").click()
    return _run(at)


def test_empty_database_explains_how_to_add_data(db: Path) -> None:
    at = _run()
    assert "No datasets yet" in _texts(at.info)
    assert "python -m mgi_core ingest" in _texts(at.info)
    assert not at.dataframe  # no table, no overview
    assert "Add a dataset to see" in _texts(at.caption)


def test_stored_dataset_is_listed_with_metrics_and_charts(db: Path, tmp_path: Path) -> None:
    rows = [*small_rows(), ["u3", "i9", "=cmd|' /C calc'!A0", 9, 1_600_000_000, "X", "Bad"]]
    path = write_csv(tmp_path / "small.csv", rows)
    ingest_file(_app_store(db), path, "small")
    at = _run()
    table = at.dataframe[0].value
    assert list(table["name"]) == ["small"]
    assert at.selectbox(key="data_selected").value == "small"
    metrics = {m.label: m.value for m in at.metric}
    # 8 valid rows of 3 users over 4 items; L1 Audio/Cameras; 4 L2, 2 L3; 1 bad rating.
    assert metrics == {"Reviews": "8", "Users": "3", "Items": "4", "L1 categories": "2",
                       "L2 categories": "4", "L3 categories": "2", "Rejected rows": "1"}
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # per user, ratings, sunburst, over time, rejects by reason
    sample = at.dataframe[1].value
    assert len(sample) == 8 and "text" in sample.columns
    assert "Rejected rows" in _texts(at.subheader)
    assert at.get("download_button")


def test_upload_with_guessed_mapping_ingests_and_lists_the_dataset(db: Path) -> None:
    header = ["reviewerID", "asin", "reviewText", "overall", "unixReviewTime", "category",
              "title"]
    at = _upload(_run(), "My Reviews (2024).csv", _csv_bytes(small_rows(), header))
    assert "delimiter **comma**" in _texts(at.caption)
    # The mapping is preselected from the headers; the name comes from the file name.
    assert at.selectbox(key="data_map_user_id").value == "reviewerID"
    assert at.selectbox(key="data_map_rating").value == "overall"
    assert at.selectbox(key="data_map_item_title").value == "title"
    assert at.text_input(key="data_name").value == "My Reviews _2024"
    at = _ingest(at)
    assert "8 of 8 rows stored" in _texts(at.success)
    assert list(at.dataframe[0].value["name"]) == ["My Reviews _2024"]
    assert at.selectbox(key="data_selected").value == "My Reviews _2024"
    assert {m.label: m.value for m in at.metric}["Accepted"] == "8"


def test_missing_required_column_is_an_error_and_stores_nothing(db: Path) -> None:
    rows = [r[:3] + r[4:] for r in small_rows()]  # no rating column
    header = [h for h in HEADER if h != "rating"]
    at = _upload(_run(), "norating.csv", _csv_bytes(rows, header))
    assert at.selectbox(key="data_map_rating").value is None
    at = _ingest(at)
    assert "Missing required column(s): rating" in _texts(at.error)
    assert not at.success
    store = _app_store(db)
    assert list_datasets(store) == []
    assert table_counts(store) == {"datasets": 0, "reviews": 0, "items": 0, "ingest_rejects": 0}


def test_bad_rating_row_is_reported_with_its_line(db: Path) -> None:
    rows = small_rows()
    rows[2][3] = "great"  # data row 3 = line 4 (the header is line 1)
    at = _upload(_run(), "bad.csv", _csv_bytes(rows))
    at = _ingest(at)
    assert "7 of 8 rows stored" in _texts(at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Accepted"], metrics["Rejected"]) == ("7", "1")
    rejects = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert rejects[["line", "reason"]].values.tolist() == [[4, "rating is not a number"]]
    assert at.get("download_button")


def test_invalid_options_are_an_error_and_store_nothing(db: Path) -> None:
    at = _upload(_run(), "small.csv", _csv_bytes(small_rows()))
    at.number_input(key="data_rmin").set_value(5.0)
    at.number_input(key="data_rmax").set_value(1.0)
    at = _ingest(at)
    assert "rating_min (5.0) must be below rating_max (1.0)" in _texts(at.error)
    assert list_datasets(_app_store(db)) == []


def test_leaving_out_an_optional_column_is_honoured(db: Path) -> None:
    at = _upload(_run(), "small.csv", _csv_bytes(small_rows()))
    assert at.selectbox(key="data_map_category").value == "category"
    at.selectbox(key="data_map_category").set_value(NONE)
    at = _ingest(at)
    assert "8 of 8 rows stored" in _texts(at.success)
    stored = _app_store(db).cursor().execute("SELECT mapping FROM datasets").fetchone()[0]
    # "— none —" leaves the category column out, even though its header matches by name.
    assert "category" not in json.loads(stored)
    assert not at.warning


def test_strict_mode_rejects_the_file_but_still_lists_the_bad_rows(db: Path) -> None:
    rows = small_rows()
    rows[0][3] = 7  # data row 1 = line 2, rating above 5
    at = _upload(_run(), "strict.csv", _csv_bytes(rows))
    at.checkbox(key="data_strict").check()
    at = _ingest(at)
    assert "Strict mode: 1 of 8 rows are invalid" in _texts(at.error)
    assert not at.success
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rejected"] == "1" and metrics["Valid (nothing stored)"] == "7"
    rejects = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert rejects[["line", "reason"]].values.tolist() == [[2, "rating out of range"]]
    assert table_counts(_app_store(db))["datasets"] == 0
