"""DuckDB settings an ingest changes (memory limit, insertion order, write buffering), each
restored to its previous value afterwards."""

from __future__ import annotations

import re
from typing import Any

import duckdb

from mgi_core.store.sql import quote_literal

# DuckDB's memory limit while ingesting (never above the store's own): the narrow tables
# spill to disk past it, and the blocks written for ``reviews`` leave the buffer pool instead
# of piling up. While ``reviews`` is written it is at least 2.5 row groups of the file's
# rows (DuckDB fills a row group of 122,880 rows in memory before compressing it).
MEMORY_LIMIT = 384 * 1024 * 1024
ROW_GROUP_ROWS = 122_880

_UNITS = {"bytes": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def setting_bytes(text: str) -> float:
    """``'18.7 GiB'`` (as DuckDB shows a memory setting) in bytes; inf when unreadable."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m[2].lower() not in _UNITS:
        return float("inf")
    return float(m[1]) * _UNITS[m[2].lower()]


class IngestSettings:
    """DuckDB settings changed for one ingest, each restored to its previous value on exit.

    They are GLOBAL settings of the DuckDB instance and not transactional (a rollback keeps
    them), so they are restored whatever happens, after the transaction has ended.
    ``memory_limit`` is only ever lowered below its previous value.

    Args:
        cur: the store's cursor the ingest runs on.
        memory_cap: the ingest's ``memory_limit`` in bytes (None: the store's own).
    """

    def __init__(self, cur: duckdb.DuckDBPyConnection, memory_cap: int | None) -> None:
        self.cur = cur
        self.before: dict[str, Any] = {}
        self.memory_cap = memory_cap

    def __enter__(self) -> IngestSettings:
        if self.memory_cap:
            self.set(memory_limit=self.memory_cap)
        return self

    def uncap(self) -> None:
        """The store's own memory_limit for the rest of the ingest."""
        self.memory_cap = None
        self.reset("memory_limit")

    def _current(self, name: str) -> Any:
        return self.cur.execute("SELECT current_setting(?)", [name]).fetchone()[0]

    def set(self, **values: Any) -> None:
        """Change settings by name (``memory_limit`` in bytes, only ever lowered)."""
        for name, value in values.items():
            current = self._current(name)
            if name == "memory_limit":
                if setting_bytes(self.before.get(name, current)) <= value:
                    self.reset(name)
                    continue
                value = f"{int(value)} bytes"
            elif current == value:
                continue
            self.before.setdefault(name, current)
            self.cur.execute(f"SET {name} = {quote_literal(value)}")

    def reset(self, name: str) -> None:
        """Back to the value it had before this ingest."""
        if name not in self.before:
            return
        before = self.before.pop(name)
        if name == "memory_limit":
            # Shown rounded ('2.7 GiB' is 2.7 to 2.8 GiB): RESET when it was the default,
            # else the middle of that range, so that repeated ingests do not drift.
            self.cur.execute(f"RESET {name}")
            if self._current(name) == before:
                return
            m = re.fullmatch(r"\s*(\d+)\.(\d)\s*(\w+)\s*", str(before))
            if m:
                before = f"{m[1]}.{m[2]}5 {m[3]}"
        self.cur.execute(f"SET {name} = {quote_literal(before)}")

    def __exit__(self, *exc: object) -> None:
        for name in reversed(list(self.before)):
            self.reset(name)
