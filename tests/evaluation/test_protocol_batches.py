"""``evaluate`` in batches: the same numbers whatever the batch size, no batch scored with
more users than asked, and progress reported after each batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mgi_core.evaluation import protocol
from mgi_core.evaluation.protocol import evaluate
from mgi_core.ranking import fusion, recommend
from mgi_core.ranking.fusion import DEFAULT_SCORERS
from mgi_core.store import Store


@pytest.fixture(scope="module")
def unbatched(demo: Store):
    """Every scorer with every target user in one batch."""
    return evaluate(demo, "demo", "fake", batch_size=10_000)


def test_every_scorer_gives_the_same_numbers_in_batches_of_three(demo: Store, unbatched,
                                                                  monkeypatch) -> None:
    seen: list[int] = []
    for module in (protocol, fusion, recommend):
        real = module.compute_features

        def spy(ctx, users, names, real=real):
            seen.append(len(users))
            return real(ctx, users, names)

        monkeypatch.setattr(module, "compute_features", spy)
    batched = evaluate(demo, "demo", "fake", batch_size=3, save=False)
    # No batch of features for more users than asked, validation design included.
    assert seen and max(seen) <= 3
    assert list(batched.per_user) == list(unbatched.per_user) == list(DEFAULT_SCORERS)
    assert batched.weights == unbatched.weights
    for scorer in DEFAULT_SCORERS:
        pd.testing.assert_frame_equal(batched.per_user[scorer], unbatched.per_user[scorer],
                                      check_exact=True, obj=scorer)
        assert batched.beyond[scorer] == unbatched.beyond[scorer], scorer


def test_random_scorer_draws_the_numbers_of_one_big_draw(demo: Store, unbatched) -> None:
    # One generator over (3, n_items) chunks draws the stream of one (n_users, n_items) draw,
    # so the random baseline's per-user metrics are those of the unbatched run.
    batched = evaluate(demo, "demo", "fake", ["random"], batch_size=3, save=False)
    pd.testing.assert_frame_equal(batched.per_user["random"], unbatched.per_user["random"],
                                  check_exact=True)
    rng = np.random.default_rng(0)
    chunks = np.concatenate([rng.random((3, 5)) for _ in range(4)])
    assert np.array_equal(chunks, np.random.default_rng(0).random((12, 5)))


def test_progress_counts_users_up_to_the_total(demo: Store, unbatched) -> None:
    calls: list[tuple[int, int]] = []
    evaluate(demo, "demo", "fake", ["popularity"], batch_size=50, save=False,
             progress=lambda done, total: calls.append((done, total)))
    total = len(unbatched.per_user["popularity"])
    done = [d for d, _ in calls]
    assert all(t == total for _, t in calls)
    assert done == sorted(done) and len(set(done)) == len(done)
    assert done[-1] == total and len(calls) == -(-total // 50)
