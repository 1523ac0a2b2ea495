"""``Recommender.top_k``: the lists behind each user's stored metrics, on the toy data of
tests/ranking/test_ranking.py (4 users × 3 categories, four reviews each)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mgi_core.cli import DEMO_DIR
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import ConfigError
from mgi_core.evaluation.protocol import evaluate
from mgi_core.ranking.recommend import Recommender
from mgi_core.store import Store
from tests.conftest import write_csv
from tests.fake_encoder import register_fake_version
from tests.ranking.test_ranking import DEMO_VOCAB

TOY_VOCAB = ["bass", "headphones", "lens", "zoom", "plot", "novel", "secret", "pad"]


def toy_rows() -> list[list[object]]:
    """4 users × 3 categories, four reviews each (as in tests/ranking/test_ranking.py)."""
    plan = {
        "a": [("h1", "bass headphones"), ("h2", "bass"), ("l1", "lens"), ("h3", "headphones")],
        "b": [("h1", "headphones"), ("h3", "bass headphones"), ("h2", "bass"), ("b1", "plot")],
        "c": [("l1", "lens zoom"), ("l2", "zoom"), ("b1", "plot novel"), ("l3", "lens")],
        "d": [("b1", "novel"), ("b2", "plot"), ("l2", "zoom"), ("b3", "novel plot")],
    }
    cats = {"h": "Audio > Headphones", "l": "Cameras > Lenses", "b": "Books > Fiction"}
    return [[user, item, text, 5, 1_600_000_000 + t * 1000, cats[item[0]], f"Title {item}"]
            for user, reviews in plan.items() for t, (item, text) in enumerate(reviews)]


@pytest.fixture
def toy(store: Store, tmp_path) -> Store:
    ingest_file(store, write_csv(tmp_path / "toy.csv", toy_rows()), "toy")
    register_fake_version(store, "toy", TOY_VOCAB)
    return store


@pytest.mark.parametrize("scorer", ["content_hybrid", "popularity", "content"])
def test_top_k_lists_are_the_lists_the_evaluation_measured(toy: Store, scorer: str) -> None:
    result = evaluate(toy, "toy", "fake", [scorer])
    ndcg = result.per_user[scorer]["ndcg@10"]
    lists = Recommender.load(toy, "toy", "fake", scorer).top_k(["a", "b", "c", "d"])
    held_out = dict(toy.cursor().execute(
        "SELECT user_id, item_id FROM reviews WHERE dataset = 'toy' AND split = 'test'"
    ).fetchall())
    train = toy.cursor().execute(
        "SELECT user_id, item_id FROM reviews WHERE dataset = 'toy' AND split = 'train'").df()
    for user, frame in lists.items():
        # The held-out item's rank in the list gives the stored NDCG@10 = 1 / log2(rank + 1).
        rank = frame.loc[frame["item_id"] == held_out[user], "rank"]
        expected = 1 / math.log2(int(rank.iloc[0]) + 1) if len(rank) else 0.0
        assert ndcg[user] == pytest.approx(expected), user
        # Items the user reviewed in train are never listed; titles come from the items.
        assert not set(frame["item_id"]) & set(train.loc[train["user_id"] == user, "item_id"])
        assert frame["title"].tolist() == [f"Title {i}" for i in frame["item_id"]]
        assert frame["rank"].tolist() == list(range(1, len(frame) + 1))


def test_top_k_skips_unknown_users_and_load_refuses_unknown_scorers(toy: Store) -> None:
    popularity = Recommender.load(toy, "toy", "fake", "popularity")
    lists = popularity.top_k(["a", "nobody"], k=2)
    assert list(lists) == ["a"]
    assert isinstance(lists["a"], pd.DataFrame) and len(lists["a"]) == 2
    assert popularity.top_k(["nobody"]) == {}
    with pytest.raises(ConfigError, match="Unknown scorer 'magic'"):
        Recommender.load(toy, "toy", "fake", "magic").top_k(["a"])


def test_top_k_ranks_cold_and_warm_users_as_evaluation_and_recommend(store: Store) -> None:
    ingest_file(store, DEMO_DIR / "reviews.csv", "demo")  # 300 users, cold ones among them
    register_fake_version(store, "demo", DEMO_VOCAB)
    result = evaluate(store, "demo", "fake", ["mgi_hybrid"])
    ndcg = result.per_user["mgi_hybrid"]["ndcg@10"]
    recommender = Recommender.load(store, "demo", "fake", "mgi_hybrid")
    lists = recommender.top_k(list(ndcg.index))  # the evaluation's users, in its order
    assert list(lists) == list(ndcg.index)
    held_out = dict(store.cursor().execute(
        "SELECT user_id, item_id FROM reviews WHERE dataset = 'demo' AND split = 'test'"
    ).fetchall())
    for user, frame in lists.items():
        rank = frame.loc[frame["item_id"] == held_out[user], "rank"]
        expected = 1 / math.log2(int(rank.iloc[0]) + 1) if len(rank) else 0.0
        assert ndcg[user] == pytest.approx(expected), user
    # One user at a time, top_k lists what recommend lists, cold users (one train review,
    # no held-out item) included.
    n_train = store.cursor().execute(
        "SELECT user_id, count(*) FROM reviews WHERE dataset = 'demo' AND split = 'train' "
        "GROUP BY user_id ORDER BY user_id").fetchall()
    cold = [u for u, n in n_train if n == 1]
    warm = [u for u, n in n_train if n > 1]
    assert cold and warm
    assert all(recommender.recommend(u, 1)["cold_start"] for u in cold[:5])
    for user in [*cold[:5], *warm[:5]]:
        items = [i["item_id"] for i in recommender.recommend(user, 10)["items"]]
        assert recommender.top_k([user])[user]["item_id"].tolist() == items, user


def test_top_k_of_the_random_scorer_leaves_out_train_items(toy: Store) -> None:
    lists = Recommender.load(toy, "toy", "fake", "random").top_k(["a", "b"], k=3)
    train = toy.cursor().execute(
        "SELECT user_id, item_id FROM reviews WHERE dataset = 'toy' AND split = 'train'").df()
    for user in ("a", "b"):
        assert len(lists[user]) == 3
        assert not set(lists[user]["item_id"]) & set(train.loc[train["user_id"] == user,
                                                               "item_id"])
