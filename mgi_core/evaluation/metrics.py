"""Metrics as pure functions over arrays: no model, no database, no I/O."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from mgi_core.systems import NO_CATEGORY  # re-exported: the label of an item without one

# --------------------------------------------------------------------------------------
# Classification metrics of the training tasks: thin wrappers over scikit-learn that
# return NaN where the metric is undefined instead of raising or warning. scikit-learn is
# imported inside them so that the pages importing this module for the ranking metrics do
# not pay for it.
# --------------------------------------------------------------------------------------


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``; ties count half).

    Args:
        labels: (n,) binary labels (bool or 0/1).
        scores: (n,) float scores, higher = more likely positive.

    Returns:
        The AUC, or NaN when only one class (or nothing) is present.
    """
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():  # one class, or empty: undefined
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in ``y_true`` or ``y_pred``.

    ``sklearn.metrics.f1_score(average="macro", zero_division=0)``: a class that is never
    predicted, or never true, scores 0. NaN for empty input.
    """
    from sklearn.metrics import f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.size == 0:
        return float("nan")
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of correct predictions (``sklearn.metrics.accuracy_score``); NaN for empty input."""
    from sklearn.metrics import accuracy_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.size == 0:
        return float("nan")
    return float(accuracy_score(y_true, y_pred))


