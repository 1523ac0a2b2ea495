"""Scorers, fusion, recommendations with reasons and the no-leakage rule, on exact data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from mgi_core.cli import DEMO_DIR
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import ConfigError, UnknownUserError
from mgi_core.evaluation.compare import compare
from mgi_core.evaluation.protocol import evaluate
from mgi_core.profiles import service
from mgi_core.profiles.service import ensure_profiles, load_train_embeddings
from mgi_core.ranking.features import (
    ALL_FEATURES,
    build_context,
    compute_features,
    fit_mf,
    item_knn_similarity,
)
from mgi_core.ranking.fusion import fused
from mgi_core.ranking.interactions import load_interactions
from mgi_core.ranking.model import aligned_item_vectors, load_ranking_context
from mgi_core.ranking.recommend import Recommender, recommend
from tests.conftest import write_csv
from tests.fake_encoder import DEMO_VOCAB, register_fake_version

VOCAB = ["bass", "headphones", "lens", "zoom", "plot", "novel", "secret", "pad"]


def _rows() -> list[list[object]]:
    """4 users × 3 categories; each user's last review (test) and second last (val)."""
    rows = []
    plan = {
        "a": [("h1", "bass headphones"), ("h2", "bass"), ("l1", "lens"), ("h3", "headphones")],
        "b": [("h1", "headphones"), ("h3", "bass headphones"), ("h2", "bass"), ("b1", "plot")],
        "c": [("l1", "lens zoom"), ("l2", "zoom"), ("b1", "plot novel"), ("l3", "lens")],
        "d": [("b1", "novel"), ("b2", "plot"), ("l2", "zoom"), ("b3", "novel plot")],
    }
    cats = {"h": "Audio > Headphones", "l": "Cameras > Lenses", "b": "Books > Fiction"}
    for user, reviews in plan.items():
        for t, (item, text) in enumerate(reviews):
            rows.append([user, item, text, 5, 1_600_000_000 + t * 1000, cats[item[0]],
                         f"Title {item}"])
    return rows


@pytest.fixture
def fake_store(store, tmp_path):
    ingest_file(store, write_csv(tmp_path / "r.csv", _rows()), "toy")
    register_fake_version(store, "toy", VOCAB)
    return store


def test_item_knn_is_cosine_on_the_binary_matrix() -> None:
    import scipy.sparse as sp

    # items 0 and 1 share user 0; item 1 also has user 1: cos = 1 / (1 · √2) ≈ 0.707.
    train = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32))
    sim = item_knn_similarity(train)
    assert sim[0, 1] == pytest.approx(1 / np.sqrt(2))
    assert sim[0, 2] == 0 and np.all(np.diag(sim) == 0)


def test_popularity_and_knn_features_by_hand(fake_store) -> None:
    ctx = load_ranking_context(fake_store, "toy", "fake", with_mf=False)
    inter = ctx.inter
    items = list(inter.items)
    # Train reviews: a: h1,h2 · b: h1,h3 · c: l1,l2 · d: b1,b2 → h1 is the most popular.
    assert ctx.signals["popularity"].log_counts[items.index("h1")] == pytest.approx(np.log(3))
    u = np.array([list(inter.users).index("a")])
    feats = compute_features(ctx, u, ("item_knn", "content"))
    # a's train items h1, h2; h3 co-occurs with h1 (user b) → positive kNN score; l3 → 0.
    assert feats["item_knn"][0, items.index("h3")] > 0
    assert feats["item_knn"][0, items.index("l1")] == 0
    # Content: a wrote about bass/headphones; the headphones item outscores the books.
    assert feats["content"][0, items.index("h3")] > feats["content"][0, items.index("b1")]


def test_test_only_item_gets_no_signal_from_its_test_review(fake_store) -> None:
    ctx = load_ranking_context(fake_store, "toy", "fake", with_mf=False)
    items = list(ctx.inter.items)
    # l3 and b3 are reviewed only in the test split: no item vector, no content signal.
    for only_test in ("l3", "b3"):
        assert np.all(ctx.item_vecs[items.index(only_test)] == 0)
    users = np.arange(ctx.inter.n_users)
    feats = compute_features(ctx, users, ("content", "content_interest", "content_last"))
    for name, matrix in feats.items():
        assert np.all(matrix[:, items.index("l3")] == 0), name


def test_recommend_gives_parts_and_matching_reviews_and_excludes_train(fake_store) -> None:
    out = recommend(fake_store, "toy", "fake", "a", k=3, scorer="untuned_hybrid")
    ids = [i["item_id"] for i in out["items"]]
    assert not {"h1", "h2"} & set(ids)  # a's train items are excluded
    assert ids[0] == "h3"  # headphones co-bought with h1, and about bass/headphones
    top = out["items"][0]
    assert set(top["parts"]) == {"overall", "collaborative", "popularity"}
    assert sum(top["parts"].values()) == pytest.approx(top["score"])
    assert top["matching_reviews"][0]["text"] in {"bass headphones", "bass"}
    assert not out["cold_start"]



def test_a_loaded_recommender_ranks_every_user_like_recommend(fake_store) -> None:
    recommender = Recommender.load(fake_store, "toy", "fake", "untuned_hybrid")
    assert recommender.weights == {"content": 1.0, "item_knn": 1.0, "popularity": 0.5}
    assert recommender.titles["h3"] == "Title h3"
    for user in ("a", "b", "c", "d"):  # fitted once, reused per user: the same answer
        assert recommender.recommend(user, 3) == recommend(
            fake_store, "toy", "fake", user, k=3, scorer="untuned_hybrid")
    with pytest.raises(UnknownUserError, match="'zz'"):
        recommender.recommend("zz")
    with pytest.raises(ConfigError, match="Unknown scorer 'best'"):
        Recommender.load(fake_store, "toy", "fake", "best")


