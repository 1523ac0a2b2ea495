"""SIGKILL during ingest: the file's rows are all stored or none, the database opens again,
and the temporary copy the killed process left is removed by the next ingest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.store import Store
from tests.conftest import ROOT, small_rows, table_counts, write_csv

N_ROWS = 400_000


def _latin1_file(path: Path) -> Path:
    """A Latin-1 CSV (so ingest first writes a UTF-8 copy), big enough to kill mid-way."""
    with open(path, "w", encoding="latin-1", newline="") as fh:
        fh.write("user_id,item_id,text,rating,timestamp\n")
        for i in range(N_ROWS):
            fh.write(f"u{i % 9_000},i{i % 4_000}_{i // 4_000},crème brûlée n°{i} "
                     f"{'good ' * (i % 13)},{1 + i % 5},{1_500_000_000 + i}\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.1, 0.5, 1.0, 1.6])
def test_sigkill_during_ingest_stores_all_or_nothing(tmp_path, delay_s) -> None:
    db = tmp_path / "mgi.duckdb"
    with Store(db) as store:
        ingest_file(store, write_csv(tmp_path / "ok.csv", small_rows()), "ok")
        before = table_counts(store)
    source = _latin1_file(tmp_path / "big.csv")
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mgi_core", "ingest", str(source), "--name", "big", "--db",
         str(db)],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not list(temp.glob("mgi-utf8-*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the ingest never started its UTF-8 copy"
        time.sleep(0.02)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    with Store(db) as store:  # opens: DuckDB replays or drops the unfinished transaction
        stored = store.cursor().execute(
            "SELECT count(*) FROM reviews WHERE dataset = 'big'").fetchone()[0]
        registered = store.cursor().execute(
            "SELECT count(*) FROM datasets WHERE name = 'big'").fetchone()[0]
        assert (stored, registered) in ((0, 0), (N_ROWS, 1))
        print(f"killed {delay_s} s after the copy began: {stored:,} rows stored")
        if not registered:
            assert table_counts(store) == before
        # the killed process's copy is removed by the next ingest (of any file)
        tempfile.tempdir = str(temp)
        try:
            ingest_file(store, write_csv(tmp_path / "next.csv", small_rows()), "next")
        finally:
            tempfile.tempdir = None
    assert not list(temp.glob("mgi-utf8-*"))