def recall_at_k_matrix(similarity: np.ndarray, k: int) -> float:
    """Share of rows whose diagonal entry is among the row's top ``k``.

    ``similarity`` (n, n): anchors × candidates, the true candidate of row i is column i.
    Ties count against the true candidate (strictly greater scores rank above it).
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.size == 0:
        return float("nan")
    true = np.diag(sim)[:, None]
    rank = (sim > true).sum(axis=1)  # 0 = best
    return float(np.mean(rank < k))


# --------------------------------------------------------------------------------------
# Ranking metrics for one user (binary relevance).
#
# ``ranked`` holds distinct item indices, best first; ``relevant`` is any collection of
# item indices. A user with no relevant item has no defined score: the functions return
# NaN so that ``np.nanmean`` over users leaves them out instead of counting them as 0.
# --------------------------------------------------------------------------------------


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _ranked_and_relevant(
    ranked: Sequence[int] | np.ndarray, relevant: Iterable[int]
) -> tuple[np.ndarray, np.ndarray]:
    ranked = np.asarray(ranked).ravel()
    if ranked.size and np.unique(ranked).size != ranked.size:
        raise ValueError("ranked must not repeat an item; deduplicate the list first")
    rel = np.fromiter((int(i) for i in relevant), dtype=np.int64)
    return ranked, np.unique(rel)


def recall_at_k(ranked: Sequence[int] | np.ndarray, relevant: Iterable[int], k: int) -> float:
    """|top-k ∩ relevant| / |relevant|; NaN when ``relevant`` is empty."""
    k = _check_k(k)
    ranked, rel = _ranked_and_relevant(ranked, relevant)
    if rel.size == 0:
        return float("nan")
    return float(np.isin(ranked[:k], rel).sum() / rel.size)


def hit_rate_at_k(ranked: Sequence[int] | np.ndarray, relevant: Iterable[int], k: int) -> float:
    """1.0 when any relevant item is in the top ``k``, else 0.0; NaN when ``relevant`` is empty."""
    k = _check_k(k)
    ranked, rel = _ranked_and_relevant(ranked, relevant)
    if rel.size == 0:
        return float("nan")
    return float(np.isin(ranked[:k], rel).any())


def ndcg_at_k(ranked: Sequence[int] | np.ndarray, relevant: Iterable[int], k: int) -> float:
    """Normalised discounted cumulative gain at ``k`` with binary gains.

    DCG = Σ_{r < k, ranked[r] relevant} 1 / log2(r + 2) over 0-based ranks r; the ideal DCG
    puts min(|relevant|, k) relevant items first. NaN when ``relevant`` is empty.
    """
    k = _check_k(k)
    ranked, rel = _ranked_and_relevant(ranked, relevant)
    if rel.size == 0:
        return float("nan")
    hits = np.isin(ranked[:k], rel)  # (min(k, len(ranked)),)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))  # (k,)
    dcg = float(discounts[: hits.size][hits].sum())
    idcg = float(discounts[: min(rel.size, k)].sum())
    return dcg / idcg


def mrr(ranked: Sequence[int] | np.ndarray, relevant: Iterable[int]) -> float:
    """Reciprocal rank 1 / (r + 1) of the first relevant item in ``ranked`` (0-based r).

    0.0 when no relevant item appears in ``ranked``; NaN when ``relevant`` is empty.
    """
    ranked, rel = _ranked_and_relevant(ranked, relevant)
    if rel.size == 0:
        return float("nan")
    hits = np.flatnonzero(np.isin(ranked, rel))
    return float(1.0 / (hits[0] + 1)) if hits.size else 0.0


# --------------------------------------------------------------------------------------
# Vectorised leave-last-out protocol: one held-out target item per user, full ranking
# over the items the user did not see in train.
#
# Tie rule, shared by ``target_ranks`` and ``top_k``: items are ordered by descending
# score and equal scores by ascending item index, i.e. exactly the order of
# ``np.argsort(-scores, kind="stable")``. It is deterministic and neither optimistic nor
# pessimistic by construction; a model that scores everything equally gets the rank of
# the target's index among the candidates, not a free hit.
# --------------------------------------------------------------------------------------

_CHUNK_CELLS = 1 << 22  # ~4M cells per block of users keeps temporaries around 32 MB


def _rows_per_chunk(n_items: int) -> int:
    return max(1, _CHUNK_CELLS // max(1, n_items))


def _check_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)  # float32 stays float32: no copy of a big matrix
    if scores.ndim != 2:
        raise ValueError(f"scores must be a (n_users, n_items) array, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; replace them (e.g. with -inf) before ranking")
    return scores


def _check_exclude(exclude, shape: tuple[int, int]):
    """None, a dense bool array or a scipy.sparse matrix/array (as CSR) of ``shape``."""
    if exclude is None:
        return None
    if sp.issparse(exclude):
        exclude = sp.csr_array(exclude, copy=True)  # copy: the caller's matrix stays as is
        exclude.sum_duplicates()
        exclude.eliminate_zeros()  # explicit False entries are not exclusions
    else:
        exclude = np.asarray(exclude, dtype=bool)
    if exclude.shape != shape:
        raise ValueError(f"exclude has shape {exclude.shape}, scores have shape {shape}")
    return exclude


def _dense_rows(exclude, start: int, stop: int) -> np.ndarray | None:
    if exclude is None:
        return None
    if sp.issparse(exclude):
        return exclude[start:stop].toarray().astype(bool)
    return exclude[start:stop]


def target_ranks(
    scores: np.ndarray,
    targets: np.ndarray,
    exclude: np.ndarray | sp.sparray | sp.spmatrix | None = None,
) -> np.ndarray:
    """0-based rank of each user's target among the items not excluded for that user.

    rank[u] = #{j not excluded : scores[u, j] > scores[u, t]}
            + #{j not excluded : scores[u, j] == scores[u, t] and j < t},   t = targets[u]

    which is the target's position in ``np.argsort(-scores[u], kind="stable")`` after the
    excluded items are removed (module tie rule: equal scores, lower item index first).
    The target's own ``exclude`` flag is ignored: it is the item being ranked.

    Args:
        scores: (n_users, n_items) float scores, higher is better; NaN is rejected.
        targets: (n_users,) int, the held-out item of each user.
        exclude: (n_users, n_items) bool, dense or scipy.sparse (True = seen in train,
            never ranked), or None.

    Returns:
        (n_users,) int64 ranks, 0 = best.
    """
    scores = _check_scores(scores)
    n_users, n_items = scores.shape
    targets = np.asarray(targets)
    if targets.shape != (n_users,) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(
            f"targets must be ({n_users},) integers, got {targets.dtype} {targets.shape}"
        )
    if n_users and (targets.min() < 0 or targets.max() >= n_items):
        raise ValueError(
            f"targets must lie in [0, {n_items}), got {targets.min()}...{targets.max()}"
        )
    exclude = _check_exclude(exclude, scores.shape)
    rows = np.arange(n_users)
    t_score = scores[rows, targets]  # (n_users,)

    dense_exclude = exclude if isinstance(exclude, np.ndarray) else None
    ranks = np.empty(n_users, dtype=np.int64)
    cols = np.arange(n_items)
    step = _rows_per_chunk(n_items)
    for start in range(0, n_users, step):
        stop = min(start + step, n_users)
        s, ts, tg = scores[start:stop], t_score[start:stop, None], targets[start:stop, None]
        ahead = (s > ts) | ((s == ts) & (cols < tg))  # (b, n_items): ordered before the target
        if dense_exclude is not None:
            ahead &= ~dense_exclude[start:stop]
        ranks[start:stop] = ahead.sum(axis=1)
    if sp.issparse(exclude) and exclude.nnz:
        # Sparse exclusions: take back the excluded items that were counted, touching only
        # the stored entries instead of densifying the matrix.
        ex_rows = np.repeat(rows, np.diff(exclude.indptr))  # (nnz,)
        ex_cols = exclude.indices
        ex_s, ex_ts = scores[ex_rows, ex_cols], t_score[ex_rows]
        ahead = (ex_s > ex_ts) | ((ex_s == ex_ts) & (ex_cols < targets[ex_rows]))
        ranks -= np.bincount(ex_rows[ahead], minlength=n_users)
    return ranks


def metrics_from_ranks(ranks: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user metrics for one held-out item per user, from its 0-based rank.

    With a single relevant item, recall@k = hit@k = [rank < k], NDCG@k = 1 / log2(rank + 2)
    when rank < k else 0 (the ideal DCG is 1), and MRR = 1 / (rank + 1) over the full
    ranking (no cut-off).

    Returns:
        ``{"recall@k", "ndcg@k", "hit@k", "mrr"}`` (with the number in place of k), each a
        (n_users,) float64 array.
    """
    k = _check_k(k)
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or (ranks.size and not np.issubdtype(ranks.dtype, np.integer)):
        raise ValueError("ranks must be a 1-D integer array (0 = best)")
    if ranks.size and ranks.min() < 0:
        raise ValueError("ranks are 0-based and must be >= 0")
    ranks = ranks.astype(np.int64)
    hit = (ranks < k).astype(np.float64)
    ndcg = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return {
        f"recall@{k}": hit.copy(),
        f"ndcg@{k}": ndcg,
        f"hit@{k}": hit,
        "mrr": 1.0 / (ranks + 1.0),
    }


