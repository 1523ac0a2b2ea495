"""The store on a temporary DuckDB file: schema, reopen, busy file, cursors, transactions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mgi_core.errors import StoreBusyError, StoreError
from mgi_core.store import SCHEMA_VERSION, Store, resolve_db_path


def test_schema_is_created_and_versioned(tmp_path: Path) -> None:
    with Store(tmp_path / "a" / "mgi.duckdb") as store:
        assert store.schema_version == SCHEMA_VERSION
        tables = {r[0] for r in store.cursor().execute("SHOW TABLES").fetchall()}
    assert {"datasets", "reviews", "items", "ingest_rejects", "schema_info"} <= tables


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "mgi.duckdb"
    with Store(path) as store:
        store.cursor().execute(
            "INSERT INTO items VALUES ('d', 'i1', 'T', NULL, NULL, NULL, NULL, 1)"
        )
    with Store(path) as store:
        assert store.cursor().execute("SELECT count(*) FROM items").fetchone()[0] == 1
        assert store.schema_version == SCHEMA_VERSION


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mgi.duckdb"
    with Store(path) as store:
        store.cursor().execute("UPDATE schema_info SET version = 999")
    with pytest.raises(StoreError, match="schema version 999, newer than this MGI"):
        Store(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="Cannot open"):
        Store(path)


def test_busy_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mgi.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r})
            print("locked", flush=True)
            sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreBusyError, match=rf"in use by .*\(PID {holder.pid}\).*--db PATH"):
            Store(path)
    finally:
        holder.communicate("\n", timeout=30)
    Store(path).close()  # free again once the other process is gone


def test_each_thread_gets_its_own_cursor(tmp_path: Path) -> None:
    with Store(tmp_path / "mgi.duckdb") as store:
        main = store.cursor()
        assert store.cursor() is main
        seen: list[object] = []
        counts: list[int] = []

        def work() -> None:
            cur = store.cursor()
            seen.append(cur)
            for _ in range(20):
                counts.append(cur.execute("SELECT count(*) FROM reviews").fetchone()[0])
                time.sleep(0.001)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({id(c) for c in seen}) == 4 and main not in seen
        assert counts == [0] * 80


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    with Store(tmp_path / "mgi.duckdb") as store:
        with pytest.raises(ZeroDivisionError), store.transaction() as tx:
            tx.execute("INSERT INTO items VALUES ('d', 'i1', 'T', NULL, NULL, NULL, NULL, 1)")
            1 / 0  # noqa: B018
        assert store.cursor().execute("SELECT count(*) FROM items").fetchone()[0] == 0


def test_db_path_resolution(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MGI_DB", raising=False)
    assert resolve_db_path() == Path("data/mgi.duckdb")
    monkeypatch.setenv("MGI_DB", str(tmp_path / "env.duckdb"))
    assert resolve_db_path() == tmp_path / "env.duckdb"
    assert resolve_db_path(tmp_path / "cli.duckdb") == tmp_path / "cli.duckdb"


def test_duckdb_memory_is_limited_and_configurable(tmp_path, monkeypatch) -> None:
    # DuckDB's own default is 80 % of RAM, and its buffer pool keeps what it read.
    from mgi_core.store import Store

    def limit(store: Store) -> float:
        value = store.cursor().execute("SELECT current_setting('memory_limit')").fetchone()[0]
        number, unit = value.split()
        return float(number) * {"MiB": 2**20, "GiB": 2**30, "KiB": 2**10}[unit]

    monkeypatch.delenv("MGI_DUCKDB_MEMORY", raising=False)
    with Store(tmp_path / "a.duckdb") as store:
        assert 0.9e9 <= limit(store) <= 1.0e9  # 1 GB (DuckDB shows it as 953.6 MiB)
    monkeypatch.setenv("MGI_DUCKDB_MEMORY", "2GB")
    with Store(tmp_path / "b.duckdb") as store:
        assert 1.8e9 <= limit(store) <= 2.0e9
