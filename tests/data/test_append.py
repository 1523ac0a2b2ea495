"""Appending a file to a stored dataset: the split rule, stored pairs, items, counts, the
dataset's own privacy settings, and nothing stored after a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mgi_core.config import IngestConfig
from mgi_core.data import ingest as ingest_module
from mgi_core.data.append import append_file
from mgi_core.data.ingest import ingest_file
from mgi_core.data.privacy import hash_user_id
from mgi_core.errors import DatasetNotFoundError, DataValidationError, JobError
from mgi_core.store import Store
from tests.conftest import small_rows, table_counts, write_csv


def _splits(store: Store) -> dict[tuple[str, str], str]:
    rows = store.cursor().execute(
        "SELECT user_id, item_id, split FROM reviews WHERE dataset = 'toy'").fetchall()
    return {(u, i): s for u, i, s in rows}


@pytest.fixture
def toy(store: Store, tmp_path: Path) -> Store:
    ingest_file(store, write_csv(tmp_path / "a.csv", small_rows()), "toy")
    return store


def test_newer_reviews_move_the_held_out_ones_and_new_users_are_split(toy, tmp_path) -> None:
    before = _splits(toy)
    assert before[("u1", "i4")] == "test" and before[("u1", "i3")] == "val"
    result = append_file(toy, write_csv(tmp_path / "b.csv", [
        ["u1", "i5", "Newest.", 5, 1_700_000_000, "Audio > Speakers", "Boomer"],
        ["u3", "i1", "Second.", 4, 1_700_000_000, "Audio > Headphones > Wireless", "Arc"],
        ["u3", "i2", "Third.", 4, 1_700_000_100, "Audio > Speakers", "Boom"],
        ["u9", "i9", "New user.", 3, 1_700_000_000, "Books > Novels", "Nov"],
    ]), "toy")
    after = _splits(toy)
    # u1: the appended review is the newest -> test; the old test -> val; the old val -> train
    assert (after[("u1", "i5")], after[("u1", "i4")], after[("u1", "i3")]) == (
        "test", "val", "train")
    # u3 had one (train) review, older than both appended ones: leave-last-out over all three
    assert (after[("u3", "i2")], after[("u3", "i1")], after[("u3", "i4")]) == (
        "test", "val", "train")
    assert after[("u9", "i9")] == "train"  # one review: train, as at ingest
    assert {k: v for k, v in after.items() if k[0] == "u2"} == {
        k: v for k, v in before.items() if k[0] == "u2"}  # untouched
    assert result.n_moved == 1 and result.n_new_users == 1 and result.n_new_items == 2
    assert result.report.n_users == 3
    row = toy.cursor().execute(
        "SELECT n_reviews, n_users, n_items, n_l1 FROM datasets WHERE name = 'toy'").fetchall()
    assert row == [(12, 4, 6, 3)]
    items = dict(toy.cursor().execute(
        "SELECT item_id, n_reviews FROM items WHERE dataset = 'toy'").fetchall())
    assert items["i1"] == 3 and items["i9"] == 1


def test_a_stored_train_review_is_never_held_out(toy, tmp_path) -> None:
    # u3's only review (train) is newer than the two appended: leave-last-out over all three
    # would hold it out, so every review of u3 stays in train.
    append_file(toy, write_csv(tmp_path / "b.csv", [
        ["u3", "i1", "Older.", 4, 1_500_000_000, "Audio > Headphones > Wireless", "Arc"],
        ["u3", "i2", "Older still.", 4, 1_400_000_000, "Audio > Speakers", "Boom"],
    ]), "toy")
    assert {v for k, v in _splits(toy).items() if k[0] == "u3"} == {"train"}


def test_stored_pairs_are_rejected_and_a_file_of_them_stores_nothing(toy, tmp_path) -> None:
    rows = small_rows()
    before = table_counts(toy)
    with pytest.raises(DataValidationError, match=r"already stored \(user_id, item_id\)"):
        append_file(toy, write_csv(tmp_path / "same.csv", rows), "toy")
    assert table_counts(toy) == before
    with pytest.raises(DatasetNotFoundError):
        append_file(toy, write_csv(tmp_path / "x.csv", rows), "nope")


def test_a_failure_while_appending_stores_nothing(toy, tmp_path, monkeypatch) -> None:
    from mgi_core.data import append as append_module

    before, splits = table_counts(toy), _splits(toy)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(append_module.sql, "resplit_touched", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        append_file(toy, write_csv(tmp_path / "b.csv", [
            ["u1", "i5", "Newest.", 5, 1_700_000_000, "Audio > Speakers", "Boomer"]]), "toy")
    assert table_counts(toy) == before and _splits(toy) == splits
    assert toy.cursor().execute("SELECT count(*) FROM dataset_appends").fetchall() == [(0,)]
    assert ingest_module  # the module whose transaction rolled back


def test_an_append_refuses_while_a_job_runs_on_the_dataset(toy, tmp_path) -> None:
    toy.cursor().execute("INSERT INTO jobs (job_id, kind, version, dataset, run_dir, status) "
                         "VALUES ('j', 'train', 'v1', 'toy', '/nowhere', 'running')")
    with pytest.raises(JobError, match="running on 'toy'"):
        append_file(toy, write_csv(tmp_path / "b.csv", small_rows()[:1]), "toy")


def test_an_append_redacts_and_hashes_as_the_dataset_was_ingested(store, tmp_path,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("MGI_USER_ID_SALT", "pepper")
    ingest_file(store, write_csv(tmp_path / "a.csv", small_rows()), "toy",
                config=IngestConfig(hash_user_ids=True))
    result = append_file(store, write_csv(tmp_path / "b.csv", [
        ["u1", "i5", "Mail me at jo@example.com", 5, 1_700_000_000, "Audio > Speakers", "B"],
    ]), "toy")
    assert result.report.redactions.get("email") == 1
    text, user = store.cursor().execute(
        "SELECT text, user_id FROM reviews WHERE item_id = 'i5'").fetchall()[0]
    assert text == "Mail me at [email]"
    assert user == hash_user_id("u1", "pepper")  # the same stored id as u1's other reviews
    assert store.cursor().execute(
        "SELECT count(DISTINCT user_id) FROM reviews WHERE dataset = 'toy' AND user_id = ?",
        [user]).fetchall() == [(1,)]
    assert json.loads(store.cursor().execute(
        "SELECT redactions FROM datasets").fetchall()[0][0]).get("email") == 1


def test_an_append_with_another_salt_is_refused_before_anything_is_stored(
        store, tmp_path, monkeypatch) -> None:
    from mgi_core.data.privacy import salt_check, stored_user_id
    from mgi_core.errors import ConfigError

    monkeypatch.setenv("MGI_USER_ID_SALT", "pepper")
    ingest_file(store, write_csv(tmp_path / "a.csv", small_rows()), "toy",
                config=IngestConfig(hash_user_ids=True))
    check = store.cursor().execute("SELECT user_id_salt_check FROM datasets").fetchall()[0][0]
    assert check == salt_check("pepper") and "pepper" not in check
    before = table_counts(store)
    monkeypatch.setenv("MGI_USER_ID_SALT", "salt")  # e.g. a new machine without the salt
    with pytest.raises(ConfigError, match="not the one dataset 'toy' was hashed with"):
        append_file(store, write_csv(tmp_path / "b.csv", [
            ["u1", "i5", "Newest.", 5, 1_700_000_000, "Audio > Speakers", "B"]]), "toy")
    assert table_counts(store) == before
    with pytest.raises(ConfigError, match="Restore that salt"):
        stored_user_id(store, "toy", "u1")
