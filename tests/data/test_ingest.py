"""Ingest and validation on small files written by the tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mgi_core.config import IngestConfig
from mgi_core.data import ingest as ingest_module
from mgi_core.data.ingest import ingest_file, inspect_file
from mgi_core.errors import DatasetExistsError, DataValidationError
from tests.conftest import HEADER, small_rows, table_counts, write_csv

AMAZON_HEADER = ["reviewerID", "asin", "reviewText", "overall", "unixReviewTime",
                 "category", "title"]


def _reviews(store, name: str) -> pd.DataFrame:
    return store.cursor().execute(
        "SELECT * FROM reviews WHERE dataset = ? ORDER BY row_number", [name]
    ).df()


def test_small_file_is_stored_with_items_levels_and_counts(store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "small.csv", small_rows())
    report = ingest_file(store, path, "small")
    assert (report.n_read, report.n_accepted, report.n_rejected) == (8, 8, 0)
    assert (report.n_users, report.n_items) == (3, 4)
    assert report.committed and not report.unchanged
    items = store.cursor().execute(
        "SELECT item_id, title, l1, l2, l3, n_reviews FROM items ORDER BY item_id"
    ).fetchall()
    assert items == [
        ("i1", "Arc Headphones", "Audio", "Audio > Headphones",
         "Audio > Headphones > Wireless", 2),
        ("i2", "Boom", "Audio", "Audio > Speakers", None, 2),
        ("i3", "Zoomy", "Cameras", "Cameras > Lenses", "Cameras > Lenses > Zoom", 2),
        ("i4", "Tri", "Cameras", "Cameras > Tripods", None, 2),
    ]
    row = store.cursor().execute(
        "SELECT n_reviews, n_users, n_items, n_l1, n_l2, n_l3 FROM datasets"
    ).fetchone()
    assert row == (8, 3, 4, 2, 4, 2)


def test_amazon_headers_are_guessed_and_can_be_mapped(store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "amazon.csv", small_rows(), header=AMAZON_HEADER)
    inspection = inspect_file(path)
    assert inspection.guessed_mapping == {
        "user_id": "reviewerID", "item_id": "asin", "text": "reviewText",
        "rating": "overall", "timestamp": "unixReviewTime", "category": "category",
        "item_title": "title",
    }
    assert len(inspection.preview) == 8
    # An explicit mapping wins over the guess (here: the same, spelled out).
    report = ingest_file(store, path, "amz", mapping={"user_id": "reviewerID", "rating": "overall"})
    assert report.n_accepted == 8


def test_missing_required_column_rejects_the_file_and_lists_columns(store, tmp_path) -> None:
    ingest_file(store, write_csv(tmp_path / "ok.csv", small_rows()), "ok")
    before = table_counts(store)
    rows = [r[:3] + r[4:] for r in small_rows()]
    header = [h for h in HEADER if h != "rating"]
    path = write_csv(tmp_path / "norating.csv", rows, header=header)
    with pytest.raises(DataValidationError, match=r"Missing required column\(s\): rating.*"
                       r"Columns found: 'user_id', 'item_id', 'text'"):
        ingest_file(store, path, "norating")
    assert table_counts(store) == before


def test_mapping_to_a_column_the_file_lacks_is_refused(store, tmp_path) -> None:
    path = write_csv(tmp_path / "a.csv", small_rows())
    with pytest.raises(DataValidationError, match="no such column"):
        ingest_file(store, path, "a", mapping={"rating": "stars"})


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("utf-8-sig", "Café au lait, naïve design"),
        ("utf-16", "Café au lait, naïve design"),
        ("latin-1", "Café au lait, naïve design, très bien"),
        ("gbk", "音质很好，蓝牙连接稳定，电池续航长。"),
    ],
)
def test_encodings_are_detected_and_text_is_kept(store, tmp_path, encoding, text) -> None:
    rows = small_rows()
    rows[0][2] = text
    path = write_csv(tmp_path / f"{encoding}.csv", rows, encoding=encoding)
    report = ingest_file(store, path, "enc")
    assert report.n_accepted == 8
    stored = _reviews(store, "enc").text.iloc[0]
    assert stored == text


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_delimiters(store, tmp_path, delimiter) -> None:
    path = write_csv(tmp_path / "d.csv", small_rows(), delimiter=delimiter)
    report = ingest_file(store, path, "delim")
    assert report.delimiter == delimiter
    assert report.n_accepted == 8


def test_bad_rows_are_rejected_with_line_and_reason_and_the_rest_stored(store, tmp_path):
    rows = small_rows()
    rows[1][3] = "five"  # line 3 (header is line 1)
    rows[2][3] = 7  # line 4
    rows[3][2] = "   "  # line 5
    rows[5][4] = "yesterday"  # line 7
    rows.append(["u1", "i1", "Second review of i1.", 4, 1_600_400_000, "Audio", "Arc"])  # 10
    path = write_csv(tmp_path / "bad.csv", rows)
    report = ingest_file(store, path, "bad")
    assert (report.n_read, report.n_accepted, report.n_rejected) == (9, 4, 5)
    got = [(r["line"], r["reason"], r["detail"]) for r in report.rejected_rows]
    assert got == [
        (3, "rating is not a number", 'rating "five"'),
        (4, "rating out of range", "rating 7 is outside 1..5"),
        (5, "empty text", "empty text"),
        (7, "unparseable timestamp", 'timestamp "yesterday"'),
        (10, "duplicate (user_id, item_id)", "same user and item as line 2"),
    ]
    assert report.rejected_by_reason["rating is not a number"] == 1
    stored = store.cursor().execute(
        "SELECT line, reason FROM ingest_rejects WHERE dataset = 'bad' ORDER BY line"
    ).fetchall()
    assert [s[0] for s in stored] == [3, 4, 5, 7, 10]


def test_quoted_newlines_and_malformed_rows_keep_line_numbers(store, tmp_path) -> None:
    # Line = record number as a spreadsheet shows it (header = 1).
    text = (
        "user_id,item_id,text,rating\n"
        'u1,i1,"two\nlines, with a comma",5\n'  # record 2
        "u1,i2,too,many,fields,4\n"  # record 3: malformed
        "u1,i3,fine,4\n"  # record 4
        "u2,i1,bad rating,x\n"  # record 5
        "u2,i2,short\n"  # record 6: malformed
        "u2,i3,ok,3\n"  # record 7
    )
    path = tmp_path / "nl.csv"
    path.write_text(text, encoding="utf-8")
    report = ingest_file(store, path, "nl")
    assert [(r["line"], r["reason"]) for r in report.rejected_rows] == [
        (3, "malformed row (wrong number of fields)"),
        (5, "rating is not a number"),
        (6, "malformed row (wrong number of fields)"),
    ]
    reviews = _reviews(store, "nl")
    assert reviews.text.iloc[0] == "two\nlines, with a comma"
    assert list(reviews.row_number) == [1, 3, 6]  # data record index (line - 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"user_id,item_id,text,rating\n", "header but no data rows"),
        (bytes(range(256)) * 40, "binary"),
    ],
)
def test_unusable_files_are_rejected_and_nothing_changes(store, tmp_path, content, message):
    ingest_file(store, write_csv(tmp_path / "ok.csv", small_rows()), "ok")
    before = table_counts(store)
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataValidationError, match=message):
        ingest_file(store, path, "bad")
    assert table_counts(store) == before


def test_strict_mode_is_all_or_nothing(store, tmp_path) -> None:
    rows = small_rows()
    rows[4][3] = "five"
    path = write_csv(tmp_path / "s.csv", rows)
    with pytest.raises(DataValidationError, match="Strict mode: 1 of 8 rows") as err:
        ingest_file(store, path, "s", config=IngestConfig(strict=True))
    assert err.value.report.rejected_rows[0]["line"] == 6
    assert table_counts(store) == dict.fromkeys(table_counts(store), 0)


def test_all_rows_invalid_is_a_rejected_file(store, tmp_path) -> None:
    rows = [[*r[:3], "bad", *r[4:]] for r in small_rows()]
    with pytest.raises(DataValidationError, match=r"No valid rows.*rating is not a number: 8"):
        ingest_file(store, write_csv(tmp_path / "x.csv", rows), "x")
    assert table_counts(store)["reviews"] == 0


def test_reingesting_the_same_file_is_idempotent(store, tmp_path) -> None:
    path = write_csv(tmp_path / "small.csv", small_rows())
    ingest_file(store, path, "small")
    before = table_counts(store)
    again = ingest_file(store, path, "small")
    assert again.unchanged and again.n_accepted == 8
    assert table_counts(store) == before
    other = write_csv(tmp_path / "other.csv", small_rows()[:5])
    with pytest.raises(DatasetExistsError, match="already holds another file"):
        ingest_file(store, other, "small")


def test_a_failure_while_storing_rolls_everything_back(store, tmp_path, monkeypatch) -> None:
    ingest_file(store, write_csv(tmp_path / "ok.csv", small_rows()), "ok")
    before = table_counts(store)
    real = ingest_module._store_rows

    def store_then_fail(*args, **kwargs):
        real(*args, **kwargs)  # reviews, items, rejects and registry are written …
        raise RuntimeError("disk full")  # … then the process fails before COMMIT

    monkeypatch.setattr(ingest_module, "_store_rows", store_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_file(store, write_csv(tmp_path / "two.csv", small_rows()), "two")
    assert table_counts(store) == before
    # The store is usable afterwards.
    monkeypatch.undo()
    assert ingest_file(store, tmp_path / "two.csv", "two").n_accepted == 8


def test_row_and_size_caps(store, tmp_path) -> None:
    path = write_csv(tmp_path / "small.csv", small_rows())
    with pytest.raises(DataValidationError, match="more than 5 rows"):
        ingest_file(store, path, "cap", config=IngestConfig(max_rows=5))
    with pytest.raises(DataValidationError, match="above the limit of 100"):
        ingest_file(store, path, "cap", config=IngestConfig(max_bytes=100))
    assert table_counts(store)["datasets"] == 0


def test_parquet_files_are_ingested(store, tmp_path) -> None:
    df = pd.DataFrame(small_rows(), columns=HEADER)
    df["rating"] = df["rating"].astype(float)
    path = tmp_path / "r.parquet"
    df.to_parquet(path)
    report = ingest_file(store, path, "pq")
    assert report.format == "parquet"
    assert report.n_accepted == 8


def test_timestamps_in_seconds_milliseconds_and_dates(store, tmp_path) -> None:
    # One unit per file, from the column: seconds here, milliseconds in the next file;
    # text dates are parsed as dates in either.
    rows = small_rows()[:3]
    rows[0][4], rows[1][4], rows[2][4] = 1_600_000_000, 1_600_000_100, "2020-09-13"
    ingest_file(store, write_csv(tmp_path / "s.csv", rows), "s")
    ts = list(_reviews(store, "s").ts.astype(str))
    assert ts == ["2020-09-13 12:26:40", "2020-09-13 12:28:20", "2020-09-13 00:00:00"]
    rows[0][4], rows[1][4] = 1_600_000_000_000, 1_600_000_100_000
    report = ingest_file(store, write_csv(tmp_path / "ms.csv", rows), "ms")
    assert "Numeric timestamps are read as milliseconds since 1970." in report.notices
    ts = list(_reviews(store, "ms").ts.astype(str))
    assert ts == ["2020-09-13 12:26:40", "2020-09-13 12:28:20", "2020-09-13 00:00:00"]


def test_category_separator_is_configurable(store, tmp_path) -> None:
    rows = [[*r[:5], r[5].replace(" > ", "/"), *r[6:]] for r in small_rows()]
    ingest_file(store, write_csv(tmp_path / "c.csv", rows), "c",
                config=IngestConfig(category_separator="/"))
    l3 = store.cursor().execute("SELECT l3 FROM items WHERE item_id = 'i1'").fetchone()[0]
    assert l3 == "Audio > Headphones > Wireless"


def test_dataset_name_is_validated(store, tmp_path) -> None:
    path = write_csv(tmp_path / "small.csv", small_rows())
    with pytest.raises(DataValidationError, match="is not allowed"):
        ingest_file(store, path, "x'; DROP TABLE reviews; --")


def test_optional_columns_may_be_absent(store, tmp_path) -> None:
    rows = [r[:4] for r in small_rows()]
    report = ingest_file(store, write_csv(tmp_path / "m.csv", rows, header=HEADER[:4]), "m")
    assert report.n_accepted == 8
    assert any("No usable timestamps" in n for n in report.notices)
    assert any("No category column" in n for n in report.notices)


def test_an_optional_column_can_be_left_out_of_the_mapping(store, tmp_path) -> None:
    path = write_csv(tmp_path / "small.csv", small_rows())
    report = ingest_file(store, path, "nocat", mapping={"category": None})
    assert "category" not in report.mapping
    assert store.cursor().execute("SELECT count(l1) FROM items").fetchone()[0] == 0
    with pytest.raises(DataValidationError, match="rating is required"):
        ingest_file(store, path, "norating", mapping={"rating": None})
