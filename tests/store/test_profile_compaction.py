"""compact_vector_rows: after some users' profile rows go, the vectors are numbered 0..m-1
again in the order a full build gives, each still the vector of its row."""

from __future__ import annotations

import numpy as np

from mgi_core.profiles.service import ensure_profiles, stored_profiles
from mgi_core.store import profiles as profile_store


def test_compaction_after_removing_users_keeps_each_rows_vector(demo) -> None:
    ensure_profiles(demo, "demo", "fake")
    before = stored_profiles(demo, "demo", "fake")
    users = sorted(before.rows["user_id"].unique())
    gone = {users[0], users[len(users) // 2], users[-1]}
    d = before.vectors.shape[1]
    with demo.transaction() as tx:
        tx.execute("DELETE FROM user_profiles WHERE version = 'fake' AND dataset = 'demo' "
                   "AND user_id IN (SELECT unnest(?::VARCHAR[]))", [sorted(gone)])
        m = profile_store.compact_vector_rows(tx, "fake", "demo", d)
    after = stored_profiles(demo, "demo", "fake")
    assert after is not None  # one complete set: vector_row 0..m-1 on both tables
    kept = before.rows[~before.rows["user_id"].isin(gone)].reset_index(drop=True)
    assert m == len(kept) == len(after.rows)
    assert np.array_equal(after.rows["vector_row"].to_numpy(), np.arange(m))
    np.testing.assert_array_equal(after.vectors, before.vectors[kept["vector_row"].to_numpy()])
    assert after.rows["user_id"].tolist() == kept["user_id"].tolist()
    # the removed users' vectors are gone from the vector table, not merely unreferenced
    n_vectors = demo.cursor().execute(
        f"SELECT count(*) FROM {profile_store.profile_vector_table(d)} "
        "WHERE version = 'fake' AND dataset = 'demo'").fetchall()[0][0]
    assert n_vectors == m
