"""Stored-evaluation queries for the dashboard, on per-user metrics written by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.evaluation.compare import compare
from mgi_core.store import Store
from mgi_core.store.queries import evaluations as queries
from tests.conftest import write_csv
from tests.fake_encoder import register_fake_version

# Four users with three reviews each; the last one (test) is in Audio for a, Cameras for b
# and c, and has no category for d.
TEST_ITEMS = {"a": ("t_a", "Audio > Speakers", "Boom"), "b": ("t_b", "Cameras > Lenses", "Zoomy"),
              "c": ("t_c", "Cameras > Tripods", "Tri"), "d": ("t_d", "", "Plain")}
# ndcg@10 per user of two systems. v2 - v1: a -0.5, b 0, c +1.0, d 0.
NDCG = {"v1:pop": {"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.25},
        "v2:mgi": {"a": 0.5, "b": 0.5, "c": 1.0, "d": 0.25}}


def _rows() -> list[list[object]]:
    rows = []
    for user, (item, category, title) in TEST_ITEMS.items():
        rows += [[user, f"{user}1", "old one", 4, 1_600_000_000, "Audio > Speakers", "Old 1"],
                 [user, f"{user}2", "old two", 4, 1_600_001_000, "Audio > Speakers", "Old 2"],
                 [user, item, "the latest", 5, 1_600_002_000, category, title]]
    return rows


def _add_system(store: Store, system: str, values: dict[str, float],
                created_at: str = "2024-01-01 00:00:00") -> None:
    version, scorer = system.split(":")
    cur = store.cursor()
    for user, value in values.items():
        for metric, v in (("ndcg@10", value), ("recall@10", float(value > 0))):
            cur.execute("INSERT INTO per_user_metrics VALUES ('hand', ?, ?, 'test', ?, ?, ?)",
                        [version, scorer, user, metric, v])
    mean = float(np.mean(list(values.values())))
    for metric, v in (("ndcg@10", mean), ("recall@10", 0.75), ("custom", 1.0)):
        cur.execute(
            "INSERT INTO evaluations (dataset, version, scorer, split, metric, value, n_users, "
            "created_at) VALUES ('hand', ?, ?, 'test', ?, ?, ?, ?)",
            [version, scorer, metric, v, len(values), created_at])


def _add_version(store: Store, version: str, created_at: str) -> None:
    store.cursor().execute(
        "INSERT INTO model_versions (version, kind, base_model, config, library_versions, "
        "status, created_at) VALUES (?, 'fine-tuned', 'x', '{}', '{}', 'ready', ?)",
        [version, created_at])


@pytest.fixture
def hand(store: Store, tmp_path) -> Store:
    ingest_file(store, write_csv(tmp_path / "hand.csv", _rows()), "hand")
    _add_version(store, "v1", "2024-01-01")
    _add_version(store, "v2", "2024-02-01")
    # v2 is stored first: the table still lists v1 (the older version) first.
    _add_system(store, "v2:mgi", NDCG["v2:mgi"], "2024-03-02 10:00:00")
    _add_system(store, "v1:pop", NDCG["v1:pop"], "2024-03-01 09:30:00")
    return store


def test_evaluation_table_one_row_per_system_oldest_version_first(hand: Store) -> None:
    table = queries.evaluation_table(hand, "hand")
    assert list(table["system"]) == ["v1:pop", "v2:mgi"]
    # Headline metrics first, unknown ones after, in name order.
    assert list(table.columns) == ["system", "version", "scorer", "n_users", "evaluated_at",
                                   "ndcg@10", "recall@10", "custom"]
    # v1 ndcg@10: (1 + 0.5 + 0 + 0.25) / 4 = 0.4375; v2: (0.5 + 0.5 + 1 + 0.25) / 4 = 0.5625.
    assert table["ndcg@10"].tolist() == pytest.approx([0.4375, 0.5625])
    assert table["n_users"].tolist() == [4, 4]
    assert queries.evaluation_table(hand, "hand", split="val").empty


def test_evaluation_stamp_says_when_and_whether(hand: Store) -> None:
    assert queries.evaluation_stamp(hand, "hand", "v1:pop") == "2024-03-01T09:30:00"
    assert queries.evaluation_stamp(hand, "hand", "v1:mgi") is None
    assert queries.evaluation_stamp(hand, "other", "v1:pop") is None


def test_category_metric_groups_users_by_their_held_out_items_l1(hand: Store) -> None:
    long = queries.category_metric(hand, "hand")
    # Cameras has 2 users (b, c) and comes first; "(none)" (d) and Audio (a) have one each,
    # ordered by name.
    assert list(dict.fromkeys(long["l1"])) == ["Cameras", "(none)", "Audio"]
    cells = {(r.l1, r.system): (r.n_users, r.mean) for r in long.itertuples()}
    assert cells[("Cameras", "v1:pop")] == (2, pytest.approx(0.25))  # (0.5 + 0) / 2
    assert cells[("Cameras", "v2:mgi")] == (2, pytest.approx(0.75))  # (0.5 + 1) / 2
    assert cells[("Audio", "v1:pop")] == (1, pytest.approx(1.0))
    assert cells[("(none)", "v2:mgi")] == (1, pytest.approx(0.25))
    # The same numbers as compare's per-category breakdown.
    per_category = compare(hand, "v1:pop", "v2:mgi", "hand", n_boot=10).per_category
    for row in per_category.itertuples():
        assert cells[(row.group, "v1:pop")][1] == pytest.approx(row.mean_a)
        assert cells[(row.group, "v2:mgi")][1] == pytest.approx(row.mean_b)
    assert list(queries.category_metric(hand, "hand", max_categories=1)["l1"].unique()) == [
        "Cameras"]


def test_points_win_loss_and_most_changed_users(hand: Store) -> None:
    points = queries.user_metric_points(hand, "hand", "v1:pop", "v2:mgi")
    # (a, b) per user: a (1, .5), b (.5, .5), c (0, 1), d (.25, .25): four points of one.
    assert sorted(zip(points["a"], points["b"], points["n_users"], strict=True)) == [
        (0.0, 1.0, 1), (0.25, 0.25, 1), (0.5, 0.5, 1), (1.0, 0.5, 1)]
    # recall@10 is 0/1: a, b and d are (1, 1), c is (0, 1).
    recall = queries.user_metric_points(hand, "hand", "v1:pop", "v2:mgi", metric="recall@10")
    assert recall[["a", "b", "n_users"]].values.tolist() == [[1, 1, 3], [0, 1, 1]]
    assert [list(u) for u in recall["users"]] == [["a", "b", "d"], ["c"]]
    assert len(queries.user_metric_points(hand, "hand", "v1:pop", "v2:mgi", limit=2)) == 2
    assert queries.win_loss(hand, "hand", "v1:pop", "v2:mgi") == {
        "better": 1, "worse": 1, "same": 2}
    changed = queries.most_changed_users(hand, "hand", "v1:pop", "v2:mgi", n=2)
    assert changed["user_id"].tolist() == ["c", "a"]  # |+1.0| then |-0.5|
    assert changed["diff"].tolist() == pytest.approx([1.0, -0.5])
    assert changed[["item_id", "title"]].values.tolist() == [["t_c", "Tri"], ["t_a", "Boom"]]


def test_nan_values_are_left_out_of_the_pairs(hand: Store) -> None:
    hand.cursor().execute("UPDATE per_user_metrics SET value = 'NaN'::DOUBLE WHERE user_id = "
                          "'b' AND version = 'v2' AND metric = 'ndcg@10'")
    points = queries.user_metric_points(hand, "hand", "v1:pop", "v2:mgi")
    assert points["n_users"].sum() == 3
    assert sum(queries.win_loss(hand, "hand", "v1:pop", "v2:mgi").values()) == 3
    changed = queries.most_changed_users(hand, "hand", "v1:pop", "v2:mgi", n=10)
    assert "b" not in set(changed["user_id"])


def test_has_embeddings(hand: Store, tmp_path) -> None:
    assert not queries.has_embeddings(hand, "fake", "hand")
    register_fake_version(hand, "hand", ["old", "latest"])
    assert queries.has_embeddings(hand, "fake", "hand")
    assert not queries.has_embeddings(hand, "fake", "other")
