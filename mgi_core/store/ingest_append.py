"""Appending a review file to a stored dataset: the SQL an append adds to an ingest.

An append validates its file exactly as an ingest does (``ingest_validate``), then:

- rejects rows whose (user_id, item_id) the dataset already holds (``mark_stored_pairs``);
- stores the valid rows as new reviews (``ingest_write.write_reviews``: review ids after
  every stored one, text redacted as at ingest), provisionally in ``train``;
- merges their items into ``items`` (new items with their category; a stored item keeps its
  category and gains the reviews);
- splits again the users it touched (``resplit_touched``), by the rule in the README
  ("Appending reviews"): leave-last-out over all of the user's reviews, unless that would
  take a review out of ``train`` — then the user's reviews all stay in ``train``. Untouched
  users keep their split;
- updates the registry's counts and records the append in ``dataset_appends``.

Everything runs on the append's transaction (:class:`IngestRun`): a failure stores nothing.
"""

from __future__ import annotations

import json
import uuid

import duckdb

from mgi_core.config import SplitConfig
from mgi_core.store import Store
from mgi_core.store.ingest_run import IngestRun
from mgi_core.store.ingest_write import write_items

ALREADY_STORED = "already stored (user_id, item_id)"


def mark_stored_pairs(run: IngestRun, dataset: str) -> int:
    """Reject the valid rows whose (user_id, item_id) ``dataset`` already holds; return how
    many."""
    tx, t = run.tx, run.tables
    before = tx.execute(f"SELECT count(*) FROM {t.raw} WHERE reason IS NULL").fetchall()[0][0]
    tx.execute(
        f"""UPDATE {t.raw} AS f SET reason = ?
            WHERE f.reason IS NULL AND EXISTS (
                SELECT 1 FROM reviews r WHERE r.dataset = ? AND r.user_id = f.user_id
                AND r.item_id = f.item_id)""",
        [ALREADY_STORED, dataset],
    )
    after = tx.execute(f"SELECT count(*) FROM {t.raw} WHERE reason IS NULL").fetchall()[0][0]
    return int(before - after)


def provisional_splits(run: IngestRun) -> None:
    """Temp table ``t.spl`` for the second pass: every valid row in ``train`` (NULL split:
    rejected), in ``t.raw``'s order; ``resplit_touched`` sets the final split."""
    run.tx.execute(
        f"""CREATE TEMP TABLE {run.tables.spl} AS
            SELECT row_number, CASE WHEN reason IS NULL THEN 'train' END AS split
            FROM {run.rows} ORDER BY rid"""
    )


def next_review_id(tx: duckdb.DuckDBPyConnection) -> int:
    """The review id the next stored row gets: one past every stored one."""
    return int(tx.execute("SELECT coalesce(max(review_id), 0) + 1 FROM reviews").fetchall()[0][0])


def merge_items(run: IngestRun, dataset: str, category_separator: str) -> int:
    """The appended rows' items into ``items``: a new item as an ingest writes it, a stored
    one gains its new reviews (and a title when it had none). Returns the new items."""
    tx, staged = run.tx, f"{run.tables.items}"
    tx.execute(f"CREATE TEMP TABLE {staged} AS SELECT * FROM items LIMIT 0")
    write_items(run, dataset, category_separator, into=staged)
    tx.execute(
        f"""UPDATE items SET n_reviews = items.n_reviews + s.n_reviews,
                             title = coalesce(items.title, s.title)
            FROM {staged} s WHERE items.dataset = ? AND items.item_id = s.item_id""",
        [dataset],
    )
    n_new = tx.execute(
        f"""INSERT INTO items SELECT s.* FROM {staged} s
            WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.dataset = ? AND
                              i.item_id = s.item_id)""",
        [dataset],
    ).fetchall()[0][0]
    tx.execute(f"DROP TABLE {staged}")
    return int(n_new)


def resplit_touched(tx: duckdb.DuckDBPyConnection, dataset: str, first_id: int,
                    config: SplitConfig) -> int:
    """Split again the users with reviews from ``first_id`` on (the appended ones).

    Over each such user's reviews, stored and appended (newest first by timestamp, missing
    times last, ties: the later review id), the latest goes to ``test`` and the one before
    to ``val`` when the user has ``min_reviews`` reviews, the rest to ``train`` — unless one
    of those two is a stored ``train`` review: then every review of the user is ``train``,
    as nothing that a version may have trained on becomes held out. Returns the number of
    stored held-out reviews that moved to ``train``.
    """
    resplit = f"_mgi_resplit_{uuid.uuid4().hex[:12]}"
    tx.execute(
        f"""CREATE TEMP TABLE {resplit} AS
            WITH touched AS (SELECT DISTINCT user_id FROM reviews
                             WHERE dataset = ? AND review_id >= ?),
                 u AS (SELECT r.review_id, r.user_id, r.split, r.review_id >= ? AS appended,
                              count(*) OVER (PARTITION BY r.user_id) AS n,
                              row_number() OVER (PARTITION BY r.user_id
                                                 ORDER BY r.ts DESC NULLS LAST,
                                                          r.review_id DESC) AS recency
                       FROM reviews r JOIN touched USING (user_id) WHERE r.dataset = ?),
                 blocked AS (SELECT DISTINCT user_id FROM u
                             WHERE recency <= 2 AND split = 'train' AND NOT appended)
            SELECT review_id, appended, split AS old,
                   CASE WHEN n >= {int(config.min_reviews)}
                             AND user_id NOT IN (SELECT user_id FROM blocked)
                        THEN CASE recency WHEN 1 THEN 'test' WHEN 2 THEN 'val' ELSE 'train' END
                        ELSE 'train' END AS split
            FROM u""",
        [dataset, first_id, first_id, dataset],
    )
    moved = tx.execute(
        f"SELECT count(*) FILTER (WHERE NOT appended AND old <> 'train' AND split = 'train') "
        f"FROM {resplit}").fetchall()[0][0]
    tx.execute(
        f"""UPDATE reviews SET split = s.split FROM {resplit} AS s
            WHERE reviews.review_id = s.review_id AND reviews.split <> s.split"""
    )
    tx.execute(f"DROP TABLE {resplit}")
    return int(moved)


