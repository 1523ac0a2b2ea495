"""The DuckDB schema, as an ordered list of migrations.

``MIGRATIONS[i]`` moves a database from schema version ``i`` to ``i + 1``. A database is
migrated on open, inside one transaction, so it is either fully at the new version or
untouched. Add a migration at the end; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 0 -> 1: datasets, reviews, items, rejected rows.
    """
    CREATE TABLE datasets (
        name          VARCHAR PRIMARY KEY,
        file_name     VARCHAR NOT NULL,
        file_hash     VARCHAR NOT NULL,
        file_format   VARCHAR NOT NULL,
        encoding      VARCHAR NOT NULL,
        delimiter     VARCHAR,
        mapping       VARCHAR NOT NULL,  -- JSON {canonical column: source column}
        config        VARCHAR NOT NULL,  -- JSON IngestConfig
        n_reviews     BIGINT NOT NULL,
        n_users       BIGINT NOT NULL,
        n_items       BIGINT NOT NULL,
        n_l1          BIGINT NOT NULL,
        n_l2          BIGINT NOT NULL,
        n_l3          BIGINT NOT NULL,
        n_rejected    BIGINT NOT NULL,
        has_timestamp BOOLEAN NOT NULL,
        created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE reviews (
        review_id  BIGINT NOT NULL,     -- unique across datasets
        dataset    VARCHAR NOT NULL,
        row_number BIGINT NOT NULL,     -- 1-based data row in the source file
        user_id    VARCHAR NOT NULL,
        item_id    VARCHAR NOT NULL,
        text       VARCHAR NOT NULL,
        rating     DOUBLE NOT NULL,
        ts         TIMESTAMP,
        split      VARCHAR NOT NULL     -- train | val | test
    );
    CREATE TABLE items (
        dataset   VARCHAR NOT NULL,
        item_id   VARCHAR NOT NULL,
        title     VARCHAR,
        category  VARCHAR,
        l1        VARCHAR,
        l2        VARCHAR,
        l3        VARCHAR,
        n_reviews BIGINT NOT NULL
    );
    CREATE TABLE ingest_rejects (
        dataset    VARCHAR NOT NULL,
        line       BIGINT NOT NULL,     -- physical line where the record starts (header = 1)
        row_number BIGINT NOT NULL,
        reason     VARCHAR NOT NULL,     -- a category, e.g. 'rating is not a number'
        detail     VARCHAR NOT NULL,     -- the specifics, e.g. 'rating "five"'
        user_id    VARCHAR,
        item_id    VARCHAR,
        rating     VARCHAR,
        text       VARCHAR
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

# Tables a caller may name dynamically (identifiers are never taken from user input).
TABLES = frozenset({"datasets", "reviews", "items", "ingest_rejects"})
