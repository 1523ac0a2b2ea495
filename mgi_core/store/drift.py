"""What interest drift reads: whether a dataset's timestamps are dates, and the span of one
user's train reviews.

Small reads only (one row each); the reviews and vectors of the user come through
``store.profiles.train_reviews`` and ``store.embeddings.review_vectors``, as for a stored
profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mgi_core.store import Store

# Timestamps all below this many seconds after 1970 are sequence numbers that only order
# the reviews (ingest's ``ORDER_ONLY`` reading), not dates.
ORDER_ONLY_BELOW_S = 100_000_000


@dataclass(frozen=True)
class DatasetTimes:
    """When a dataset's reviews were written, as far as its timestamps say.

    ``dated``: the dataset has timestamps and they are dates (not sequence numbers);
    ``first`` / ``last``: its earliest and latest review time (None without timestamps).
    """

    has_timestamp: bool
    dated: bool
    first: datetime | None
    last: datetime | None


def dataset_times(store: Store, dataset: str) -> DatasetTimes:
    """Whether ``dataset``'s timestamps are dates, and their span (every split).

    A dataset registered without timestamps, or whose timestamps are all small numbers
    read as an order only, is not ``dated``. Call ``get_dataset`` first for a clear error
    on an unknown name (this returns an undated result for one).
    """
    row = store.cursor().execute(
        """SELECT (SELECT has_timestamp FROM datasets WHERE name = ?),
                  min(ts), max(ts), max(epoch(ts)) >= ?
           FROM reviews WHERE dataset = ? AND ts IS NOT NULL""",
        [dataset, ORDER_ONLY_BELOW_S, dataset],
    ).fetchone()
    has_ts, first, last, beyond_order = row
    return DatasetTimes(bool(has_ts), bool(has_ts) and bool(beyond_order), first, last)


@dataclass(frozen=True)
class UserTrainSpan:
    """One user's train reviews: how many, how many have a time, the first and last time."""

    n_reviews: int
    n_dated: int
    first: datetime | None
    last: datetime | None


def user_train_span(store: Store, dataset: str, user_id: str) -> UserTrainSpan:
    """How many train reviews ``user_id`` wrote in ``dataset`` and when (first, last)."""
    n, n_dated, first, last = store.cursor().execute(
        "SELECT count(*), count(ts), min(ts), max(ts) FROM reviews "
        "WHERE dataset = ? AND split = 'train' AND user_id = ?",
        [dataset, user_id],
    ).fetchone()
    return UserTrainSpan(int(n), int(n_dated), first, last)
