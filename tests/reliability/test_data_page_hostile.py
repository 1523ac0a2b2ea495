"""The Data page against hostile uploads (AppTest): a clear error, never an exception, user
data in messages shown as plain text, and an ingested upload released from memory and disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.resources import _open_store
from tests.app.pages import APP, raw_texts, run, texts
from tests.conftest import table_counts
from tests.reliability.test_hostile_files import GOOD, HEADER, REJECTED


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MGI_DB", str(path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where uploads are copied (tempfile)
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    yield path
    _open_store(str(path)).close()
    _open_store.clear()


def _upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, content, "text/csv"))
    return run(at)


def _bytes_of(name: str, tmp_path: Path) -> bytes:
    return REJECTED[name](tmp_path / f"{name}.bin").read_bytes()


@pytest.mark.parametrize("name", ["quoted_200kb_first_field", "binary_without_nul",
                                  "wide_header_100k_columns", "nul_after_first_megabyte",
                                  "zip_xlsx", "truncated_parquet"])
def test_hostile_upload_shows_an_error_not_an_exception(db, tmp_path, name) -> None:
    at = run(AppTest.from_file(APP, default_timeout=300))
    at = _upload(at, f"{name}.csv", _bytes_of(name, tmp_path))  # run() asserts no exception
    assert len(at.error) == 1
    assert "Traceback" not in texts(at.error)
    assert not at.button  # no mapping form for a file that cannot be read


def test_column_names_in_an_error_are_plain_text(db, tmp_path) -> None:
    at = run(AppTest.from_file(APP, default_timeout=300))
    at = _upload(at, "md.csv", _bytes_of("markdown_header_missing_text", tmp_path))
    at.button(key="data_ingest").click()
    at = run(at)
    shown, source = texts(at.error), raw_texts(at.error)
    assert "'![x](http://127.0.0.1:9/t.png)'" in shown  # the reader sees the header as is
    assert "![x](" not in source and "http://" not in source  # no image, no link
    assert table_counts(_open_store(str(db))) == {"datasets": 0, "reviews": 0, "items": 0,
                                                  "ingest_rejects": 0}


def test_file_name_with_markdown_is_plain_in_messages(db, tmp_path) -> None:
    name = "**loud** [x](http:evil).csv"
    at = run(AppTest.from_file(APP, default_timeout=300))
    for _ in range(2):  # the second time: "… is already stored …", quoting the file name
        at = _upload(at, name, (HEADER + GOOD).encode())
        at.text_input(key="data_name").set_value("loud")
        at.button(key="data_ingest").click()
        at = run(at)
    assert f"{name} is already stored as dataset 'loud'" in texts(at.info)
    source = raw_texts(at.info)
    assert "**loud**" not in source and "[x](" not in source


def test_ingested_upload_leaves_memory_and_disk(db, tmp_path) -> None:
    at = run(AppTest.from_file(APP, default_timeout=300))
    # mixed CRLF/LF line endings, as spreadsheets export them: read, not refused
    mixed = "".join(line + ("\r\n" if i % 2 else "\n")
                    for i, line in enumerate((HEADER + GOOD).splitlines())).encode()
    at = _upload(at, "mixed.csv", mixed)
    copies = list((tmp_path / "tmp").glob("mgi_upload_*/upload.csv"))
    assert len(copies) == 1 and copies[0].read_bytes() == mixed  # staged once, on disk
    at.button(key="data_ingest").click()
    at = run(at)
    assert "12 of 12 rows stored" in texts(at.success)
    assert at.file_uploader[0].value is None  # a new, empty uploader: the bytes are dropped
    assert not list((tmp_path / "tmp").glob("mgi_upload_*"))  # and the copy is gone
