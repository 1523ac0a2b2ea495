"""Parquet locations (mgi_core.data.lake): paths and file:// URIs, folders of parts written
one batch at a time, what DuckDB reads from them, and that half-written files never count."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from mgi_core.data import lake
from mgi_core.errors import ConfigError

D = 4


def vectors_table(start: int, n: int) -> pa.Table:
    """Rows start..start+n-1: review_id i, item 'i<i % 3>', embedding [i, i+.25, i+.5, i+.75]."""
    ids = np.arange(start, start + n, dtype=np.int64)
    vecs = (ids[:, None] + np.arange(D) / 4).astype(np.float32)  # (n, D)
    return pa.table({
        "review_id": ids,
        "item_id": [f"i{i % 3}" for i in ids],
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), D),
    })


def three_batches() -> list[pa.RecordBatch]:
    # 3 + 4 + 3 = 10 rows, in batches that do not line up with the parts of 4 rows.
    return [b for start, n in ((0, 3), (3, 4), (7, 3))
            for b in vectors_table(start, n).to_batches()]


def test_scheme_and_is_remote() -> None:
    assert lake.scheme("/data/x.parquet") is None
    assert lake.scheme(r"C:\data\x.parquet") is None  # a drive letter is not a scheme
    assert lake.scheme("S3://bucket/key") == "s3"
    assert not lake.is_remote("relative/folder")
    assert not lake.is_remote("file:///tmp/x")
    assert lake.is_remote("s3://bucket/emb")
    assert lake.is_remote("hdfs://namenode:8020/emb")
    assert lake.join("s3://bucket/emb/", "part-00000.parquet") == "s3://bucket/emb/part-00000.parquet"
    assert lake.join("emb", "a", "b") == str(Path("emb") / "a" / "b")


def test_resolve_local_path_and_file_uri(tmp_path: Path) -> None:
    fs, path = lake.resolve(str(tmp_path / "a"))
    assert isinstance(fs, pafs.LocalFileSystem) and path == str(tmp_path / "a")
    fs, path = lake.resolve((tmp_path / "a").as_uri())
    assert isinstance(fs, pafs.LocalFileSystem) and path == str(tmp_path / "a")
    with pytest.raises(ConfigError, match="Cannot open"):
        lake.resolve("nosuchscheme://x/y")


@pytest.mark.parametrize("form", ["path", "file_uri"])
def test_folder_of_parts_round_trip(tmp_path: Path, form: str) -> None:
    folder = tmp_path / "emb"
    uri = str(folder) if form == "path" else folder.as_uri()
    parts = lake.write_batches(three_batches(), uri, rows_per_file=4)
    # 10 rows in parts of at most 4: 4 + 4 + 2, named in order, in the caller's form.
    assert parts == [lake.join(uri, f"part-0000{k}.parquet") for k in range(3)]
    assert lake.parquet_files(uri) == parts
    assert [pq.read_metadata(folder / f"part-0000{k}.parquet").num_rows
            for k in range(3)] == [4, 4, 2]
    assert lake.count_rows(uri) == 10
    batches = list(lake.iter_batches(uri, columns=["review_id", "embedding"], batch_rows=3))
    assert max(b.num_rows for b in batches) <= 3
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["review_id", "embedding"]
    assert table.column("review_id").to_pylist() == list(range(10))
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), D)
    assert table.column("embedding").to_pylist()[9] == [9.0, 9.25, 9.5, 9.75]


def test_single_file_location(tmp_path: Path) -> None:
    path = tmp_path / "one.parquet"
    pq.write_table(vectors_table(0, 5), path)
    assert lake.parquet_files(str(path)) == [str(path)]
    assert lake.count_rows(path.as_uri()) == 5
    assert sum(b.num_rows for b in lake.iter_batches(str(path))) == 5
    with pytest.raises(FileNotFoundError, match="No Parquet file or folder"):
        lake.parquet_files(str(tmp_path / "missing"))


def test_duckdb_reads_the_folder_as_float_vectors(tmp_path: Path) -> None:
    folder = tmp_path / "it's here"  # a quote in the path: the literal must stay safe
    lake.write_batches(three_batches(), str(folder), rows_per_file=4)
    source = lake.duckdb_source(str(folder))
    assert source == "'" + str(folder / "*.parquet").replace("'", "''") + "'"
    con = duckdb.connect()
    lake.duckdb_prepare(con, str(folder))  # local: nothing to load
    rows = con.execute(
        f"SELECT review_id, embedding::FLOAT[{D}] AS e, typeof(embedding::FLOAT[{D}]) "
        f"FROM read_parquet({source}) ORDER BY review_id"
    ).fetchall()
    assert [r[0] for r in rows] == list(range(10))
    assert list(rows[2][1]) == [2.0, 2.25, 2.5, 2.75]
    assert {r[2] for r in rows} == {f"FLOAT[{D}]"}
    # One file, as a path and as a file:// URI, is read as itself.
    one = folder / "part-00001.parquet"
    for uri in (str(one), one.as_uri()):
        n = con.execute(f"SELECT count(*) FROM read_parquet({lake.duckdb_source(uri)})")
        assert n.fetchone()[0] == 4


class RecordingCursor:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, sql: str, *args: object) -> RecordingCursor:
        self.statements.append(sql)
        return self


def test_duckdb_prepare_loads_httpfs_and_a_credential_chain_for_s3_only() -> None:
    local = RecordingCursor()
    lake.duckdb_prepare(local, "/data/emb")
    lake.duckdb_prepare(local, "file:///data/emb")
    assert local.statements == []
    s3 = RecordingCursor()
    lake.duckdb_prepare(s3, "s3://bucket/emb")
    assert "LOAD httpfs" in s3.statements
    secret = [s for s in s3.statements if s.startswith("CREATE SECRET IF NOT EXISTS")]
    assert len(secret) == 1 and "TYPE s3, PROVIDER credential_chain" in secret[0]
    with pytest.raises(ConfigError, match="DuckDB cannot read hdfs"):
        lake.duckdb_source("hdfs://namenode:8020/emb")


def test_half_written_parts_are_not_listed(tmp_path: Path) -> None:
    folder = tmp_path / "emb"
    with lake.ParquetSink(str(folder), rows_per_file=100, row_group_rows=2) as sink:
        sink.write(vectors_table(0, 3))  # one row group flushed: the part is open on disk
        on_disk = sorted(p.name for p in folder.iterdir())
        assert len(on_disk) == 1 and on_disk[0].startswith("part-00000.parquet.")
        assert on_disk[0].endswith(".tmp")
        assert lake.parquet_files(str(folder)) == []
        assert list(lake.iter_batches(str(folder))) == []
        with pytest.raises(duckdb.Error, match="No files found"):
            duckdb.connect().execute(
                f"SELECT count(*) FROM read_parquet({lake.duckdb_source(str(folder))})")
    assert sorted(p.name for p in folder.iterdir()) == ["part-00000.parquet"]
    assert lake.count_rows(str(folder)) == 3


def test_a_failed_write_leaves_no_part(tmp_path: Path) -> None:
    folder = tmp_path / "emb"

    def batches_then_failure():
        yield from three_batches()
        raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        lake.write_batches(batches_then_failure(), str(folder), rows_per_file=4)
    assert list(folder.iterdir()) == []  # two finished parts and the open one: all removed


def test_sink_refuses_a_folder_with_parquet_files(tmp_path: Path) -> None:
    folder = tmp_path / "emb"
    lake.write_batches(three_batches(), str(folder))
    with pytest.raises(ConfigError, match="already holds 1 Parquet file"):
        lake.ParquetSink(str(folder))


def test_empty_stream_writes_the_columns(tmp_path: Path) -> None:
    schema = vectors_table(0, 1).schema
    parts = lake.write_batches([], str(tmp_path / "emb"), schema=schema)
    assert len(parts) == 1
    assert pq.read_schema(parts[0]).equals(schema) and lake.count_rows(parts[0]) == 0
