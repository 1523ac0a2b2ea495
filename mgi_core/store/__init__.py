"""DuckDB storage: schema, connection discipline, queries."""

from __future__ import annotations

from mgi_core.store.connection import DEFAULT_DB_PATH, Store, resolve_db_path
from mgi_core.store.schema import SCHEMA_VERSION

__all__ = ["DEFAULT_DB_PATH", "SCHEMA_VERSION", "Store", "resolve_db_path"]