def test_recommenders_of_several_scorers_share_one_fitted_context(fake_store) -> None:
    ctx = load_ranking_context(fake_store, "toy", "fake", with_mf=True)
    for scorer in ("untuned_hybrid", "popularity", "mf"):
        shared = Recommender.load(fake_store, "toy", "fake", scorer, context=ctx)
        assert shared.ctx is ctx
        alone = Recommender.load(fake_store, "toy", "fake", scorer)
        for user in ("a", "b", "c", "d"):
            assert shared.recommend(user, 3) == alone.recommend(user, 3)
    without_mf = load_ranking_context(fake_store, "toy", "fake", with_mf=False)
    with pytest.raises(ConfigError, match="without MF"):
        Recommender.load(fake_store, "toy", "fake", "mgi_hybrid", context=without_mf)

def test_evaluate_stores_paired_per_user_metrics_and_compares(fake_store) -> None:
    result = evaluate(fake_store, "toy", "fake", ("popularity", "content", "content_hybrid"))
    summary = result.summary()
    assert list(summary["n_users"]) == [4, 4, 4]
    assert set(result.weights) == {"content_hybrid"}
    report = compare(fake_store, "fake:popularity", "fake:content", "toy", n_boot=200)
    frame = report.to_frame()
    assert frame.loc["ndcg@10", "n_users"] == 4
    assert frame.loc["ndcg@10", "diff"] == pytest.approx(
        summary.loc["content", "ndcg@10"] - summary.loc["popularity", "ndcg@10"])
    # A system against itself: two distinct mean columns, no difference.
    same = compare(fake_store, "fake:content", "fake:content", "toy", n_boot=200).to_frame()
    assert same.columns.is_unique
    assert same.loc["ndcg@10", "mean fake:content (A)"] == same.loc["ndcg@10",
                                                                   "mean fake:content (B)"]
    assert same.loc["ndcg@10", "diff"] == 0.0




def _recomputed_context(store, dataset: str, version: str):
    """The context as load_ranking_context built it before profiles were read back."""
    inter = load_interactions(store, dataset)
    reviews, vectors = load_train_embeddings(store, dataset, version)
    profiles = service.compute_profiles(store, dataset, version, embeddings=(reviews, vectors))
    item_vecs = aligned_item_vectors(store, dataset, version, inter.items)
    return build_context(inter, item_vecs, profiles, with_mf=False)


@pytest.mark.parametrize("dataset", ["toy", "demo"])
def test_ranking_from_stored_profiles_equals_recomputed(store, tmp_path, monkeypatch,
                                                        dataset) -> None:
    if dataset == "toy":
        ingest_file(store, write_csv(tmp_path / "r.csv", _rows()), "toy")
        register_fake_version(store, "toy", VOCAB)
    else:  # 300 users, cold ones, several fine interests per user
        ingest_file(store, DEMO_DIR / "reviews.csv", "demo")
        register_fake_version(store, "demo", DEMO_VOCAB)
    expected = _recomputed_context(store, dataset, "fake")
    ensure_profiles(store, dataset, "fake")

    def no_recompute(*args, **kwargs):
        raise AssertionError("profiles were recomputed although they are stored")

    monkeypatch.setattr(service, "compute_profiles", no_recompute)
    ctx = load_ranking_context(store, dataset, "fake", with_mf=False)
    users = np.arange(ctx.inter.n_users)
    names = tuple(n for n in ALL_FEATURES if n != "mf")
    got, want = compute_features(ctx, users, names), compute_features(expected, users, names)
    assert set(got) == set(want) == set(names)
    for name in names:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
    # The fused score over every feature (weight 1 each) is the same to 1e-6 as well.
    exclude = ctx.inter.train[users].toarray() > 0
    weights = dict.fromkeys(names, 1.0)
    np.testing.assert_allclose(fused(got, weights, exclude), fused(want, weights, exclude),
                               atol=1e-6)


def test_ranking_context_reads_the_profiles_ensure_profiles_stores(fake_store) -> None:
    def n_rows() -> int:
        return fake_store.cursor().execute(
            "SELECT count(*) FROM user_profiles WHERE version = 'fake' AND dataset = 'toy'"
        ).fetchone()[0]

    assert n_rows() == 0
    load_ranking_context(fake_store, "toy", "fake", with_mf=False)
    assert n_rows() == 0  # reads never write: the profiles were computed in memory
    ensure_profiles(fake_store, "toy", "fake")
    # 4 users → 4 overall rows at least; ranking and the Profiles page then read them.
    assert n_rows() >= 4
    before = n_rows()
    load_ranking_context(fake_store, "toy", "fake", with_mf=False)
    ensure_profiles(fake_store, "toy", "fake")
    assert n_rows() == before


def test_fit_mf_emits_no_blas_thread_warning(monkeypatch) -> None:
    import implicit.utils
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_info, threadpool_limits

    if not any(api["user_api"] == "blas" for api in threadpool_info()):
        pytest.skip("threadpoolctl sees no BLAS here: implicit has nothing to warn about")
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]], np.float32))
    with threadpool_limits(2, "blas"):  # a BLAS with 2 threads: implicit would warn
        # Control: the check itself warns once per process, so it is re-armed here.
        monkeypatch.setattr(implicit.utils, "_checked_blas_config", False)
        with pytest.warns(RuntimeWarning, match="is configured to use 2 threads"):
            AlternatingLeastSquares(factors=2, use_gpu=False)
        monkeypatch.setattr(implicit.utils, "_checked_blas_config", False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            user_factors, item_factors = fit_mf(train, factors=2)
    assert [str(w.message) for w in caught] == []
    assert user_factors.shape == (3, 2) and item_factors.shape == (4, 2)
