"""Parquet locations as paths or URIs: local folders, ``file://``, ``s3://``, ``gs://``, ``hdfs://``.

A location is a plain path (local) or a URI that ``pyarrow.fs.FileSystem.from_uri``
understands. It names one Parquet file or a folder of them; a folder's data are its
``*.parquet`` files, in name order (hidden ``.``/``_`` files and temporary ``*.tmp`` files
are not data). Everything streams: ``iter_batches`` reads a bounded number of rows at a time
and ``ParquetSink`` writes a folder of ``part-NNNNN.parquet`` files one batch at a time.

Object stores work where credentials are configured: for ``s3://`` the AWS environment
variables (``AWS_ACCESS_KEY_ID`` …), ``AWS_PROFILE`` / ``~/.aws`` or an instance role, which
pyarrow and DuckDB (``duckdb_prepare``: a ``credential_chain`` secret) both read; for
``gs://`` Google's application default credentials (pyarrow) and a GCS HMAC secret (DuckDB).
Nothing here stores a credential. The tests run on local paths and ``file://`` URIs only.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mgi_core.errors import ConfigError
from mgi_core.store.remote import DUCKDB_REMOTE_SCHEMES, prepare_remote_reads
from mgi_core.store.sql import quote_literal

log = logging.getLogger(__name__)

# 'scheme://…'; one letter before ':' is a Windows drive, not a scheme.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")
PART_PATTERN = "part-{:05d}.parquet"
TMP_SUFFIX = ".tmp"
# Object stores publish an object only when its upload completes (close), so a part is
# written under its final name there; elsewhere under a temporary name, then moved.
_PUBLISH_ON_CLOSE = frozenset({"s3", "gcs", "abfs"})


def scheme(uri: str) -> str | None:
    """The URI's scheme in lower case ('s3', 'file', …), None for a plain path."""
    match = _SCHEME.match(str(uri))
    return match.group(1).lower() if match else None


