"""Hostile and careless files against ``ingest_file`` and the CLI: every one ends in a clear
rejection (``DataValidationError``) or a correct partial ingest, quickly, and a rejection
never changes what is stored."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mgi_core.data.files import MAX_COLUMNS, TextScan, cleanup_stale_temp_files
from mgi_core.data.ingest import ingest_file, inspect_file
from mgi_core.errors import DataValidationError
from tests.conftest import ROOT, small_rows, table_counts, write_csv

HEADER = "user_id,item_id,text,rating\n"
GOOD = "".join(f"u{i % 4},i{i},review {i},{1 + i % 5}\n" for i in range(12))
SECONDS = 30  # the acceptance bound for files under 10 MB


def _bytes(data: bytes) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        path.write_bytes(data)
        return path
    return make


def _random_bytes(n: int, lo: int = 0) -> bytes:
    rng = random.Random(n + lo)
    return bytes(rng.randrange(lo, 256) for _ in range(n))


def _bad_parquet(path: Path) -> Path:
    path.write_bytes(b"PAR1" + _random_bytes(5_000) + b"PAR1")
    return path


def _parquet_without_text(path: Path) -> Path:
    pq.write_table(pa.table({"user_id": ["u1"], "item_id": ["i1"], "rating": [5]}), path)
    return path


# name -> the file's bytes; each must be rejected as a whole with a clear message.
REJECTED: dict[str, Callable[[Path], Path]] = {
    "empty": _bytes(b""),
    "only_whitespace": _bytes(b" \n\n\t\n"),
    "bom_only": _bytes(b"\xef\xbb\xbf"),
    "header_only": _bytes(HEADER.encode()),
    "quoted_200kb_first_field": _bytes(b'"' + b"a" * 200_000 + b'",item_id,text,rating\n'
                                       + b"u1,i1,t,5\n"),
    "binary_with_nul": _bytes(_random_bytes(20_000)),
    "binary_without_nul": _bytes(_random_bytes(300_000, lo=1)),
    "control_characters": _bytes(bytes(range(1, 32)) * 2_000),
    "zip_xlsx": _bytes(b"PK\x03\x04" + _random_bytes(2_000, lo=1)),
    "gzip": _bytes(b"\x1f\x8b\x08" + _random_bytes(2_000, lo=1)),
    "pdf": _bytes(b"%PDF-1.7\n" + b"obj stream\n" * 100),
    "png": _bytes(b"\x89PNG\r\n\x1a\n" + _random_bytes(500, lo=1)),
    "wide_header_100k_columns": _bytes(",".join(f"c{i}" for i in range(100_000)).encode()
                                       + b"\n"),
    "too_many_columns": _bytes((",".join(f"c{i}" for i in range(MAX_COLUMNS + 1))
                                + ",user_id,item_id,text,rating\n").encode()),
    "header_without_required_columns": _bytes(b"a,b,c\n1,2,3\n"),
    "markdown_header_missing_text": _bytes(b"user_id,item_id,![x](http://127.0.0.1:9/t.png),"
                                           b"rating\nu1,i1,hi,5\n"),
    "nul_after_first_megabyte": _bytes((HEADER + "".join(
        f"u{i % 9},i{i},{'x' * 90},5\n" for i in range(14_000))).encode()
        + b"u1,inul,bad\x00text,5\n"),
    "nul_in_header": _bytes(b"user_id,item_id,te\x00xt,rating\nu1,i1,a,5\n"),
    "all_rows_invalid": _bytes((HEADER + "u1,i1,,5\nu2,i2,t,x\n,i3,t,4\n").encode()),
    "latin1_invalid_for_guess": _bytes(HEADER.encode("utf-16") + b"\x00"),
    "truncated_parquet": _bad_parquet,
    "parquet_missing_text": _parquet_without_text,
    "html_page": _bytes(b"<!doctype html><html><body>" + b"<p>not a csv</p>" * 200
                        + b"</body></html>"),
    "json_lines": _bytes(b'{"user_id": "u1", "item_id": "i1", "text": "t", "rating": 5}\n' * 50),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_hostile_file_is_rejected_clearly_and_stores_nothing(store, tmp_path, name) -> None:
    ingest_file(store, write_csv(tmp_path / "ok.csv", small_rows()), "ok")
    before = table_counts(store)
    path = REJECTED[name](tmp_path / f"{name}.csv")
    started = time.monotonic()
    with pytest.raises(DataValidationError) as info:
        ingest_file(store, path, "hostile")
    assert time.monotonic() - started < SECONDS
    message = str(info.value)
    assert 20 < len(message) < 4_000, message
    assert "Traceback" not in message
    assert table_counts(store) == before
    # The Data page's first look at the file either works (row-level problems show at
    # ingest) or fails the same clear way: never with another exception.
    try:
        inspect_file(path)
    except DataValidationError as exc:
        assert "Traceback" not in str(exc)


# name -> (file maker, rows stored, {reason: count})
PARTIAL: dict[str, tuple[Callable[[Path], Path], int, dict[str, int]]] = {
    "mixed_crlf_lf": (_bytes("".join(
        line + ("\r\n" if i % 2 else "\n")
        for i, line in enumerate((HEADER + GOOD).splitlines())).encode()), 12, {}),
    "old_mac_cr": (_bytes((HEADER + GOOD).replace("\n", "\r").encode()), 12, {}),
    "crlf_latin1": (_bytes((HEADER + GOOD + "u9,i99,café crème,4\n").replace(
        "\n", "\r\n").encode("latin-1")), 13, {}),
    "stray_quote": (_bytes((HEADER + GOOD + 'u9,i98,"never closed,4\n').encode()), 12,
                    {"unterminated or stray quote": 1}),
    "ragged_rows": (_bytes((HEADER + GOOD + "u9,i97\nu9,i96,a,b,c,4\n").encode()), 12,
                    {"malformed row (wrong number of fields)": 2}),
    "year_9999_in_seconds": (_bytes((
        "user_id,item_id,text,rating,timestamp\n"
        + "".join(f"u{i % 3},i{i},t{i},5,{1_600_000_000 + i}\n" for i in range(8))
        + "u1,i50,far future,4,253402300799\n").encode()), 8, {"timestamp out of range": 1}),
    "formula_and_script_text": (_bytes((HEADER + GOOD + 'u9,i95,"=HYPERLINK(""x"")",4\n'
                                        + "u9,i94,<script>alert(1)</script>,4\n").encode()),
                                14, {}),
}


@pytest.mark.parametrize("name", sorted(PARTIAL))
def test_careless_file_is_partly_stored_with_reasons(store, tmp_path, name) -> None:
    make, n_stored, reasons = PARTIAL[name]
    started = time.monotonic()
    report = ingest_file(store, make(tmp_path / f"{name}.csv"), "careless")
    assert time.monotonic() - started < SECONDS
    assert report.n_accepted == n_stored
    assert report.rejected_by_reason == reasons
    assert table_counts(store)["reviews"] == n_stored


def test_a_record_over_the_line_limit_is_rejected_as_too_long(store, tmp_path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(HEADER + 'u1,i1,"' + "y" * (17 * 2**20) + '",5\n' + GOOD)
    report = ingest_file(store, path, "long")
    assert report.rejected_by_reason == {"record longer than 16 MB": 1}
    assert report.rejected_rows[0]["line"] == 2
    assert report.n_accepted == 12


def test_duckdb_refusal_shows_its_whole_hint(store, tmp_path, monkeypatch) -> None:
    import mgi_core.data.ingest as ingest

    # Reading with DuckDB's strict parser and no rewrite of the mixed endings: the refusal
    # must carry DuckDB's hint lines ("Possible fixes", the options), not only line one.
    monkeypatch.setattr(ingest, "scan_text", lambda p: TextScan(0, 0, 0, None, None))
    path = tmp_path / "mixed.csv"
    path.write_bytes("".join(line + ("\r\n" if i % 2 else "\n")
                             for i, line in enumerate((HEADER + GOOD).splitlines())).encode())
    with pytest.raises(DataValidationError) as info:
        ingest_file(store, path, "mixed")
    message = str(info.value)
    assert "Possible fixes" in message and "delimiter" in message
    assert "mgi-utf8-" not in message  # a temporary copy's path never shows


def test_stale_temporary_copies_are_removed(tmp_path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f"mgi-utf8-{dead}-abc.csv"
    stale_dir = tmp_path / f"mgi_upload_{dead}_xyz"
    mine = tmp_path / f"mgi-utf8-{__import__('os').getpid()}-def.csv"
    other = tmp_path / "someone-elses.csv"
    for p in (stale, mine, other):
        p.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "upload.csv").write_text("x")
    removed = cleanup_stale_temp_files(tmp_path)
    assert sorted(removed) == sorted([stale, stale_dir])
    assert mine.exists() and other.exists()


def test_cli_rejects_hostile_file_without_traceback(tmp_path) -> None:
    path = REJECTED["quoted_200kb_first_field"](tmp_path / "big.csv")
    out = subprocess.run(
        [sys.executable, "-m", "mgi_core", "ingest", str(path), "--name", "x",
         "--db", str(tmp_path / "cli.duckdb")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert "64 KiB" in out.stderr
