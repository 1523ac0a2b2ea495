"""What an ingest records about a file in ``datasets`` (and reads back for its report)."""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass, fields
from typing import Any

import duckdb

from mgi_core.store import Store


@dataclass(frozen=True)
class IngestedFile:
    """One ``datasets`` row as an ingest writes it.

    Attributes:
        encoding: the CSV's text encoding, ``'parquet'`` for a Parquet file.
        mapping: ``{canonical column: file column}`` used.
        config: the ingest configuration, as JSON.
        redactions: ``{kind: reviews with at least one redaction}`` (``email``, ``phone``,
            ``url``), stored as JSON; None when the text was stored unredacted (or before
            redaction existed).
        user_id_hashing: how user ids are stored: None (as in the file) or
            ``'sha256-salted'``.
    """

    name: str
    file_name: str
    file_hash: str
    file_format: str
    encoding: str
    delimiter: str | None
    mapping: dict[str, str]
    config: str
    n_reviews: int
    n_users: int
    n_items: int
    n_l1: int
    n_l2: int
    n_l3: int
    n_rejected: int
    has_timestamp: bool
    redactions: dict[str, int] | None = None  # {kind: reviews redacted}; None: not redacted
    user_id_hashing: str | None = None  # 'sha256-salted' (ingest_sql.HASHED_USER_IDS) or None
    user_id_salt_check: str | None = None  # data.privacy.salt_check of the salt (not the salt)


_COLUMNS = ", ".join(f.name for f in fields(IngestedFile))


def register_dataset(tx: duckdb.DuckDBPyConnection, entry: IngestedFile) -> None:
    """Insert the registry row of a new dataset, on the ingest's transaction cursor."""
    values: list[Any] = list(astuple(entry))
    names = [f.name for f in fields(IngestedFile)]
    values[names.index("mapping")] = json.dumps(entry.mapping)
    if entry.redactions is not None:
        values[names.index("redactions")] = json.dumps(entry.redactions, sort_keys=True)
    tx.execute(
        f"INSERT INTO datasets ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values
    )


def registered_file(store: Store, name: str) -> IngestedFile | None:
    """The registry row of dataset ``name`` as its ingest wrote it; None when absent."""
    row = store.cursor().execute(
        f"SELECT {_COLUMNS} FROM datasets WHERE name = ?", [name]
    ).fetchone()
    if row is None:
        return None
    values = dict(zip((f.name for f in fields(IngestedFile)), row, strict=True))
    values["mapping"] = json.loads(values["mapping"])
    if values["redactions"] is not None:
        values["redactions"] = json.loads(values["redactions"])
    return IngestedFile(**values)


def stored_rejects_by_reason(store: Store, name: str) -> dict[str, int]:
    """How many rows of dataset ``name`` each reason rejected, most first."""
    return dict(
        store.cursor().execute(
            "SELECT reason, count(*) FROM ingest_rejects WHERE dataset = ? GROUP BY reason "
            "ORDER BY count(*) DESC",
            [name],
        ).fetchall()
    )
