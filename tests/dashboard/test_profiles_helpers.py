"""The Profiles page's pure helpers: choices, frames, the PCA item map and the figures,
on profiles and recommendations written out in code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.embedding_map import embedding_map_figure, fit_item_map
from dashboard.profile_choices import file_stem, user_label, version_options
from dashboard.profile_figures import (
    affinity_comparison_figure,
    affinity_sunburst_figure,
    recommendation_parts_figure,
    top_categories_figure,
)
from dashboard.profile_tables import (
    PROFILE_EXPORT_COLUMNS,
    affinity_comparison_frame,
    category_frame,
    interests_frame,
    matching_reviews_frame,
    profile_export_frame,
    recommendations_export_frame,
    recommendations_frame,
    representative_reviews_frame,
)
from mgi_core.store.queries.profiles import UserVectors

PARENTS = {"Audio > Headphones": "Audio", "Audio > Speakers": "Audio"}


def _profile(version: str = "v1") -> dict:
    """A user with 8 train reviews: 6 Audio (5 headphones, 1 speaker), 2 Books (no L2 in
    ``PARENTS``: its parent comes from the text before '>'), two fine interests."""
    return {
        "user_id": "u1", "version": version, "dataset": "d", "cold": False,
        "n_train_reviews": 8, "mean_sentiment": 0.25,
        "l1": [
            {"key": "Audio", "n_reviews": 6, "share": 0.75, "sentiment": 0.5, "head_prob": None,
             "affinity": 0.375},
            {"key": "Books", "n_reviews": 2, "share": 0.25, "sentiment": -0.5, "head_prob": None,
             "affinity": -0.125},
        ],
        "l2": [
            {"key": "Audio > Headphones", "n_reviews": 5, "share": 0.625, "sentiment": 0.6,
             "head_prob": None, "affinity": 0.375},
            {"key": "Audio > Speakers", "n_reviews": 1, "share": 0.125, "sentiment": 0.0,
             "head_prob": None, "affinity": 0.0},
            {"key": "Books > <i>Fiction</i>", "n_reviews": 2, "share": 0.25, "sentiment": -0.5,
             "head_prob": None, "affinity": -0.125},
        ],
        "interests": [
            {"interest": 0, "n_reviews": 6, "share": 0.75, "sentiment": 0.5,
             "keywords": ["bass", "sound"],
             "representative_reviews": [{"review_id": 1, "text": "=bass is deep"},
                                        {"review_id": 2, "text": "good sound"}]},
            {"interest": 1, "n_reviews": 2, "share": 0.25, "sentiment": -0.5,
             "keywords": ["plot"], "representative_reviews": [{"review_id": 7, "text": "dull"}]},
        ],
    }


def _rec() -> dict:
    """Two recommended items; their parts add up to their scores (1.5 and 0.5)."""
    return {
        "user_id": "u1", "dataset": "d", "version": "v1", "scorer": "mgi_hybrid",
        "cold_start": False, "note": None, "weights": {},
        "items": [
            {"item_id": "i9", "title": "Arc <b>Pro</b>", "category": "Audio > Headphones",
             "score": 1.5, "parts": {"overall": 1.0, "category": 0.75, "popularity": -0.25},
             "features": {}, "matching_reviews": [
                 {"review_id": 1, "item_id": "i1", "rating": 5.0, "similarity": 0.9,
                  "text": "=bass is deep"},
                 {"review_id": 2, "item_id": "i2", "rating": 4.0, "similarity": 0.8,
                  "text": "good sound"}]},
            {"item_id": "i8", "title": None, "category": "Books", "score": 0.5,
             "parts": {"overall": 0.25, "collaborative": 0.25}, "features": {},
             "matching_reviews": []},
        ],
    }


def test_version_options_put_fine_tuned_versions_first_and_base_last() -> None:
    versions = [{"version": "base", "status": "ready"}, {"version": "v3", "status": "ready"},
                {"version": "v2", "status": "failed"}, {"version": "v1", "status": "ready"}]
    assert version_options(versions) == ["v3", "v1", "base"]
    assert version_options([]) == []


def test_user_label_and_file_stem() -> None:
    row = {"user_id": "U7", "n_train_reviews": 1, "top_l1": "Audio", "cold": True}
    assert user_label(row) == "U7 · 1 train reviews · Audio · cold"
    assert user_label(row | {"top_l1": None, "cold": False}) == "U7 · 1 train reviews"
    # Names from user data cannot leave the folder or carry spaces and quotes.
    assert file_stem("my data", "v1", "../u='1'") == "my-data_v1_u-1"


def test_category_frame_places_each_l2_under_its_l1() -> None:
    cats = category_frame(_profile(), PARENTS)
    assert list(cats["level"]) == ["L1", "L1", "L2", "L2", "L2"]
    l2 = cats[cats["level"] == "L2"].set_index("category")
    assert l2.loc["Audio > Speakers", "l1"] == "Audio"
    assert l2.loc["Audio > Speakers", "label"] == "Speakers"  # its own name
    assert l2.loc["Books > <i>Fiction</i>", "l1"] == "Books"  # not in PARENTS: from the path
    assert l2.loc["Audio > Headphones", "affinity"] == 0.375
    assert category_frame({"l1": [], "l2": []}, {}).empty


def test_interest_frames_and_the_profile_export() -> None:
    p = _profile()
    interests = interests_frame(p)
    assert interests.to_dict("records")[0] == {"interest": 1, "n_reviews": 6, "share": 0.75,
                                               "sentiment": 0.5, "keywords": "bass, sound"}
    reps = representative_reviews_frame(p)
    assert reps[["interest", "review_id"]].values.tolist() == [[1, 1], [1, 2], [2, 7]]
    out = profile_export_frame(p)
    # 1 overall + 2 L1 + 3 L2 + 2 interests.
    assert list(out["level"]) == ["overall", "l1", "l1", "l2", "l2", "l2", "interest",
                                  "interest"]
    assert list(out.columns) == PROFILE_EXPORT_COLUMNS
    assert out.loc[out["level"] == "interest", "representative_review_ids"].tolist() == [
        "1, 2", "7"]
    assert out.loc[0, "n_reviews"] == 8 and out.loc[0, "sentiment"] == 0.25


def test_affinity_comparison_lines_up_the_two_versions() -> None:
    a = _profile("v1")
    b = _profile("v2")
    b["l1"] = [{"key": "Audio", "affinity": 0.5}, {"key": "Cameras", "affinity": 0.1}]
    out = affinity_comparison_frame(a, b)
    assert list(out.columns) == ["category", "v1 affinity", "v2 affinity", "change"]
    rows = out.set_index("category")
    # Audio 0.375 → 0.5 (+0.125); Books only in v1, Cameras only in v2: no change to show.
    assert rows.loc["Audio", "change"] == pytest.approx(0.125)
    assert pd.isna(rows.loc["Books", "v2 affinity"]) and pd.isna(rows.loc["Books", "change"])
    assert pd.isna(rows.loc["Cameras", "v1 affinity"])
    assert out["category"].iloc[0] == "Audio"  # the only change comes first
    fig = affinity_comparison_figure(out)
    assert [t.name for t in fig.data] == ["v1 affinity", "v2 affinity"]


def test_recommendation_frames_keep_the_parts_and_the_reasons() -> None:
    rec = _rec()
    out = recommendations_frame(rec)
    assert list(out.columns) == ["rank", "item_id", "title", "item_category", "score",
                                 "overall", "category", "collaborative", "popularity"]
    parts = ["overall", "category", "collaborative", "popularity"]
    np.testing.assert_allclose(out[parts].sum(axis=1), out["score"])  # missing parts are 0
    matches = matching_reviews_frame(rec)
    assert matches[["rank", "matched_item_id"]].values.tolist() == [[1, "i1"], [1, "i2"]]
    export = recommendations_export_frame(rec)
    assert export["matching_review_texts"].tolist() == ["=bass is deep | good sound", ""]
    assert set(export[["user_id", "version", "scorer"]].iloc[0]) == {"u1", "v1", "mgi_hybrid"}


def test_parts_figure_stacks_one_trace_per_granularity() -> None:
    fig = recommendation_parts_figure(_rec())
    assert [t.name for t in fig.data] == ["overall", "category", "collaborative", "popularity"]
    assert fig.layout.barmode == "relative"
    assert list(fig.data[0].y) == ["1. Arc &lt;b&gt;Pro&lt;/b&gt;", "2. i8"]  # escaped titles
    # Per item, the stacked bars add up to the score.
    totals = np.sum([list(t.x) for t in fig.data], axis=0)
    np.testing.assert_allclose(totals, [1.5, 0.5])
    empty = recommendation_parts_figure(_rec() | {"items": []})
    assert not empty.data and empty.layout.annotations[0].text == "No recommendations"


def test_sunburst_sizes_by_reviews_and_colours_by_affinity() -> None:
    fig = affinity_sunburst_figure(category_frame(_profile(), PARENTS))
    sun = fig.data[0]
    nodes = dict(zip(sun.ids, zip(sun.parents, sun.values, sun.marker.colors, strict=True),
                     strict=True))
    sep = "\x1f"
    # Audio: 6 reviews = 5 headphones + 1 speaker; Books: 2 = its one L2.
    assert nodes["Audio"] == ("", 6, 0.375)
    assert nodes[f"Audio{sep}Audio > Speakers"] == ("Audio", 1, 0.0)
    assert nodes["Books"] == ("", 2, -0.125)
    assert sun.branchvalues == "total"
    assert "&lt;i&gt;Fiction&lt;/i&gt;" in list(sun.labels)  # user text is escaped
    assert sun.marker.cmid == 0 and sun.marker.cmax == pytest.approx(0.375)


def test_top_categories_use_the_finest_level_largest_on_top() -> None:
    cats = category_frame(_profile(), PARENTS)
    fig = top_categories_figure(cats, n=2)
    bar = fig.data[0]
    assert list(bar.y) == ["Audio &gt; Speakers", "Audio &gt; Headphones"]  # L2, top 2
    assert list(bar.x) == [0.0, 0.375]
    only_l1 = top_categories_figure(cats[cats["level"] == "L1"])
    assert list(only_l1.data[0].y) == ["Books", "Audio"]


def test_item_map_projects_on_the_main_axes() -> None:
    # Items spread along e0 (variance 4) and e1 (variance 1), none along e2.
    vecs = np.array([[2, 0, 0], [-2, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=np.float32)
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    m = fit_item_map(ids, vecs)
    assert m.coords.shape == (4, 2) and m.components.shape == (2, 3)
    # PC1 is ±e0, PC2 is ±e1; variance shares 8/10 and 2/10.
    np.testing.assert_allclose(np.abs(m.coords), [[2, 0], [2, 0], [0, 1], [0, 1]], atol=1e-6)
    assert m.explained == pytest.approx((0.8, 0.2))
    # A new vector lands where its coordinates say; coords_of skips unknown items.
    np.testing.assert_allclose(np.abs(m.project(np.array([1.0, 0.5, 3.0]))), [[1, 0.5]],
                               atol=1e-6)
    np.testing.assert_allclose(m.coords_of(["c", "zz", "a"]), m.coords[[2, 0]])


def test_item_map_edge_cases_and_the_fit_sample() -> None:
    one = fit_item_map(np.array(["a"], dtype=object), np.ones((1, 4), np.float32))
    assert one.coords.shape == (1, 2) and np.all(one.coords == 0)
    none = fit_item_map(np.array([], dtype=object), np.zeros((0, 4), np.float32))
    assert none.coords.shape == (0, 2)
    flat = fit_item_map(np.array(["a", "b"], dtype=object),
                             np.array([[0.0], [1.0]], np.float32))  # d = 1: one component
    assert flat.coords.shape == (2, 2) and np.all(flat.coords[:, 1] == 0)
    rng = np.random.default_rng(0)
    big = rng.normal(size=(300, 8)).astype(np.float32)
    sampled = fit_item_map(np.arange(300).astype(str).astype(object), big, max_fit=50)
    assert sampled.coords.shape == (300, 2)  # fitted on 50, every item projected


def test_embedding_map_highlights_the_user_and_the_recommendations() -> None:
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(40, 5)).astype(np.float32)
    ids = np.array([f"i{k}" for k in range(40)], dtype=object)
    m = fit_item_map(ids, vecs)
    user = UserVectors(review_ids=np.array([1, 2]), item_ids=np.array(["i0", "i1"], object),
                       reviews=vecs[:2], interest_keys=["0"], interests=vecs[:1],
                       overall=vecs[0])
    fig = embedding_map_figure(m, user, ["i5", "nope", "i7"], {"i5": "<b>x</b>"},
                                    max_items=10)
    names = [t.name for t in fig.data]
    assert names == ["Catalogue items", "User's train reviews", "Interest centroids",
                     "Overall interest", "Recommended items"]
    assert len(fig.data[0].x) == 10  # the catalogue is sampled down to max_items
    np.testing.assert_allclose(np.c_[fig.data[1].x, fig.data[1].y], m.coords[:2], atol=1e-5)
    rec = fig.data[4]
    assert list(rec.text) == ["1", "3"]  # ranks; the unknown item is skipped
    np.testing.assert_allclose(np.c_[rec.x, rec.y], m.coords[[5, 7]])
    assert list(rec.customdata) == ["&lt;b&gt;x&lt;/b&gt;", "i7"]
    bare = embedding_map_figure(m)
    assert [t.name for t in bare.data] == ["Catalogue items"]
    empty = fit_item_map(np.array([], dtype=object), np.zeros((0, 5), np.float32))
    assert embedding_map_figure(empty).layout.annotations[0].text == "No item vectors"
