"""Tests for the demo dataset generator (tools/make_demo.py) and the committed demo files."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import pytest

from mgi_core.cli import DEMO_DIR
from tools.make_demo import CSV_COLUMNS, generate_demo_reviews, write_demo_dataset

SEP = " > "


@pytest.fixture(scope="module")
def demo() -> tuple[list[dict], dict]:
    return generate_demo_reviews()


def _by_user(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        out[row["user_id"]].append(row)
    return out


def test_same_seed_gives_identical_rows_and_truth(demo: tuple[list[dict], dict]) -> None:
    rows, planted = demo
    rows_again, planted_again = generate_demo_reviews(seed=7, n_users=300)
    assert rows_again == rows
    assert planted_again == planted


def test_other_seed_gives_other_rows(demo: tuple[list[dict], dict]) -> None:
    rows, _ = demo
    other, _ = generate_demo_reviews(seed=8, n_users=300)
    assert [r["text"] for r in other] != [r["text"] for r in rows]


def test_committed_demo_files_match_the_generator(tmp_path: Path) -> None:
    csv_path, planted_path = write_demo_dataset(tmp_path)
    assert csv_path.read_bytes() == (DEMO_DIR / "reviews.csv").read_bytes(), (
        "mgi_core/demo/reviews.csv is stale: run `python tools/make_demo.py mgi_core/demo`"
    )
    assert planted_path.read_bytes() == (DEMO_DIR / "planted.json").read_bytes()


def test_csv_round_trips_through_the_csv_module(tmp_path: Path) -> None:
    # Texts contain commas, quotes and newlines; reading the file back must give the rows.
    rows, _ = generate_demo_reviews(seed=3, n_users=40)
    csv_path, _ = write_demo_dataset(tmp_path, seed=3, n_users=40)
    with csv_path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        back = list(reader)
    assert [{k: str(v) for k, v in row.items()} for row in rows] == back


def test_shape_and_sizes(demo: tuple[list[dict], dict]) -> None:
    rows, planted = demo
    assert 2500 <= len(rows) <= 4500
    assert len({r["user_id"] for r in rows}) == 300 == planted["n_users"]
    assert 150 <= len({r["item_id"] for r in rows}) <= 250
    assert all(set(r) == set(CSV_COLUMNS) for r in rows)
    per_user = Counter(r["user_id"] for r in rows)
    cold = {u for u, info in planted["users"].items() if info["cold"]}
    assert cold == {u for u, n in per_user.items() if n == 1}
    assert 10 <= len(cold) <= 20  # ~5 % of 300
    assert all(4 <= n <= 20 for u, n in per_user.items() if u not in cold)


def test_no_duplicate_user_item_pairs(demo: tuple[list[dict], dict]) -> None:
    rows, _ = demo
    pairs = [(r["user_id"], r["item_id"]) for r in rows]
    assert len(pairs) == len(set(pairs))


def test_ratings_are_ints_from_1_to_5(demo: tuple[list[dict], dict]) -> None:
    rows, _ = demo
    assert all(type(r["rating"]) is int and 1 <= r["rating"] <= 5 for r in rows)
    assert set(Counter(r["rating"] for r in rows)) == {1, 2, 3, 4, 5}


def test_categories_have_three_levels_and_items_one_leaf(demo: tuple[list[dict], dict]) -> None:
    rows, planted = demo
    assert all(len(r["category"].split(SEP)) == 3 for r in rows)
    assert all(
        all(part.strip() == part and part for part in r["category"].split(SEP)) for r in rows
    )
    assert {r["category"] for r in rows} <= set(planted["categories"])
    leaf_of: dict[str, set[str]] = defaultdict(set)
    title_of: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        leaf_of[r["item_id"]].add(r["category"])
        title_of[r["item_id"]].add(r["item_title"])
    assert all(len(v) == 1 for v in leaf_of.values())
    assert all(len(v) == 1 for v in title_of.values())
    assert len({r["category"].split(SEP)[0] for r in rows}) == 6


def test_rows_sorted_and_timestamps_increase_within_the_window(
    demo: tuple[list[dict], dict],
) -> None:
    rows, _ = demo
    keys = [(r["user_id"], r["timestamp"]) for r in rows]
    assert keys == sorted(keys)
    assert all(type(r["timestamp"]) is int for r in rows)
    # 2022-01-01 00:00:00 UTC .. 2024-12-31 23:59:59 UTC
    assert all(1_640_995_200 <= r["timestamp"] <= 1_735_689_599 for r in rows)
    for user_rows in _by_user(rows).values():
        times = [r["timestamp"] for r in user_rows]
        assert all(a < b for a, b in pairwise(times))


def test_texts_are_varied_plain_text(demo: tuple[list[dict], dict]) -> None:
    rows, _ = demo
    texts = [r["text"] for r in rows]
    assert len(set(texts)) == len(texts)
    assert not any("<" in t or ">" in t for t in texts)
    assert any("\n" in t for t in texts)
    assert any('"' in t for t in texts)
    assert any("," in t for t in texts)
    assert any(not t.isascii() for t in texts)


def test_text_sentiment_follows_the_rating(demo: tuple[list[dict], dict]) -> None:
    # Openings are drawn from per-rating pools, so some phrases only appear at one end.
    rows, _ = demo
    for row in rows:
        if "Highly recommended." in row["text"] or "Five stars, no hesitation." in row["text"]:
            assert row["rating"] >= 4
        if "Complete waste of money." in row["text"] or "I am returning it." in row["text"]:
            assert row["rating"] <= 2


def test_planted_truth_matches_the_rows(demo: tuple[list[dict], dict]) -> None:
    rows, planted = demo
    users = planted["users"]
    assert set(users) == {r["user_id"] for r in rows}
    by_user = _by_user(rows)
    for user_id, info in users.items():
        user_rows = by_user[user_id]
        l1_of = [r["category"].split(SEP)[0] for r in user_rows]
        counts = Counter(l1_of).most_common()
        fav = info["favourite_l1"]
        # The favourite L1 is the strict majority L1 of the user, rated 4+ on average.
        assert counts[0][0] == fav, user_id
        assert len(counts) == 1 or counts[1][1] < counts[0][1], user_id
        fav_ratings = [r["rating"] for r, l1 in zip(user_rows, l1_of, strict=True) if l1 == fav]
        assert sum(fav_ratings) / len(fav_ratings) >= 4, user_id
        assert info["favourite_l2"].startswith(fav + SEP)
        assert info["favourite_l3"].startswith(info["favourite_l2"] + SEP)
        assert info["favourite_l3"] in planted["categories"]
        disliked = info["disliked_l1"]
        if disliked is not None:
            assert disliked != fav
            dis_ratings = [
                r["rating"] for r, l1 in zip(user_rows, l1_of, strict=True) if l1 == disliked
            ]
            assert dis_ratings, user_id
            assert sum(dis_ratings) / len(dis_ratings) <= 2.5, user_id
        if info["cold"]:
            assert len(user_rows) == 1
            assert user_rows[0]["category"] == info["favourite_l3"]
            assert disliked is None


def test_planted_l2_and_l3_are_the_users_top_subcategories(
    demo: tuple[list[dict], dict],
) -> None:
    rows, planted = demo
    by_user = _by_user(rows)
    for user_id, info in planted["users"].items():
        cats = [r["category"] for r in by_user[user_id]]
        l2s = Counter(
            SEP.join(c.split(SEP)[:2]) for c in cats if c.startswith(info["favourite_l1"] + SEP)
        )
        l3s = Counter(c for c in cats if c.startswith(info["favourite_l2"] + SEP))
        for counts, expected in ((l2s, info["favourite_l2"]), (l3s, info["favourite_l3"])):
            top = counts.most_common(2)
            assert top[0][0] == expected, user_id
            assert len(top) == 1 or top[1][1] < top[0][1], user_id


def test_interests_are_spread_over_categories(demo: tuple[list[dict], dict]) -> None:
    _, planted = demo
    users = planted["users"].values()
    favourites = Counter(u["favourite_l1"] for u in users)
    assert len(favourites) == 6
    assert max(favourites.values()) - min(favourites.values()) <= 1
    n_disliked = sum(u["disliked_l1"] is not None for u in users)
    assert 0.35 * len(planted["users"]) <= n_disliked <= 0.65 * len(planted["users"])


def test_planted_json_lists_every_leaf(demo: tuple[list[dict], dict]) -> None:
    _, planted = demo
    on_disk = json.loads((DEMO_DIR / "planted.json").read_text(encoding="utf-8"))
    assert on_disk == planted
    assert planted["seed"] == 7
    cats = planted["categories"]
    assert len(cats) == len(set(cats))
    assert all(len(c.split(SEP)) == 3 for c in cats)
    l2_children = Counter(SEP.join(c.split(SEP)[:2]) for c in cats)
    assert set(l2_children.values()) == {2}


def test_rejects_non_positive_user_count() -> None:
    with pytest.raises(ValueError, match="n_users must be >= 1"):
        generate_demo_reviews(n_users=0)
