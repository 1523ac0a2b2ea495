"""A damaged database file is reported clearly: what is wrong and what to do, no traceback.

What DuckDB 2.0.1 raises depends on where the damage is: a file without DuckDB's magic bytes
(garbage, zeros) and a file cut before its catalog raise ``IOException`` on connect; a file
cut after its catalog opens and raises ``IOException`` on the first read of a table; an
overwritten header or block raises a plain ``duckdb.Error`` ("Corrupt database file:
computed checksum …"), and a damaged write-ahead log a plain ``Error`` while replaying it.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from mgi_core.errors import StoreError
from mgi_core.store import Store
from tests.conftest import ROOT

DAMAGED = r"damaged or is not a DuckDB database.*--db PATH"


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(64 * 1024))


def _half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _empty_store_truncated(path: Path) -> None:
    """An empty MGI store cut to half its size: DuckDB fails on connect."""
    Store(path).close()
    _half(path)


def _full_store_truncated(path: Path) -> None:
    """A store with 100,000 rows cut to half: DuckDB connects, then fails on the first read."""
    with Store(path) as store:
        store.cursor().execute(
            "INSERT INTO items SELECT 'd', 'i' || range, 'T', NULL, NULL, NULL, NULL, 1 "
            "FROM range(100000)"
        )
    _half(path)


def _header_overwritten(path: Path) -> None:
    """The first database header (bytes 4096-8191) overwritten: a checksum mismatch."""
    Store(path).close()
    with open(path, "r+b") as fh:
        fh.seek(4096)
        fh.write(random.Random(1).randbytes(4096))


DAMAGES: dict[str, Callable[[Path], None]] = {
    "garbage bytes": _garbage,
    "empty store truncated to half": _empty_store_truncated,
    "store with data truncated to half": _full_store_truncated,
    "header overwritten": _header_overwritten,
}


@pytest.fixture(params=list(DAMAGES))
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "mgi.duckdb"
    DAMAGES[request.param](path)
    return path


def test_a_damaged_file_raises_store_error_saying_what_to_do(damaged: Path) -> None:
    before = damaged.read_bytes()
    with pytest.raises(StoreError, match=DAMAGED) as err:
        Store(damaged)
    assert str(damaged) in str(err.value) and "move it" in str(err.value).lower()
    with pytest.raises(StoreError, match=DAMAGED):
        Store(damaged, read_only=True)
    assert damaged.read_bytes() == before  # MGI never writes over a file it cannot read


def test_the_cli_reports_a_damaged_file_without_a_traceback(damaged: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mgi_core", "datasets", "--db", str(damaged)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: Cannot open {damaged}: the file is damaged")
    assert "--db PATH" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_damaged_write_ahead_log_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mgi.duckdb"
    # A process that wrote without a checkpoint and was killed leaves mgi.duckdb.wal.
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from mgi_core.store import Store
        cur = Store({str(path)!r}).cursor()
        cur.execute("PRAGMA disable_checkpoint_on_shutdown")
        cur.execute("SET checkpoint_threshold = '1GB'")
        cur.execute("INSERT INTO items SELECT 'd', 'i' || range, 'T', NULL, NULL, NULL, "
                    "NULL, 1 FROM range(1000)")
        os.kill(os.getpid(), signal.SIGKILL)
    """)], cwd=ROOT, timeout=120)
    wal = Path(f"{path}.wal")
    assert wal.stat().st_size > 300
    with open(wal, "r+b") as fh:  # flip one byte of the first entry
        fh.seek(200)
        byte = fh.read(1)[0]
        fh.seek(200)
        fh.write(bytes([byte ^ 0xFF]))
    with pytest.raises(StoreError, match=DAMAGED) as err:
        Store(path)
    assert "Corrupt WAL file" in str(err.value)
    # The advice names the log too: moving the database file alone would leave it behind.
    assert re.search(rf"[Mm]ove it .*{re.escape(wal.name)}", str(err.value))


def test_an_internal_error_while_opening_becomes_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB raises InternalException for states it did not expect (e.g. a block that
    # decodes to nonsense); none of the damages above triggers one, so it is simulated.
    path = tmp_path / "mgi.duckdb"
    Store(path).close()

    def broken(self: Store) -> None:
        raise duckdb.InternalException("INTERNAL Error: unexpected block type")

    monkeypatch.setattr(Store, "_migrate", broken)
    with pytest.raises(StoreError, match=rf"{DAMAGED}") as err:
        Store(path)
    assert "unexpected block type" in str(err.value)
    monkeypatch.undo()
    Store(path).close()  # the failed open let go of the file: it opens again


def test_a_folder_is_not_called_a_damaged_database(tmp_path: Path) -> None:
    folder = tmp_path / "mgi.duckdb"
    folder.mkdir()
    with pytest.raises(StoreError, match=r"Is a directory.*Check that the path") as err:
        Store(folder)
    assert "damaged" not in str(err.value)