def is_remote(uri: str) -> bool:
    """True for a URI that is not on this machine's file system (anything but a path or
    ``file://``)."""
    return scheme(uri) not in (None, "file")


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system of ``uri`` and the path inside it (a plain path: local,
    made absolute).

    Raises:
        ConfigError: pyarrow does not know the scheme (or its library is missing).
    """
    uri = str(uri)
    if scheme(uri) is None:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(f"Cannot open {uri}: {exc}. Use a local path or an s3://, gs://, "
                          "hdfs:// or file:// URI.") from exc


def join(uri: str, *parts: str) -> str:
    """``uri`` with ``parts`` appended, in the same form (a path stays a path, a URI a URI)."""
    uri = str(uri)
    if scheme(uri) is None:
        return os.path.join(uri, *parts)
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def _is_data_file(name: str) -> bool:
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def _listing(uri: str) -> tuple[pafs.FileSystem, bool, list[str]]:
    """(file system, is a folder, the data files' paths in it): one file, or a folder's
    parts."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return fs, False, [path]
    if info.type == pafs.FileType.Directory:
        entries = fs.get_file_info(pafs.FileSelector(path, recursive=False))
        files = sorted(e.path for e in entries
                       if e.type == pafs.FileType.File and _is_data_file(e.base_name))
        return fs, True, files
    raise FileNotFoundError(f"No Parquet file or folder at {uri}: check the location.")


def parquet_files(uri: str) -> list[str]:
    """The data files of ``uri``: ``[uri]`` for a file, a folder's sorted ``*.parquet``
    files (temporary and hidden files left out), in ``uri``'s form.

    Raises:
        FileNotFoundError: nothing exists at ``uri``.
    """
    _, folder, files = _listing(uri)
    if not folder:
        return [str(uri)]
    return [join(str(uri), f.rsplit("/", 1)[-1]) for f in files]


def count_rows(uri: str) -> int:
    """Rows in ``uri``'s data files, from their footers (no data is read)."""
    fs, _, files = _listing(uri)
    return sum(pq.read_metadata(f, filesystem=fs).num_rows for f in files)


def iter_batches(uri: str, columns: list[str] | None = None,
                 batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """Stream ``uri``'s rows as RecordBatches of at most ``batch_rows`` rows.

    Memory stays bounded: one file and about two batches are read ahead at a time.
    """
    fs, _, files = _listing(uri)
    if not files:
        return
    dataset = pads.dataset(files, filesystem=fs, format="parquet")
    yield from dataset.to_batches(columns=columns, batch_size=batch_rows,
                                  batch_readahead=1, fragment_readahead=1)


class ParquetSink:
    """Writes batches into a folder of ``part-NNNNN.parquet`` files of ``rows_per_file`` rows.

    Memory holds at most ``row_group_rows`` buffered rows. A part is written under a
    temporary name (``….parquet.<id>.tmp``, which readers skip) and renamed when complete,
    except on object stores, which publish an object only when its upload completes. Use as
    a context manager: a clean exit closes the last part, an exception deletes every file
    this sink wrote, so a folder holds complete output or none.

    Raises:
        ConfigError: the folder already holds Parquet files (output never mixes runs).
    """

    def __init__(self, uri: str, rows_per_file: int = 100_000, *,
                 row_group_rows: int = 16_384, schema: pa.Schema | None = None) -> None:
        if rows_per_file < 1 or row_group_rows < 1:
            raise ConfigError("rows_per_file and row_group_rows must be at least 1.")
        self.uri = str(uri)
        self.rows_per_file = rows_per_file
        self.row_group_rows = row_group_rows
        self.schema = schema
        self.fs, self.root = resolve(self.uri)
        self.fs.create_dir(self.root, recursive=True)
        _, _, existing = _listing(self.uri)
        if existing:
            raise ConfigError(f"{self.uri} already holds {len(existing)} Parquet file(s); "
                              "give an empty or new folder.")
        self.files: list[str] = []  # finished parts, in the sink's form (uri joined)
        self.rows = 0
        self._written: list[str] = []  # finished parts' paths in the file system
        self._writer: pq.ParquetWriter | None = None
        self._stream = None
        self._tmp: str | None = None
        self._final: str | None = None
        self._rows_in_file = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._closed = False

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append ``batch`` (its schema must equal the first batch's)."""
        if self._closed:
            raise ValueError("ParquetSink is closed")
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema):
            table = table.select(self.schema.names).cast(self.schema)
        offset = 0
        while offset < table.num_rows:
            take = min(self.rows_per_file - self._rows_in_file, table.num_rows - offset)
            self._pending.append(table.slice(offset, take))
            self._pending_rows += take
            self._rows_in_file += take
            self.rows += take
            offset += take
            if self._pending_rows >= self.row_group_rows:
                self._flush()
            if self._rows_in_file >= self.rows_per_file:
                self._finish_part()

    def close(self) -> list[str]:
        """Finish the last part and return every part written (an empty table's schema is
        written as one empty part, so readers still see the columns)."""
        if not self._closed:
            if self._pending_rows or (not self.files and self.schema is not None):
                self._flush(force_open=True)
            self._finish_part()
            self._closed = True
        return list(self.files)

    def abort(self) -> None:
        """Delete the part being written and every part this sink finished."""
        self._closed = True
        self._pending, self._pending_rows = [], 0
        self._close_writer()
        for path in [self._tmp, *self._written]:
            if path is None:
                continue
            try:
                self.fs.delete_file(path)
            except (FileNotFoundError, OSError) as exc:
                log.warning("could not delete %s: %s", path, exc)
        self._tmp = self._final = None
        self.files, self._written = [], []

    def _open_part(self) -> None:
        name = PART_PATTERN.format(len(self.files))
        self._final = f"{self.root.rstrip('/')}/{name}"
        publish = self.fs.type_name in _PUBLISH_ON_CLOSE
        self._tmp = self._final if publish else f"{self._final}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        self._stream = self.fs.open_output_stream(self._tmp)
        self._writer = pq.ParquetWriter(self._stream, self.schema)

    def _flush(self, force_open: bool = False) -> None:
        if self._writer is None and (self._pending_rows or force_open):
            self._open_part()
        if self._pending_rows:
            table = pa.concat_tables(self._pending)
            self._writer.write_table(table, row_group_size=self.row_group_rows)
        self._pending, self._pending_rows = [], 0

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _finish_part(self) -> None:
        self._flush()
        if self._writer is None:
            return
        self._close_writer()
        if self._tmp != self._final:
            self.fs.move(self._tmp, self._final)
        self._written.append(self._final)
        self.files.append(join(self.uri, self._final.rsplit("/", 1)[-1]))
        self._tmp = self._final = None
        self._rows_in_file = 0


def write_batches(batches: Iterable[pa.RecordBatch | pa.Table], uri: str,
                  rows_per_file: int = 100_000, schema: pa.Schema | None = None) -> list[str]:
    """Write ``batches`` to the folder ``uri`` as ``part-NNNNN.parquet`` files (see
    ``ParquetSink``); returns the parts. On an error no part is left behind."""
    with ParquetSink(uri, rows_per_file, schema=schema) as sink:
        for batch in batches:
            sink.write(batch)
    return sink.files


def duckdb_source(uri: str) -> str:
    """The SQL literal for DuckDB's ``read_parquet`` over ``uri``: the file, or
    ``'folder/*.parquet'`` for a folder (quoted by ``store.sql.quote_literal``).

    Raises:
        ConfigError: DuckDB cannot read this scheme (hdfs://, …).
        FileNotFoundError: nothing exists at ``uri``.
    """
    kind = scheme(uri)
    if kind not in (None, "file", *DUCKDB_REMOTE_SCHEMES):
        raise ConfigError(f"DuckDB cannot read {kind}:// locations; copy the Parquet files to "
                          "a local folder or to s3:// / gs://.")
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"No Parquet file or folder at {uri}: check the location.")
    target = path if kind in (None, "file") else str(uri).rstrip("/")
    if info.type == pafs.FileType.Directory:
        target = join(target, "*.parquet")
    return quote_literal(target)


def duckdb_prepare(cur, uri: str) -> None:
    """Make ``cur``'s connection able to read ``uri``: for ``s3://`` / ``gs://`` load httpfs
    (and an S3 credential-chain secret, ``store.remote``); nothing for local paths.

    Raises:
        ConfigError: DuckDB cannot read the scheme or load its extensions.
    """
    if is_remote(uri):
        prepare_remote_reads(cur, scheme(uri))
