"""Forgetting a user in the store: after ``forget_user`` no table the catalogue lists holds a
row of the user (every text column scanned for the id, every review-id column for the
user's former review ids), everyone else's rows are as they were, the item vectors equal a
recomputation without the user, the stored profiles are still one complete set, and the
versions trained on the user's reviews are recorded. One transaction: a failure midway
changes nothing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mgi_core.cli import DEMO_DIR
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import JobError
from mgi_core.evaluation.next_interest import next_interest
from mgi_core.evaluation.protocol import evaluate
from mgi_core.profiles.service import ensure_profiles, stored_profiles
from mgi_core.store import Store
from mgi_core.store import forget as forgetting
from mgi_core.store.embeddings import item_vectors, review_vectors
from mgi_core.store.queries.profiles import data_stamp
from mgi_core.store.versions import list_versions
from tests.conftest import small_rows, write_csv
from tests.fake_encoder import DEMO_VOCAB, add_search_and_ablation_rows, register_fake_version

USER = "U0042"  # a demo user with train, val and test reviews; also in dataset 'other'
SOLO_ITEM = "I9999"  # reviewed by USER only: the catalogue loses it
SCORERS = ("popularity", "content", "content_hybrid")


def build_rich_store(path: Path, work: Path) -> None:
    """Two datasets holding USER: 'demo' (the demo data, plus a rejected row of USER and a
    review of an item nobody else reviewed) and 'other' (small_rows with USER added). Each
    has a fake fine-tuned version with vectors, head probabilities, profiles, evaluations,
    next-interest metrics, a finished job, a search, an ablation, an append and a forgotten
    data record; 'demo' also has a base version and a fine-tuned version made before the
    dataset was stored (it cannot have been trained on USER's reviews)."""
    lines = (DEMO_DIR / "reviews.csv").read_text(encoding="utf-8").rstrip("\n").split("\n")
    lines += [f'{USER},I0015,"My rejected row, {USER} wrote it",five,1665572565,'
              "Audio > Headphones > Wired,Arcadia Wired In-Ear Monitors",
              f"{USER},{SOLO_ITEM},A lonely speaker with good sound,4,1500000000,"
              "Audio > Speakers > Portable,Solo Speaker"]
    demo_csv = work / "demo.csv"
    demo_csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    other_rows = [*small_rows(),
                  [USER, "i1", "Headphones with a warm sound", 4, 1_600_000_100,
                   "Audio > Headphones > Wireless", "Arc Headphones"],
                  [USER, "i4", "A tripod and a camera lens", 3, 1_600_000_300,
                   "Cameras > Tripods", "Tri"]]
    store = Store(path)
    try:
        assert ingest_file(store, demo_csv, "demo").committed
        assert ingest_file(store, write_csv(work / "other.csv", other_rows), "other").committed
        for name in ("demo", "other"):
            version = f"fake_{name}"
            register_fake_version(store, name, DEMO_VOCAB, version)
            ensure_profiles(store, name, version)
            evaluate(store, name, version, SCORERS)
            next_interest(store, name, version)
            cur = store.cursor()
            cur.execute("INSERT INTO review_head_probs SELECT ?, dataset, review_id, "
                        "'category', [0.25, 0.75] FROM reviews WHERE dataset = ?",
                        [version, name])
            cur.execute("INSERT INTO jobs (job_id, kind, version, dataset, run_dir, status) "
                        "VALUES (?, 'train', ?, ?, '/nowhere', 'finished')",
                        [f"job_{name}", version, name])
            add_search_and_ablation_rows(store, name, version)
        register_fake_version(store, "demo", DEMO_VOCAB, "base")
        register_fake_version(store, "demo", DEMO_VOCAB, "old")
        cur = store.cursor()
        cur.execute("UPDATE model_versions SET kind = 'base', dataset = NULL "
                    "WHERE version = 'base'")
        cur.execute("UPDATE model_versions SET created_at = (SELECT created_at - INTERVAL 1 DAY "
                    "FROM datasets WHERE name = 'demo') WHERE version = 'old'")
        ensure_profiles(store, "demo", "base")
    finally:
        store.close()


@pytest.fixture(scope="module")
def rich_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("rich")
    build_rich_store(work / "rich.duckdb", work)
    return work / "rich.duckdb"


@pytest.fixture
def rich(rich_db: Path, tmp_path: Path) -> Iterator[Store]:
    """A copy of the rich store of its own (a test forgets in it)."""
    shutil.copy(rich_db, tmp_path / "mgi.duckdb")
    store = Store(tmp_path / "mgi.duckdb")
    yield store
    store.close()


# ------------------------------------------------------------------ scanning the catalogue


def catalogue(store: Store) -> dict[str, dict[str, str]]:
    """table -> {column: type} of every table, from DuckDB's catalogue (not a list here)."""
    rows = store.cursor().execute(
        """SELECT c.table_name, c.column_name, c.data_type FROM duckdb_columns() c
           JOIN duckdb_tables() t USING (database_name, schema_name, table_name)
           WHERE c.database_name = current_database() AND NOT t.temporary
           ORDER BY c.table_name, c.column_index""").fetchall()
    out: dict[str, dict[str, str]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, {})[column] = dtype
    return out


def rows_of_user(store: Store, user: str, review_ids: list[int]) -> dict[str, int]:
    """table.column -> rows holding ``user`` (equal to or inside any text, or in a list of
    texts) or one of ``review_ids`` (a review-id column or list); only the nonzero ones."""
    cur, found = store.cursor(), {}
    for table, columns in catalogue(store).items():
        for column, dtype in columns.items():
            col = f'"{column}"'
            if dtype == "VARCHAR":
                where, params = f"{col} = ? OR contains({col}, ?)", [user, user]
            elif dtype == "VARCHAR[]":
                where = f"list_contains({col}, ?) OR contains(array_to_string({col}, ' '), ?)"
                params = [user, user]
            elif column == "review_id" and dtype in ("BIGINT", "INTEGER"):
                where, params = f"{col} IN (SELECT unnest(?::BIGINT[]))", [review_ids]
            elif column == "review_ids" and dtype == "BIGINT[]":
                where, params = f"list_has_any({col}, ?::BIGINT[])", [review_ids]
            else:
                continue
            n = cur.execute(f'SELECT count(*) FROM "{table}" WHERE {where}', params).fetchone()[0]
            if n:
                found[f"{table}.{column}"] = n
    return found


def others_rows(store: Store, user: str, review_ids: list[int]) -> dict[str, int]:
    """table -> rows that are not the user's (no user id nor review id of theirs)."""
    cur, out = store.cursor(), {}
    for table, columns in catalogue(store).items():
        where, params = ["true"], []
        if columns.get("user_id") == "VARCHAR":
            where.append("user_id IS DISTINCT FROM ?")
            params.append(user)
        if "review_id" in columns:
            where.append("review_id NOT IN (SELECT unnest(?::BIGINT[]))")
            params.append(review_ids)
        out[table] = cur.execute(f'SELECT count(*) FROM "{table}" WHERE {" AND ".join(where)}',
                                 params).fetchone()[0]
    return out


def user_review_ids(store: Store, user: str) -> list[int]:
    return [r for (r,) in store.cursor().execute(
        "SELECT review_id FROM reviews WHERE user_id = ? ORDER BY review_id", [user]).fetchall()]


def recomputed_item_vectors(store: Store, version: str, dataset: str) -> dict[str, np.ndarray]:
    """Each item's normalised mean train review vector, from the stored review vectors."""
    ids, vecs = review_vectors(store, version, dataset, split="train")
    items = dict(store.cursor().execute(
        "SELECT review_id, item_id FROM reviews WHERE dataset = ?", [dataset]).fetchall())
    out: dict[str, list[np.ndarray]] = {}
    for rid, v in zip(ids, vecs, strict=True):
        out.setdefault(items[int(rid)], []).append(v.astype(np.float64))
    return {i: (m := np.mean(v, axis=0)) / np.linalg.norm(m) for i, v in out.items()}


# ------------------------------------------------------------------------------ tests


def test_no_table_holds_a_row_of_the_forgotten_user(rich: Store) -> None:
    store = rich
    mine = user_review_ids(store, USER)
    assert len(mine) > 10  # in both datasets
    before = rows_of_user(store, USER, mine)
    # the scan finds the user where the fixture put them: every kind of table is exercised
    for where in ("reviews.user_id", "ingest_rejects.user_id", "ingest_rejects.text",
                  "user_profiles.user_id", "user_profiles.review_ids",
                  "per_user_metrics.user_id", "next_interest_metrics.user_id",
                  "review_embeddings_14.review_id", "review_head_probs.review_id"):
        assert before.get(where), where
    others_before = others_rows(store, USER, mine)
    counts_before = dict(store.cursor().execute(
        "SELECT name, n_users FROM datasets").fetchall())
    n_profile_rows = store.cursor().execute(  # each has a vector (no user id in its table)
        "SELECT count(*) FROM user_profiles WHERE user_id = ?", [USER]).fetchone()[0]

    with store.transaction() as tx:
        result = forgetting.forget_user(tx, USER)

    assert rows_of_user(store, USER, mine) == {}
    assert sorted(result.datasets) == ["demo", "other"]
    assert sorted(result.review_ids) == mine
    # everyone else's rows are all there; the profile vectors lost the user's, the
    # catalogue of items lost SOLO_ITEM only (and its vector in each of 3 versions), and
    # forgotten_data gained one row per version trained with the user's reviews
    others_after = others_rows(store, USER, mine)
    changed = {t: (others_before[t], others_after.get(t)) for t in others_before
               if others_after.get(t) != others_before[t]}
    assert changed == {
        "items": (others_before["items"], others_before["items"] - 1),
        "item_embeddings_14": (others_before["item_embeddings_14"],
                               others_before["item_embeddings_14"] - 3),  # 3 versions
        "forgotten_data": (others_before["forgotten_data"], others_before["forgotten_data"] + 2),
        "user_profile_vectors_14": (others_before["user_profile_vectors_14"],
                                    others_before["user_profile_vectors_14"] - n_profile_rows),
    }
    assert result.items_removed == 1 and result.item_vectors_removed == 3
    assert store.cursor().execute("SELECT count(*) FROM items WHERE item_id = ?",
                                  [SOLO_ITEM]).fetchone()[0] == 0
    after = dict(store.cursor().execute("SELECT name, n_users FROM datasets").fetchall())
    assert after == {name: n - 1 for name, n in counts_before.items()}


def test_counts_profiles_and_item_vectors_are_those_of_a_store_without_the_user(
        rich: Store) -> None:
    store = rich
    profiles_before = stored_profiles(store, "demo", "fake_demo")
    stamps = {v: data_stamp(store, "demo", v) for v in ("fake_demo", "base", "old")}
    with store.transaction() as tx:
        forgetting.forget_user(tx, USER, "demo")
    cur = store.cursor()
    # the pages' cache key of each (dataset, version) changes: nothing cached is read again
    assert all(data_stamp(store, "demo", v) != stamp for v, stamp in stamps.items())
    # registry and catalogue counts are what is left
    registry = cur.execute("SELECT n_reviews, n_users, n_items, n_l1, n_l2, n_l3, n_rejected "
                           "FROM datasets WHERE name = 'demo'").fetchone()
    counted = cur.execute(
        """SELECT (SELECT count(*) FROM reviews WHERE dataset = 'demo'),
                  (SELECT count(DISTINCT user_id) FROM reviews WHERE dataset = 'demo'),
                  (SELECT count(DISTINCT item_id) FROM reviews WHERE dataset = 'demo'),
                  count(DISTINCT l1), count(DISTINCT l2), count(DISTINCT l3),
                  (SELECT count(*) FROM ingest_rejects WHERE dataset = 'demo')
           FROM items WHERE dataset = 'demo'""").fetchone()
    assert registry == counted
    assert cur.execute(
        """SELECT count(*) FROM items i WHERE dataset = 'demo' AND n_reviews <> (
               SELECT count(*) FROM reviews r WHERE r.dataset = i.dataset
               AND r.item_id = i.item_id)""").fetchone()[0] == 0
    # item vectors: the normalised mean of the remaining train review vectors, per version
    for version in ("fake_demo", "base", "old"):
        expected = recomputed_item_vectors(store, version, "demo")
        ids, vecs = item_vectors(store, version, "demo")
        assert sorted(map(str, ids)) == sorted(expected)
        for item, v in zip(ids, vecs, strict=True):
            np.testing.assert_allclose(v, expected[str(item)], atol=1e-5)
        n_train = dict(cur.execute(
            "SELECT item_id, n_train_reviews FROM item_embeddings_14 WHERE version = ? "
            "AND dataset = 'demo'", [version]).fetchall())
        assert n_train == dict(cur.execute(
            "SELECT item_id, count(*) FROM reviews WHERE dataset = 'demo' AND split = 'train' "
            "GROUP BY item_id").fetchall())
    # profiles: one complete set still, everyone else's rows and vectors as they were
    after = stored_profiles(store, "demo", "fake_demo")
    assert after is not None
    kept = profiles_before.rows[profiles_before.rows["user_id"] != USER].reset_index(drop=True)
    assert after.rows.drop(columns="vector_row").equals(kept.drop(columns="vector_row"))
    np.testing.assert_array_equal(after.vectors,
                                  profiles_before.vectors[kept["vector_row"].to_numpy()])
    assert stored_profiles(store, "demo", "base") is not None
    # the other dataset is untouched: the user is still there
    assert cur.execute("SELECT count(*) FROM reviews WHERE dataset = 'other' AND user_id = ?",
                       [USER]).fetchone()[0] == 2


def test_versions_trained_with_the_users_reviews_are_recorded(rich: Store) -> None:
    store = rich
    n_demo, n_other = (store.cursor().execute(
        "SELECT count(*) FROM reviews WHERE dataset = ? AND user_id = ?", [d, USER]
    ).fetchone()[0] for d in ("demo", "other"))
    before = {v["version"]: v["forgotten_reviews"] for v in list_versions(store)}
    with store.transaction() as tx:
        result = forgetting.forget_user(tx, USER)
    # fake_demo and fake_other were made after their dataset was stored; 'old' before it
    # (it never saw the user), 'base' is not trained at all
    assert [(v.version, v.dataset, v.n_reviews) for v in result.versions] == [
        ("fake_demo", "demo", n_demo), ("fake_other", "other", n_other)]
    after = {v["version"]: v["forgotten_reviews"] for v in list_versions(store)}
    # add_search_and_ablation_rows recorded 1 forgotten review for each fake version already
    assert after == {**before, "fake_demo": before["fake_demo"] + n_demo,
                     "fake_other": before["fake_other"] + n_other}
    assert before["old"] == after["old"] == 0 and after["base"] == 0


def test_reviews_appended_after_a_version_do_not_count_for_it(rich: Store) -> None:
    # The user's last reviews in 'demo' came with an append made after fake_demo was
    # trained: fake_demo's snapshot never held them.
    store = rich
    cur = store.cursor()
    mine = user_review_ids(store, USER)
    demo_ids = [r for (r,) in cur.execute(
        "SELECT review_id FROM reviews WHERE dataset = 'demo' AND user_id = ? "
        "ORDER BY review_id", [USER]).fetchall()]
    late = demo_ids[-3:]
    cur.execute("INSERT INTO dataset_appends (dataset, seq, file_name, file_hash, "
                "first_review_id, last_review_id, n_reviews, n_rejected, n_users, "
                "n_new_users, n_moved, appended_at) VALUES ('demo', 2, 'late.csv', 'h', ?, ?, "
                "3, 0, 1, 0, 0, (SELECT created_at + INTERVAL 1 HOUR FROM model_versions "
                "WHERE version = 'fake_demo'))", [late[0], late[-1]])
    with store.transaction() as tx:
        result = forgetting.forget_user(tx, USER, "demo")
    assert [(v.version, v.n_reviews) for v in result.versions] == [
        ("fake_demo", len(demo_ids) - 3)]
    assert set(result.review_ids) == set(demo_ids) and set(demo_ids) < set(mine)


def test_one_transaction_a_failure_midway_changes_nothing(rich: Store,
                                                          monkeypatch) -> None:
    store = rich
    mine = user_review_ids(store, USER)
    tables = list(catalogue(store))

    def counts() -> dict[str, int]:
        return {t: store.cursor().execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                for t in tables}

    before, held = counts(), rows_of_user(store, USER, mine)
    vectors = item_vectors(store, "fake_demo", "demo")[1]

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(forgetting, "compact_vector_rows", broken)
    with pytest.raises(RuntimeError, match="disk is full"), store.transaction() as tx:
        forgetting.forget_user(tx, USER)
    assert counts() == before
    assert rows_of_user(store, USER, mine) == held
    np.testing.assert_array_equal(item_vectors(store, "fake_demo", "demo")[1], vectors)
    assert stored_profiles(store, "demo", "fake_demo") is not None


def test_an_unknown_user_changes_nothing(rich: Store) -> None:
    store = rich
    assert forgetting.user_datasets(store.cursor(), ["nobody"]) == {}
    with store.transaction() as tx:
        result = forgetting.forget_user(tx, "nobody")
    assert result.datasets == [] and result.deleted == {} and result.versions == []
    assert forgetting.user_datasets(store.cursor(), [USER]) == {"demo": 12, "other": 2}


def test_a_profile_build_that_staged_the_user_blocks_the_forget(rich: Store) -> None:
    store = rich
    cur = store.cursor()
    cur.execute("CREATE TABLE _mgi_profiles_build_1_abc_rows AS SELECT * FROM user_profiles "
                "WHERE user_id = ?", [USER])
    with pytest.raises(JobError, match="profile build is in progress"), \
            store.transaction() as tx:
        forgetting.forget_user(tx, USER)
    assert user_review_ids(store, USER)  # nothing went
    cur.execute("DELETE FROM _mgi_profiles_build_1_abc_rows")
    with store.transaction() as tx:
        assert forgetting.forget_user(tx, USER).review_ids
