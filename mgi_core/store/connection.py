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
from contextlib import contextmanager
from pathlib import Path

import duckdb

from mgi_core.errors import StoreBusyError, StoreError
from mgi_core.store.schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

DEFAULT_DB_PATH = Path("data") / "mgi.duckdb"
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")


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
        StoreError: the file is not a DuckDB database or has a newer schema.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, read_only: bool = False):
        self.path = resolve_db_path(path) if str(path) != ":memory:" else Path(":memory:")
        self.read_only = read_only
        self._local = threading.local()
        self._conn = self._connect()
        if not read_only:
            self._migrate()

    # -- opening ------------------------------------------------------------------------
    def _connect(self) -> duckdb.DuckDBPyConnection:
        target = str(self.path)
        if target != ":memory:" and not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return duckdb.connect(target, read_only=self.read_only)
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
            raise StoreError(f"Cannot open the database {self.path}: {msg}") from exc
        except duckdb.Error as exc:
            raise StoreError(
                f"Cannot open {self.path} as a DuckDB database ({exc}). Choose another file "
                "with --db PATH, or move this one away to start afresh."
            ) from exc

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
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor inside BEGIN … COMMIT; any exception rolls everything back."""
        cur = self.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
