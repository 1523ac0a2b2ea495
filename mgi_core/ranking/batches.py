"""Users in batches whose dense (batch, n_items) arrays fit a memory budget.

Evaluation, fusion-weight learning and ``Recommender.top_k`` score users batch by batch so
that memory follows the batch, not users × items: one batch's features, z-scores, fused
scores and ranks are dense (batch, n_items) float64 arrays, and the batch size is chosen so
that they stay under ``BATCH_BYTES`` together.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mgi_core.errors import ConfigError

BATCH_BYTES = 256 * 2**20  # dense per-batch arrays of all of a scorer's features together
WORK_ARRAYS = 4  # exclude mask, fused total, z-score and ranking temporaries, per batch


def default_batch_size(n_items: int, n_features: int, budget_bytes: int = BATCH_BYTES) -> int:
    """Users per batch so that (n_features + WORK_ARRAYS) float64 (batch, n_items) arrays
    fit ``budget_bytes``; at least 1."""
    per_user = 8 * max(1, n_items) * (max(1, n_features) + WORK_ARRAYS)
    return max(1, int(budget_bytes // per_user))


def user_batches(users: np.ndarray, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, users[start:start + batch_size]) for consecutive slices of ``users``.

    Raises:
        ConfigError: ``batch_size`` is below 1.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(users), batch_size):
        yield start, users[start : start + batch_size]
