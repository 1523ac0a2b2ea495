"""One DuckDB file per MGI installation: open, migrate, and hand out cursors.

DuckDB allows one read-write process per file. Within the process there is one root
connection and one cursor per thread (DuckDB raises on concurrent use of one connection).
Values always travel as ``?`` parameters.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from mgi_core.errors import StoreBusyError, StoreError
from mgi_core.store.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

DEFAULT_DB_PATH = Path("data") / "mgi.duckdb"
# What DuckDB 2.x raises on a damaged file: IOException (not a database file; cut short),
# a plain Error ("Corrupt database file: computed checksum …", a damaged WAL), and for
# bytes that decode to nonsense SerializationException, InternalException or FatalException.
# Errors in MGI's own SQL (ProgrammingError: parser, binder, catalog) are bugs, not damage.
_DAMAGE = (duckdb.IOException, duckdb.SerializationException, duckdb.InternalException,
           duckdb.FatalException)
# IOException also says that a path cannot be used at all; that is not damage.
_NOT_DAMAGE = ("No such file", "does not exist", "Is a directory", "Permission denied",
               "No space left")


def _is_damage(exc: duckdb.Error) -> bool:
    if any(marker in str(exc) for marker in _NOT_DAMAGE):
        return False
    return isinstance(exc, _DAMAGE) or type(exc) is duckdb.Error


_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")


DEFAULT_MEMORY_LIMIT = "1GB"


def duckdb_memory_limit() -> str:
    """DuckDB's memory limit: ``$MGI_DUCKDB_MEMORY`` (e.g. ``4GB``), else 1 GB.

    DuckDB's own default is 80 % of the machine's memory, and it keeps what it reads in
    its buffer pool up to that limit: a process that reads a million review vectors would
    grow by their size. Under the limit DuckDB evicts cached blocks and spills large
    sorts, joins and uncommitted writes to a temporary folder beside the database.
    """
    return os.environ.get("MGI_DUCKDB_MEMORY", "").strip() or DEFAULT_MEMORY_LIMIT


def resolve_db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The database file to use: ``path`` if given, else ``$MGI_DB``, else data/mgi.duckdb."""
    if path:
        return Path(path)
    env = os.environ.get("MGI_DB")
    return Path(env) if env else DEFAULT_DB_PATH


class Store:
    """The MGI DuckDB database.

    Args:
        path: database file (created with its parent folder when absent), or ``":memory:"``.
        read_only: open without taking the writer lock (no migrations are applied).

    Raises:
        StoreBusyError: another process holds the file.
        StoreError: the file is damaged, is not a DuckDB database, cannot be used (a folder,
            no permission) or has a newer schema.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, read_only: bool = False):
        self.path = resolve_db_path(path) if str(path) != ":memory:" else Path(":memory:")
        self.read_only = read_only
        self._local = threading.local()
        self._conn = self._connect()
        try:
            if read_only:
                self._check_readable()
            else:
                self._migrate()
        except BaseException as exc:
            with suppress(duckdb.Error):
                self._conn.close()  # let go of the file (and DuckDB's cached instance of it)
            if isinstance(exc, duckdb.Error) and not isinstance(exc, duckdb.ProgrammingError):
                raise self._open_error(exc) from exc
            raise  # a newer schema (StoreError), or a bug in MGI's own SQL

    # -- opening ------------------------------------------------------------------------
    def _connect(self) -> duckdb.DuckDBPyConnection:
        target = str(self.path)
        if target != ":memory:" and not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return duckdb.connect(target, read_only=self.read_only,
                                  config={"memory_limit": duckdb_memory_limit()})
        except duckdb.IOException as exc:
            msg = str(exc)
            holder = _LOCK_HOLDER.search(msg)
            if holder or "lock" in msg.lower():
                who = (
                    f"{holder['prog']} (PID {holder['pid']})" if holder else "another process"
                )
                raise StoreBusyError(
                    f"The database {self.path} is in use by {who}. DuckDB allows one "
                    "process to write a database file at a time: stop that process (for "
                    "example the dashboard started by 'make run'), or point MGI at another "
                    "file with --db PATH or the MGI_DB environment variable."
                ) from exc
            raise self._open_error(exc) from exc
        except duckdb.Error as exc:
            raise self._open_error(exc) from exc

    def _open_error(self, exc: duckdb.Error) -> StoreError:
        """The error to show for ``exc`` raised while opening: damage, or a path problem."""
        if not _is_damage(exc):
            return StoreError(
                f"Cannot open the database {self.path}: {exc}. Check that the path is a file "
                "you may read and write, or choose another file with --db PATH or the MGI_DB "
                "environment variable."
            )
        wal = Path(f"{self.path}.wal")
        beside = f" and {wal.name} beside it" if wal.exists() else ""
        return StoreError(
            f"Cannot open {self.path}: the file is damaged or is not a DuckDB database "
            f"({exc}). Move it{beside} out of the way (MGI then starts a new, empty database "
            "there) or restore it from a backup, or choose another file with --db PATH or "
            "the MGI_DB environment variable."
        )

    def _check_readable(self) -> None:
        """Read the schema version, as opening read-write does: a truncated file fails here."""
        exists = self._conn.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_info'"
        ).fetchone()[0]
        if exists:
            self._conn.execute("SELECT max(version) FROM schema_info").fetchone()

    def _migrate(self) -> None:
        cur = self.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS schema_info (version INTEGER NOT NULL)")
        row = cur.execute("SELECT max(version) FROM schema_info").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this MGI "
                f"({SCHEMA_VERSION}). Upgrade MGI, or use another file with --db PATH."
            )
        for version in range(current, SCHEMA_VERSION):
            with self.transaction() as tx:
                tx.execute(MIGRATIONS[version])
                tx.execute("DELETE FROM schema_info")
                tx.execute("INSERT INTO schema_info VALUES (?)", [version + 1])
            log.info("migrated %s to schema version %d", self.path, version + 1)

    # -- use ----------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        row = self.cursor().execute("SELECT max(version) FROM schema_info").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the root connection (created on first use)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._conn.cursor()
            self._local.cursor = cur
        return cur

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived cursor of its own, for relation-API reads (``.sql(...)``).

        DuckDB 2.x refuses a relation query on a cursor whose last ``execute`` result is
        unfinished; a fresh cursor has none.
        """
        cur = self._conn.cursor()
        try:
            yield cur
        finally:
            cur.close()

    @contextmanager
    def transaction(self, own_cursor: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor inside BEGIN … COMMIT; any exception rolls everything back.

        ``own_cursor``: a cursor of its own rather than this thread's, for a transaction
        that interleaves with reads on this thread's cursor (they see committed data).
        """
        cur = self._conn.cursor() if own_cursor else self.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        finally:
            if own_cursor:
                cur.close()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
