"""What the Metrics and Compare pages read: stored evaluations, per-user pairs, categories.

Everything here aggregates in DuckDB and returns small frames (one row per system, per
category, or a bounded number of users), so a page never loads every per-user row of a
large dataset into pandas; nothing writes. Systems are named as in
:mod:`mgi_core.systems`: ``"version:scorer"``. A user's top-k lists
under a system are ranked, not read: ``mgi_core.ranking.recommend.Recommender.top_k``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mgi_core.store import Store
from mgi_core.store.embeddings import embedded_datasets
from mgi_core.systems import HEADLINE_METRICS, NO_CATEGORY, parse_spec

# Columns of evaluation_table after the system's own, in this order when present.
EVALUATION_METRICS = (*HEADLINE_METRICS, "hit@20", "coverage@10", "diversity@10",
                      "category_entropy@10")
_SYSTEM_ORDER = "(v.kind = 'base') DESC NULLS LAST, v.created_at NULLS LAST, e.version, e.scorer"


def has_embeddings(store: Store, version: str, dataset: str) -> bool:
    """Whether ``version`` has embedded ``dataset`` (needed to rank or evaluate with it), as
    ``mgi_core.store.embeddings.embedded_datasets`` says."""
    return dataset in embedded_datasets(store).get(version, ())


def evaluation_stamp(
    store: Store, dataset: str, system: str, split: str = "test"
) -> str | None:
    """When ``system`` was last evaluated on ``dataset`` (ISO text), or None if never.

    Stored per-user metrics are replaced as a whole by each evaluation, so the stamp
    identifies their content: a cache keyed on it is invalidated by a re-evaluation.
    """
    version, scorer = parse_spec(system)
    row = store.cursor().execute(
        "SELECT max(created_at) FROM evaluations WHERE dataset = ? AND version = ? "
        "AND scorer = ? AND split = ?",
        [dataset, version, scorer, split],
    ).fetchone()
    return None if row[0] is None else row[0].isoformat()


def evaluation_table(store: Store, dataset: str, split: str = "test") -> pd.DataFrame:
    """Stored evaluation results of ``dataset``: one row per (version, scorer).

    Returns:
        Columns ``system`` ('version:scorer'), ``version``, ``scorer``, ``n_users``,
        ``evaluated_at``, then one column per stored metric (headline metrics first, see
        ``EVALUATION_METRICS``). Rows: base first, then versions oldest to newest.
    """
    long = store.cursor().execute(
        f"""SELECT e.version, e.scorer, e.metric, e.value, e.n_users, e.created_at
            FROM evaluations e LEFT JOIN model_versions v ON v.version = e.version
            WHERE e.dataset = ? AND e.split = ?
            ORDER BY {_SYSTEM_ORDER}, e.metric""",
        [dataset, split],
    ).df()
    base = ["system", "version", "scorer", "n_users", "evaluated_at"]
    if long.empty:
        return pd.DataFrame(columns=base)
    keys = ["version", "scorer"]
    systems = long.groupby(keys, sort=False).agg(
        n_users=("n_users", "max"), evaluated_at=("created_at", "max")).reset_index()
    wide = long.pivot_table(index=keys, columns="metric", values="value", aggfunc="first",
                            sort=False)
    metrics = [m for m in EVALUATION_METRICS if m in wide.columns]
    metrics += sorted(m for m in wide.columns if m not in metrics)
    out = systems.merge(wide[metrics].reset_index(), on=keys, how="left")
    out.insert(0, "system", out["version"] + ":" + out["scorer"])
    out["n_users"] = out["n_users"].astype("int64")
    return out[base + metrics].reset_index(drop=True)


def category_metric(
    store: Store, dataset: str, metric: str = "ndcg@10", split: str = "test",
    max_categories: int = 30,
) -> pd.DataFrame:
    """Mean per-user ``metric`` per L1 category of the held-out item, for every system.

    Users are grouped by the L1 of their held-out (``split``) item, as in ``compare``'s
    per-category breakdown; an item without a category counts as ``"(none)"``. Only the
    ``max_categories`` categories with the most evaluated users are kept.

    Returns:
        Long frame with columns ``l1``, ``system``, ``n_users``, ``mean``; categories by
        users (most first), systems in ``evaluation_table`` order.
    """
    return store.cursor().execute(
        """WITH target AS (
                SELECT r.user_id, coalesce(i.l1, ?) AS l1
                FROM reviews r LEFT JOIN items i
                  ON i.dataset = r.dataset AND i.item_id = r.item_id
                WHERE r.dataset = ? AND r.split = ?),
            cell AS (
                SELECT t.l1, m.version, m.scorer, count(*) AS n_users, avg(m.value) AS mean
                FROM per_user_metrics m JOIN target t ON t.user_id = m.user_id
                WHERE m.dataset = ? AND m.split = ? AND m.metric = ? AND NOT isnan(m.value)
                GROUP BY ALL),
            top AS (
                SELECT l1, max(n_users) AS users FROM cell GROUP BY l1
                ORDER BY users DESC, l1 LIMIT ?)
            SELECT c.l1, c.version || ':' || c.scorer AS system, c.n_users, c.mean
            FROM cell c JOIN top USING (l1)
            LEFT JOIN model_versions v ON v.version = c.version
            ORDER BY top.users DESC, c.l1,
                     (v.kind = 'base') DESC NULLS LAST, v.created_at NULLS LAST, c.version,
                     c.scorer""",
        [NO_CATEGORY, dataset, split, dataset, split, metric, int(max_categories)],
    ).df()


def _pairs_sql(order: str | None = None) -> str:
    """(user_id, a, b, diff) of the users both systems have; ``order``: ORDER BY … LIMIT ?."""
    sql = """WITH a AS (SELECT user_id, value FROM per_user_metrics WHERE dataset = ?
                        AND version = ? AND scorer = ? AND split = ? AND metric = ?),
                  b AS (SELECT user_id, value FROM per_user_metrics WHERE dataset = ?
                        AND version = ? AND scorer = ? AND split = ? AND metric = ?)
             SELECT a.user_id, a.value AS a, b.value AS b, b.value - a.value AS diff
             FROM a JOIN b USING (user_id)
             WHERE NOT isnan(a.value) AND NOT isnan(b.value)"""
    return sql + (f" ORDER BY {order} LIMIT ?" if order else "")


def _pair_params(dataset: str, a: str, b: str, metric: str, split: str) -> list[Any]:
    return [dataset, *parse_spec(a), split, metric, dataset, *parse_spec(b), split, metric]


def user_metric_points(
    store: Store, dataset: str, a: str, b: str, metric: str = "ndcg@10",
    split: str = "test", limit: int = 5000,
) -> pd.DataFrame:
    """Users counted per (value under ``a``, value under ``b``) of ``metric``: a scatter.

    Ranking metrics take few distinct values per user (NDCG@10 has 11: one per rank of the
    held-out item in the top 10, and 0), so the users collapse to at most ``limit`` points
    whatever their number.

    Returns:
        Columns ``a``, ``b``, ``n_users``, ``users`` (up to 3 of the user ids there, in
        id order); the most populated points first.
    """
    return store.cursor().execute(
        f"""SELECT a, b, count(*) AS n_users, list(user_id ORDER BY user_id)[1:3] AS users
            FROM ({_pairs_sql()})
            GROUP BY a, b ORDER BY n_users DESC, a, b LIMIT ?""",
        [*_pair_params(dataset, a, b, metric, split), int(limit)],
    ).df()


def win_loss(
    store: Store, dataset: str, a: str, b: str, metric: str = "ndcg@10", split: str = "test"
) -> dict[str, int]:
    """How many users ``b`` serves better, worse, or the same as ``a`` on ``metric``."""
    row = store.cursor().execute(
        f"""SELECT count(*) FILTER (WHERE diff > 0), count(*) FILTER (WHERE diff < 0),
                   count(*) FILTER (WHERE diff = 0)
            FROM ({_pairs_sql()})""",
        _pair_params(dataset, a, b, metric, split),
    ).fetchone()
    return {"better": int(row[0]), "worse": int(row[1]), "same": int(row[2])}


def most_changed_users(
    store: Store, dataset: str, a: str, b: str, metric: str = "ndcg@10",
    split: str = "test", n: int = 5,
) -> pd.DataFrame:
    """The ``n`` users whose ``metric`` moved most between ``a`` and ``b`` (|b - a|).

    Returns:
        Columns ``user_id``, ``a``, ``b``, ``diff``, and the held-out item
        (``item_id``, ``title``); largest change first, ties by user id.
    """
    pairs = store.cursor().execute(
        _pairs_sql("abs(b.value - a.value) DESC, a.user_id"),
        [*_pair_params(dataset, a, b, metric, split), int(n)],
    ).df()
    held_out = store.cursor().execute(
        """SELECT r.user_id, r.item_id, i.title FROM reviews r LEFT JOIN items i
           ON i.dataset = r.dataset AND i.item_id = r.item_id
           WHERE r.dataset = ? AND r.split = ? AND list_contains(?, r.user_id)""",
        [dataset, split, list(pairs["user_id"])],
    ).df()
    return pairs.merge(held_out, on="user_id", how="left")