def appended_users(tx: duckdb.DuckDBPyConnection, dataset: str,
                   first_id: int) -> tuple[int, int]:
    """(users with appended reviews, of whom new to the dataset)."""
    n, new = tx.execute(
        """WITH a AS (SELECT DISTINCT user_id FROM reviews WHERE dataset = ? AND review_id >= ?)
           SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM reviews r WHERE r.dataset = ? AND r.review_id < ?
               AND r.user_id = a.user_id))
           FROM a""",
        [dataset, first_id, dataset, first_id],
    ).fetchall()[0]
    return int(n), int(new)


def refresh_counts(tx: duckdb.DuckDBPyConnection, dataset: str, n_rejected: int,
                   redactions: dict[str, int] | None = None) -> None:
    """The registry row's counts after an append (``n_rejected``: the append's rejects;
    ``redactions``: its reviews redacted per kind, added to the dataset's)."""
    if redactions:
        stored = tx.execute("SELECT redactions FROM datasets WHERE name = ?",
                            [dataset]).fetchall()[0][0]
        total = json.loads(stored) if stored else {}
        for kind, n in redactions.items():
            total[kind] = int(total.get(kind, 0)) + int(n)
        tx.execute("UPDATE datasets SET redactions = ? WHERE name = ?",
                   [json.dumps(total), dataset])
    tx.execute(
        """UPDATE datasets SET
               n_reviews = c.n_reviews, n_users = c.n_users, n_items = c.n_items,
               n_l1 = c.n_l1, n_l2 = c.n_l2, n_l3 = c.n_l3,
               n_rejected = datasets.n_rejected + ?,
               has_timestamp = datasets.has_timestamp OR c.has_ts
           FROM (SELECT (SELECT count(*) FROM reviews WHERE dataset = ?) AS n_reviews,
                        (SELECT count(DISTINCT user_id) FROM reviews WHERE dataset = ?)
                            AS n_users,
                        (SELECT count(*) FROM items WHERE dataset = ?) AS n_items,
                        (SELECT count(DISTINCT l1) FROM items WHERE dataset = ?) AS n_l1,
                        (SELECT count(DISTINCT l2) FROM items WHERE dataset = ?) AS n_l2,
                        (SELECT count(DISTINCT l3) FROM items WHERE dataset = ?) AS n_l3,
                        (SELECT count(ts) > 0 FROM reviews WHERE dataset = ?) AS has_ts) AS c
           WHERE datasets.name = ?""",
        [n_rejected, *([dataset] * 7), dataset],
    )


def record_append(tx: duckdb.DuckDBPyConnection, dataset: str, file_name: str,
                  file_hash: str, first_id: int, last_id: int, n_reviews: int,
                  n_rejected: int,
                  n_users: int, n_new_users: int, n_moved: int,
                  redactions: dict[str, int] | None) -> int:
    """A ``dataset_appends`` row; returns its sequence number (1 for the first append)."""
    seq = tx.execute("SELECT coalesce(max(seq), 0) + 1 FROM dataset_appends WHERE dataset = ?",
                     [dataset]).fetchall()[0][0]
    tx.execute(
        """INSERT INTO dataset_appends (dataset, seq, file_name, file_hash, first_review_id,
               last_review_id, n_reviews, n_rejected, n_users, n_new_users, n_moved,
               redactions)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [dataset, seq, file_name, file_hash, first_id, last_id,
         n_reviews, n_rejected, n_users, n_new_users, n_moved,
         json.dumps(redactions) if redactions else None],
    )
    return int(seq)


def list_appends(store: Store, dataset: str) -> list[dict[str, object]]:
    """The appends of a dataset, first first."""
    cur = store.cursor().execute(
        "SELECT seq, file_name, n_reviews, n_rejected, n_users, n_new_users, n_moved, "
        "appended_at FROM dataset_appends WHERE dataset = ? ORDER BY seq", [dataset])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