def top_k(
    scores: np.ndarray,
    k: int,
    exclude: np.ndarray | sp.sparray | sp.spmatrix | None = None,
) -> np.ndarray:
    """Indices of the ``k`` best non-excluded items per user, best first.

    Same order as the head of ``np.argsort(-scores[u], kind="stable")`` with the excluded
    items removed (module tie rule), found with ``argpartition``-style selection in
    O(n_items) per user plus a sort of only ``k`` entries.

    Args:
        scores: (n_users, n_items) float scores; NaN is rejected.
        k: list length.
        exclude: (n_users, n_items) bool, dense or scipy.sparse (True = never returned).

    Returns:
        (n_users, k) int64 item indices. A user with fewer than ``k`` candidates gets
        their whole candidate list padded with -1 at the end.
    """
    k = _check_k(k)
    scores = _check_scores(scores)
    n_users, n_items = scores.shape
    exclude = _check_exclude(exclude, scores.shape)
    out = np.full((n_users, k), -1, dtype=np.int64)
    if n_items == 0:
        return out
    kk = min(k, n_items)
    step = _rows_per_chunk(n_items)
    starts = range(0, n_users, step)
    workers = min(len(starts), _selection_threads())
    if workers > 1:  # chunks are independent, and numpy lets go of the GIL while it works
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda a: _top_k_rows(scores, exclude, out, a, step, k, kk), starts))
    else:
        for start in starts:
            _top_k_rows(scores, exclude, out, start, step, k, kk)
    return out


def _selection_threads() -> int:
    """Threads ``top_k`` selects with: the CPUs this process may use, at most 4."""
    try:
        return max(1, min(4, len(os.sched_getaffinity(0))))
    except AttributeError:  # not Linux
        return max(1, min(4, os.cpu_count() or 1))


