"""Interest drift: a profile as of a date, and how it moved since, with the keyword fake
encoder (exact numbers) on the demo data and on a small file written here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from mgi_core.config import ProfileConfig
from mgi_core.data.ingest import ingest_file
from mgi_core.errors import ConfigError, MgiError, UnknownUserError
from mgi_core.profiles.builder import build_user_profiles
from mgi_core.profiles.drift import (
    drift,
    match_interests,
    parse_date,
    profile_as_of,
    share_change,
)
from mgi_core.profiles.service import load_train_embeddings, train_corpus, user_profile
from mgi_core.store import Store
from tests.conftest import write_csv
from tests.fake_encoder import register_fake_version

VOCAB = ["headphones", "sound", "novel", "plot", "battery"]
DAY = 86_400


def _ts(year: int, month: int, day: int = 15) -> int:
    return int((datetime(year, month, day, 12) - datetime(1970, 1, 1)).total_seconds())


def mover_rows() -> list[list[object]]:
    """'mover' writes about headphones in early 2021 and one novel in June 2021, then about
    thrillers' plots in 2022; 'other' reviews batteries. The split gives each user's two
    latest reviews to val/test, so mover's train reviews are the 5 audio ones, the novel and
    the first 4 plot ones."""
    rows: list[list[object]] = [
        ["mover", f"a{m}", f"Headphones with a warm sound, the headphones fit well ({m}).", 5,
         _ts(2021, m), "Audio > Headphones", f"Cans {m}"] for m in range(1, 6)
    ]
    rows.append(["mover", "b0", "A novel with a quiet novel feeling.", 4, _ts(2021, 6),
                 "Books > Literary", "Quiet"])
    rows += [
        ["mover", f"b{m}", f"The plot twists keep coming, what a plot ({m}).", 5,
         _ts(2022, m), "Books > Thrillers", f"Thriller {m}"] for m in range(1, 7)
    ]
    rows += [
        ["other", f"c{m}", f"Battery charger, battery lasts ({m}).", 4, _ts(2021, m),
         "Electronics > Chargers", f"Charger {m}"] for m in range(1, 5)
    ]
    return rows


@pytest.fixture
def mover(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "drift.duckdb")
    ingest_file(s, write_csv(tmp_path / "mover.csv", mover_rows()), "moves")
    register_fake_version(s, "moves", VOCAB)
    yield s
    s.close()


def _interest_keys(profile: dict) -> list[tuple[int, list[str], list[int]]]:
    return [(i["n_reviews"], i["keywords"], [r["review_id"] for r in i["representative_reviews"]])
            for i in profile["interests"]]


def test_as_of_profile_is_build_user_profiles_of_the_reviews_up_to_that_day(
        demo: Store) -> None:
    corpus = train_corpus(demo, "demo")
    user, day = "U0003", "2023-12-31"
    got = profile_as_of(demo, "demo", "fake", user, day, corpus=corpus)
    reviews, vectors = load_train_embeddings(demo, "demo", "fake", (user, user))
    keep = (reviews["ts"] < datetime(2024, 1, 1)).to_numpy()  # up to the end of the day
    assert 2 <= keep.sum() < len(keep)  # some reviews, not all: the date cuts
    built = build_user_profiles(reviews[keep], vectors[keep], ProfileConfig(), corpus=corpus)
    rows = built.for_user(user)
    assert got["n_train_reviews"] == int(keep.sum())
    for level in ("l1", "l2"):
        expected = rows[rows["level"] == level].set_index("key")
        assert {c["key"] for c in got[level]} == set(expected.index)
        for c in got[level]:
            assert c["share"] == pytest.approx(expected.loc[c["key"], "share"])
            assert c["affinity"] == pytest.approx(expected.loc[c["key"], "affinity"])
        affinities = [c["affinity"] for c in got[level]]
        assert affinities == sorted(affinities, reverse=True)  # user_profile's order
    interests = rows[rows["level"] == "interest"]
    assert sorted(i["n_reviews"] for i in got["interests"]) == sorted(interests["n_reviews"])
    assert sorted(map(tuple, interests["keywords"])) == sorted(
        tuple(i["keywords"]) for i in got["interests"])


@pytest.mark.parametrize("user", ["U0001", "U0003", "U0150"])
def test_as_of_a_date_after_the_last_review_is_the_stored_profile(demo: Store,
                                                                  user: str) -> None:
    """Built in memory for one user vs built for all users in batches and read back from
    the store: the same profile, in the same order."""
    stored = user_profile(demo, "demo", "fake", user)
    late = profile_as_of(demo, "demo", "fake", user, "2100-01-01")
    assert late.keys() == stored.keys()
    assert late["n_train_reviews"] == stored["n_train_reviews"]
    assert late["cold"] == stored["cold"]
    for level in ("l1", "l2"):
        assert [c["key"] for c in late[level]] == [c["key"] for c in stored[level]]
        assert [c["affinity"] for c in late[level]] == pytest.approx(
            [c["affinity"] for c in stored[level]])
    assert _interest_keys(late) == _interest_keys(stored)
    assert late["interests"][0]["representative_reviews"] == \
        stored["interests"][0]["representative_reviews"]  # texts too


def test_a_user_moving_from_audio_to_books(mover: Store) -> None:
    moved = drift(mover, "moves", "fake", "mover", "2021-12-31")
    assert (moved.n_reviews_then, moved.n_reviews_now) == (6, 10)
    l1 = {c.category: c for c in moved.l1}
    # Then: 5 audio + 1 book of 6; now: 5 + 5 of 10.
    assert l1["Books"].change == "rose"
    assert (l1["Books"].share_then, l1["Books"].share_now) == pytest.approx((1 / 6, 1 / 2))
    assert l1["Audio"].change == "fell"
    assert (l1["Audio"].share_then, l1["Audio"].share_now) == pytest.approx((5 / 6, 1 / 2))
    assert moved.l1[0].category in {"Audio", "Books"}  # the largest changes first (|1/3|)
    l2 = {c.category: c for c in moved.l2}
    assert l2["Books > Thrillers"].change == "new" and l2["Books > Thrillers"].n_now == 4
    assert l2["Books > Literary"].change == "fell"
    # Fine interests: headphones and the novel persist (same centres), the plots appear.
    status = {i.status: [] for i in moved.interests}
    for i in moved.interests:
        status[i.status].append(i)
    assert sorted(status) == ["appeared", "persisted"]
    assert len(status["persisted"]) == 2
    assert all(i.similarity == pytest.approx(1.0, abs=1e-5) for i in status["persisted"])
    [new] = status["appeared"]
    assert new.n_now == 4 and "plot" in new.keywords_now and new.similarity is None
    # The overall vector moved: 5 audio then, half of the weight on books now.
    assert 0.3 < moved.overall_similarity < 0.95
    text = "\n".join(moved.lines())
    assert "Books" in text and "rose" in text and "appeared" in text
    out = moved.to_dict()
    assert out["as_of"] == "2021-12-31" and out["first_review"] == "2021-01-15"
    assert out["then"]["n_train_reviews"] == 6 and out["now"]["n_train_reviews"] == 10


def test_the_date_counts_to_the_end_of_its_day(mover: Store) -> None:
    # The novel was written on 2021-06-15 at noon: in the profile as of that day.
    assert profile_as_of(mover, "moves", "fake", "mover", "2021-06-15")["n_train_reviews"] == 6
    assert profile_as_of(mover, "moves", "fake", "mover", "2021-06-14")["n_train_reviews"] == 5


def test_the_dataset_half_life_weights_the_vectors(mover: Store) -> None:
    plain = drift(mover, "moves", "fake", "mover", "2021-12-31").overall_similarity
    mover.cursor().execute(
        "UPDATE datasets SET profile_half_life_days = 30 WHERE name = 'moves'")
    decayed = drift(mover, "moves", "fake", "mover", "2021-12-31").overall_similarity
    # Now the latest reviews (plots, 2022) outweigh the audio ones by far, so the overall
    # vector is further from the 2021 one than without decay; recomputed by hand here.
    reviews, vectors = load_train_embeddings(mover, "moves", "fake", ("mover", "mover"))
    config = ProfileConfig(half_life_days=30)
    early = (reviews["ts"] < datetime(2022, 1, 1)).to_numpy()

    def overall(mask: np.ndarray) -> np.ndarray:
        built = build_user_profiles(reviews[mask], vectors[mask], config)
        _, vecs = built.vectors_of("overall")
        return vecs[0]

    assert decayed == pytest.approx(float(overall(early) @ overall(np.ones_like(early))),
                                    abs=1e-6)
    assert decayed < plain - 0.05


def test_errors_say_what_is_wrong(mover: Store, tmp_path: Path) -> None:
    with pytest.raises(MgiError, match=r"no train review on or before 2020-12-31: their "
                                       r"first is from 2021-01-15"):
        drift(mover, "moves", "fake", "mover", "2020-12-31")
    with pytest.raises(UnknownUserError, match="'nobody' has no training reviews"):
        profile_as_of(mover, "moves", "fake", "nobody", "2021-12-31")
    with pytest.raises(ConfigError, match=r"'2021-13-01' is not a date: give it as YYYY-MM-DD"):
        drift(mover, "moves", "fake", "mover", "2021-13-01")
    # A file without timestamps, and one whose timestamps only order the reviews.
    rows = mover_rows()
    header = ["user_id", "item_id", "text", "rating", "category", "item_title"]
    undated = [[r[0], r[1], r[2], r[3], r[5], r[6]] for r in rows]
    ingest_file(mover, write_csv(tmp_path / "undated.csv", undated, header), "undated")
    register_fake_version(mover, "undated", VOCAB, version="fake_u")
    with pytest.raises(MgiError, match="'undated' has no review timestamps, and drift needs "
                                       "dates"):
        drift(mover, "undated", "fake_u", "mover", "2021-12-31")
    ordered = [[*r[:4], n, *r[5:]] for n, r in enumerate(rows, start=1)]
    ingest_file(mover, write_csv(tmp_path / "ordered.csv", ordered), "ordered")
    register_fake_version(mover, "ordered", VOCAB, version="fake_o")
    with pytest.raises(MgiError, match="only order the reviews, not dates"):
        profile_as_of(mover, "ordered", "fake_o", "mover", "1970-01-01")


def test_share_change_labels() -> None:
    assert share_change(None, 0.2) == "new"
    assert share_change(0.2, None) == "gone"
    assert share_change(0.2, 0.5) == "rose"
    assert share_change(0.5, 0.2) == "fell"
    assert share_change(0.5, 0.502) == "steady"  # under half a percentage point
    with pytest.raises(ValueError):
        share_change(None, None)


def test_interests_are_matched_greedily_above_the_threshold() -> None:
    e = np.eye(3, dtype=np.float32)
    tilted = np.array([0.9, np.sqrt(1 - 0.81), 0.0], dtype=np.float32)  # cos 0.9 to e0
    then = np.stack([e[0], e[1]])  # (2, 3)
    now = np.stack([tilted, e[0], e[2]])  # (3, 3)
    # e0 takes its exact match first (1.0), so tilted finds no partner; e1 matches nothing
    # (cos with tilted 0.44 < 0.8): then[1] faded, now[0] and now[2] appeared.
    assert match_interests(then, now) == [(0, 1, pytest.approx(1.0))]
    assert match_interests(then[:1], now[:1]) == [(0, 0, pytest.approx(0.9))]
    assert match_interests(then[:1], now[:1], threshold=0.95) == []
    assert match_interests(then[:0], now) == []


def test_parse_date() -> None:
    assert parse_date("2021-06-15").isoformat() == "2021-06-15"
    assert parse_date(datetime(2021, 6, 15, 23, 59)) == parse_date("2021-06-15")
    assert parse_date(parse_date("2021-06-15") + timedelta(days=1)).isoformat() == "2021-06-16"
    with pytest.raises(ConfigError, match="not a date"):
        parse_date("15/06/2021")


def test_with_a_threshold_above_one_every_interest_is_new_or_faded(mover: Store) -> None:
    moved = drift(mover, "moves", "fake", "mover", "2021-12-31", threshold=1.01)
    faded = [i for i in moved.interests if i.status == "faded"]
    appeared = [i for i in moved.interests if i.status == "appeared"]
    assert len(faded) == len(moved.then["interests"]) == 2
    assert len(appeared) == len(moved.now["interests"]) == 3
    assert {i.n_then for i in faded} == {5, 1} and all(i.n_now == 0 for i in faded)
    assert "faded" in "\n".join(moved.lines())
