"""Profiles built, stored and read in batches of users equal the one-batch computation.

Memory bounds are tested by size, not by the clock: with batches of 1, 3 and 7 users (and
windows of 1 and 5 users when ranking reads them back), every row, vector, keyword and
feature equals what one pass over the whole dataset gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mgi_core.cli import DEMO_DIR
from mgi_core.data.ingest import ingest_file
from mgi_core.profiles import service
from mgi_core.profiles.builder import UserProfiles
from mgi_core.ranking.features import build_context, compute_features
from mgi_core.ranking.model import load_ranking_context
from mgi_core.ranking.signals import SIGNALS, profile_index
from mgi_core.ranking.signals.profile_index import StoredProfileIndex
from mgi_core.store import profiles as profile_store
from tests.fake_encoder import register_fake_version
from tests.profiles.test_profiles import DEMO_VOCAB

COLUMNS = ["user_id", "level", "key", "n_reviews", "share", "sentiment", "cold", "vector_row"]


@pytest.fixture
def demo(store):
    ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
    register_fake_version(store, "demo", DEMO_VOCAB)
    return store


def _whole(store) -> UserProfiles:
    """Profiles of the whole dataset in one ``build_user_profiles`` call."""
    embeddings = service.load_train_embeddings(store, "demo", "fake")
    return service.compute_profiles(store, "demo", "fake", embeddings=embeddings)


def _lists(column: pd.Series) -> list[list | None]:
    return [list(v) if isinstance(v, (list, np.ndarray)) else None for v in column]


def _assert_same(got: UserProfiles, want: UserProfiles) -> None:
    pd.testing.assert_frame_equal(got.rows[COLUMNS].reset_index(drop=True),
                                  want.rows[COLUMNS].reset_index(drop=True), check_dtype=False)
    for column in ("keywords", "review_ids"):  # lists: compared as lists
        assert _lists(got.rows[column]) == _lists(want.rows[column]), column
    np.testing.assert_allclose(got.rows["affinity"].astype(float),
                               want.rows["affinity"].astype(float))
    np.testing.assert_array_equal(got.vectors, want.vectors)


@pytest.mark.parametrize("batch_users", [1, 3, 7])
def test_profile_batches_equal_one_pass_over_the_dataset(demo, batch_users) -> None:
    want = _whole(demo)
    parts = list(service.profile_batches(demo, "demo", "fake", batch_users=batch_users))
    n_users = want.rows["user_id"].nunique()
    assert len(parts) == -(-n_users // batch_users)  # the batch size is respected
    assert all(p.rows["user_id"].nunique() <= batch_users for p in parts)
    got = UserProfiles("fake", "demo", pd.concat([p.rows for p in parts], ignore_index=True),
                       np.concatenate([p.vectors for p in parts]),
                       {u: v for p in parts for u, v in p.last_liked.items()})
    _assert_same(got, want)
    assert got.last_liked.keys() == want.last_liked.keys()


def test_ensure_profiles_in_batches_stores_the_one_pass_profiles(demo) -> None:
    service.ensure_profiles(demo, "demo", "fake", batch_users=4)
    stored = service.stored_profiles(demo, "demo", "fake")
    assert stored is not None
    _assert_same(stored, _whole(demo))


def test_a_failed_batch_leaves_the_stored_profiles_as_they_were(demo, monkeypatch) -> None:
    service.ensure_profiles(demo, "demo", "fake", batch_users=5)
    before = profile_store.profile_rows(demo, "fake", "demo")
    real = service.build_user_profiles
    calls = {"n": 0}

    def fail_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("stopped mid-way")
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "build_user_profiles", fail_on_third)
    with pytest.raises(RuntimeError):
        profile_store.replace_profiles_in_batches(
            demo, "fake", "demo", len(DEMO_VOCAB),
            ((p.rows, p.vectors) for p in service.profile_batches(demo, "demo", "fake",
                                                                  batch_users=5)))
    pd.testing.assert_frame_equal(profile_store.profile_rows(demo, "fake", "demo"), before)


def test_last_liked_vectors_in_sql_follow_the_builders_rule(store, tmp_path) -> None:
    # Ties in time, missing times, nothing liked: the SQL rule equals the pandas one. The
    # two latest reviews of each user are held out; the rest are train.
    words = ["alpha", "bravo", "delta", "echo", "golf", "hotel", "india", "kilo", "lima",
             "mike", "oscar", "papa"]
    rows = [
        # u: liked reviews tie in time (2024-02-01): the later review_id wins.
        ["u", "i1", "alpha", 5, "2024-01-01"], ["u", "i2", "bravo", 4, "2024-02-01"],
        ["u", "i3", "delta", 5, "2024-02-01"], ["u", "i4", "echo", 2, "2024-02-02"],
        ["u", "i5", "golf", 3, "2024-06-01"], ["u", "i6", "hotel", 3, "2024-07-01"],
        # v: nothing liked in train → the latest train review.
        ["v", "i1", "india", 1, "2024-03-01"], ["v", "i2", "kilo", 2, "2024-02-01"],
        ["v", "i3", "lima", 5, "2024-08-01"], ["v", "i4", "mike", 5, "2024-09-01"],
        # w: a liked review without a time (first in time order), and a later disliked one.
        ["w", "i2", "oscar", 5, ""], ["w", "i3", "papa", 2, "2024-01-01"],
        ["w", "i4", "alpha", 4, "2024-05-01"], ["w", "i5", "bravo", 4, "2024-06-01"],
    ]
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,text,rating,timestamp\n"
                    + "".join(",".join(map(str, r)) + "\n" for r in rows))
    ingest_file(store, path, "t")
    register_fake_version(store, "t", words)
    reviews, vectors = service.load_train_embeddings(store, "t", "fake")
    want = service.last_liked_vectors(reviews, vectors)
    picked = {u: reviews["text"][int(np.flatnonzero((vectors == v).all(1))[0])]
              for u, v in want.items()}
    assert picked == {"u": "delta", "v": "india", "w": "oscar"}  # the rule, by hand
    users, got = profile_store.last_liked_vectors(store, "fake", "t", vectors.shape[1], 4.0,
                                                  ("", "\U0010ffff"))
    assert users == sorted(want)
    for user, vector in zip(users, got, strict=True):
        np.testing.assert_array_equal(vector, want[user], err_msg=user)


@pytest.mark.parametrize(("window", "few"), [(1, 0), (5, 0), (5, 16)])
def test_ranking_reads_stored_profiles_a_window_at_a_time(demo, window, few,
                                                           monkeypatch) -> None:
    # few = 0: every batch reads a window; 16: batches of 4 read those users only.
    monkeypatch.setattr(profile_index, "FEW_USERS", few)
    service.ensure_profiles(demo, "demo", "fake", batch_users=6)
    ctx = load_ranking_context(demo, "demo", "fake", with_mf=False)
    assert isinstance(ctx.profile_index, StoredProfileIndex)
    ctx.profile_index.window = window
    in_memory = build_context(ctx.inter, ctx.item_vecs, _whole(demo), with_mf=False)
    names = tuple(n for n in SIGNALS if n != "mf")
    users = np.arange(ctx.inter.n_users)
    for start in range(0, len(users), 4):  # batches of 4 users, as evaluation scores them
        batch = users[start:start + 4]
        got = compute_features(ctx, batch, names)
        want = compute_features(in_memory, batch, names)
        for name in names:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        held = ctx.profile_index.batch(ctx.inter.users[batch])
        assert len(held.profiles.last_liked) <= max(window, len(batch))  # window respected
        if few:
            assert set(held.profiles.rows["user_id"]) <= set(ctx.inter.users[batch])
    # Users scattered over the whole range: only they are read, not everyone between them.
    scattered = users[::7]
    held = ctx.profile_index.batch(ctx.inter.users[scattered])
    assert set(held.profiles.rows["user_id"]) <= set(ctx.inter.users[scattered])
    got = compute_features(ctx, scattered, names)
    want = compute_features(in_memory, scattered, names)
    for name in names:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_profile_builds_leave_no_staging_tables(demo) -> None:
    def staging() -> list[str]:
        rows = demo.cursor().execute(
            "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, ?)",
            [profile_store.STAGING_PREFIX]).fetchall()
        return [n for (n,) in rows]

    service.ensure_profiles(demo, "demo", "fake", batch_users=5)
    assert staging() == []
    # A build killed mid-way leaves its tables; the next build drops them (dead pid), and
    # never those of a live process.
    dead = f"{profile_store.STAGING_PREFIX}999999999_abc_rows"
    live = f"{profile_store.STAGING_PREFIX}1_abc_rows"  # pid 1 is alive
    for name in (dead, live):
        demo.cursor().execute(f"CREATE TABLE {name} (x INTEGER)")
    assert profile_store.drop_stale_profile_builds(demo) == [dead]
    assert staging() == [live]