def _top_k_rows(scores: np.ndarray, exclude, out: np.ndarray, start: int, step: int, k: int,
                kk: int) -> None:
    """``top_k`` of rows ``start`` to ``start + step`` into the same rows of ``out``."""
    n_users, n_items = scores.shape
    stop = min(start + step, n_users)
    s = scores[start:stop]  # (b, n_items)
    b = stop - start
    ex = _dense_rows(exclude, start, stop)
    masked = s if ex is None else np.where(ex, -np.inf, s)
    fast = _top_k_by_block_bound(s, masked, ex, k, kk)
    if fast is not None:
        out[start:stop] = fast
        return
    # kth = the kk-th largest masked score. Everything strictly above it is in the list
    # (excluded items are -inf and never above); the remaining places go to the
    # lowest-index non-excluded items equal to it.
    kth = np.partition(masked, n_items - kk, axis=1)[:, n_items - kk, None]  # (b, 1)
    above = masked > kth
    tied = masked == kth
    if ex is not None:
        tied &= ~ex
    room = kk - above.sum(axis=1)  # (b,)
    crowded = np.flatnonzero(tied.sum(axis=1) > room)  # rows with more ties than places
    if crowded.size:
        sub = tied[crowded]
        tied[crowded] = sub & (np.cumsum(sub, axis=1) <= room[crowded, None])
    r, c = np.nonzero(above | tied)  # <= kk per row; row-major, columns ascending
    per_row = np.bincount(r, minlength=b)
    row_start = np.cumsum(per_row) - per_row
    pos = np.arange(r.size) - row_start[r]  # slot within the row
    block = np.full((b, k), -1, dtype=np.int64)
    block[r, pos] = c
    # Sort each row by (padding last, score descending, item index ascending).
    pad = block < 0
    key_score = np.where(pad, 0.0, s[np.arange(b)[:, None], np.maximum(block, 0)])
    key_index = np.where(pad, n_items, block)
    order = np.lexsort((key_index, -key_score, pad), axis=1)
    out[start:stop] = np.take_along_axis(block, order, axis=1)


_BLOCK = 128  # items per block for the block-max bound
_MAX_CANDIDATES = 64  # per row on average; above it (many ties) the partition path is used


