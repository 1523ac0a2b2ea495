"""DuckDB storage, and all of MGI's SQL.

``Store`` (connection.py) opens and migrates the file (schema.py); one module per table family
(``datasets``, ``versions``, ``embeddings``, ``jobs``, …) reads and writes its rows with typed
functions; ``queries`` is the read model the pages draw; ``sql`` quotes the few names and
literals that cannot be ``?`` parameters.
"""

from __future__ import annotations

from mgi_core.store.connection import DEFAULT_DB_PATH, Store, resolve_db_path
from mgi_core.store.schema import SCHEMA_VERSION

__all__ = ["DEFAULT_DB_PATH", "SCHEMA_VERSION", "Store", "resolve_db_path"]