def _top_k_by_block_bound(
    s: np.ndarray, masked: np.ndarray, ex: np.ndarray | None, k: int, kk: int
) -> np.ndarray | None:
    """``top_k`` of one chunk by a block-max bound, or None when ties make it no faster.

    The kk-th largest of a row's block maxima is a lower bound on the row's kk-th largest
    score (kk distinct blocks each hold an item at least that large), so the list is among
    the few items at or above it: one max-reduction and one comparison replace a partition
    of the whole row, and only the candidates are sorted (score descending, item index
    ascending: the module's tie rule). Rows of many tied scores (popularity) give many
    candidates; then the caller's partition path runs instead.
    """
    b, n_items = s.shape
    width = max(1, min(_BLOCK, n_items // kk))  # at least kk blocks
    block_max = np.maximum.reduceat(masked, np.arange(0, n_items, width), axis=1)  # (b, m)
    m = block_max.shape[1]
    bound = np.partition(block_max, m - kk, axis=1)[:, m - kk]  # (b,)
    candidate = masked >= bound[:, None]
    if ex is not None:
        candidate &= ~ex
    rows, cols = np.nonzero(candidate)  # row-major
    if rows.size > _MAX_CANDIDATES * b + 4 * k * b:
        return None
    order = np.lexsort((cols, -s[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    slot = np.arange(rows.size) - np.searchsorted(rows, np.arange(b))[rows]
    keep = slot < kk
    out = np.full((b, k), -1, dtype=np.int64)
    out[rows[keep], slot[keep]] = cols[keep]
    return out


# --------------------------------------------------------------------------------------
# Beyond-accuracy metrics.
# --------------------------------------------------------------------------------------


def catalog_coverage(rec_lists: np.ndarray, n_items: int) -> float:
    """Share of the catalogue recommended to at least one user.

    Args:
        rec_lists: (n_users, k) int item indices; negative entries (padding) are ignored.
        n_items: catalogue size.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    items = np.asarray(rec_lists).ravel()
    items = items[items >= 0]
    if items.size and items.max() >= n_items:
        raise ValueError(f"rec_lists holds item {items.max()}, outside [0, {n_items})")
    return float(np.unique(items).size / n_items)


def intra_list_diversity(rec_list: np.ndarray, item_vectors: np.ndarray) -> float:
    """Mean pairwise cosine distance 1 - cos(v_i, v_j) over pairs i < j of one list.

    Rows of ``item_vectors`` are expected L2-normalised; they are normalised again here so
    that the result is a true cosine either way (a zero vector counts as orthogonal to all).
    Negative entries (padding) in ``rec_list`` are ignored. NaN for fewer than 2 items.

    Args:
        rec_list: (k,) int item indices.
        item_vectors: (n_items, d) float.
    """
    idx = np.asarray(rec_list).ravel()
    idx = idx[idx >= 0]
    if idx.size < 2:
        return float("nan")
    v = np.asarray(item_vectors, dtype=np.float64)[idx]  # (k, d)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    cos = v @ v.T  # (k, k)
    iu = np.triu_indices(idx.size, k=1)
    return float(np.mean(1.0 - cos[iu]))




def _is_missing(label: object) -> bool:
    """None or a float NaN (pandas' missing label); NaN != NaN would split it per item."""
    return label is None or (isinstance(label, float) and math.isnan(label))


def category_entropy(categories: Sequence[str | None]) -> float:
    """Shannon entropy in bits of the category distribution within one list.

    H = -Σ_c p_c log2 p_c with p_c the share of the list in category c; ``None`` counts as
    its own category ``"(none)"``, and so does a float NaN (a missing label from pandas).
    0.0 for a single-category list, log2(k) for k items all in different categories, NaN
    for an empty list.
    """
    counts = Counter(NO_CATEGORY if _is_missing(c) else c for c in categories)
    if not counts:
        return float("nan")
    p = np.fromiter(counts.values(), dtype=np.float64)
    p /= p.sum()
    return float(-(p * np.log2(p)).sum() + 0.0)  # + 0.0 turns -0.0 into 0.0


def list_category_ranks(
    tops: np.ndarray, item_codes: np.ndarray, target_codes: np.ndarray,
    popularity_rank: np.ndarray,
) -> np.ndarray:
    """0-based rank of each user's target category among all categories, as a top-k list
    puts them: the categories in the list by their discounted count (Σ 1 / log2(position +
    2) over the list's items in the category, highest first), then the others; ties by
    global popularity (``popularity_rank``, 0 = most popular). -1 where the user has no
    target category.

    So rank 0 means the list leads with the category of the user's next item: the question
    a reader of the list asks ("is the top interest right?"), answered by the ranking.

    Args:
        tops: (n_users, k) item indices, -1 = padding.
        item_codes: (n_items,) category code of each item, -1 = none.
        target_codes: (n_users,) code of the held-out item's category, -1 = none.
        popularity_rank: (n_categories,) 0-based popularity rank of each code.
    """
    tops = np.asarray(tops, dtype=np.int64)
    item_codes = np.asarray(item_codes, dtype=np.int64)
    target_codes = np.asarray(target_codes, dtype=np.int64)
    popularity_rank = np.asarray(popularity_rank, dtype=np.int64)
    n_users, k = tops.shape
    codes = np.where(tops >= 0, item_codes[np.maximum(tops, 0)], -1)  # (n, k)
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    ranks = np.full(n_users, -1, dtype=np.int64)
    for row in np.flatnonzero(target_codes >= 0):
        target = target_codes[row]
        positions = np.flatnonzero(codes[row] >= 0)
        cats, inverse = np.unique(codes[row][positions], return_inverse=True)
        weights = np.bincount(inverse, weights=discount[positions], minlength=len(cats))
        w_target = float(weights[cats == target].sum())
        pop_target = popularity_rank[target]
        others = cats != target
        ahead = int(((weights > w_target) | ((weights == w_target)
                                             & (popularity_rank[cats] < pop_target)))[others]
                    .sum())
        if w_target == 0.0:  # unlisted categories more popular than the target come first
            ahead += int((popularity_rank < pop_target).sum()
                         - (popularity_rank[cats[others]] < pop_target).sum())
        ranks[row] = ahead
    return ranks
