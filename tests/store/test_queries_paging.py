"""Paging in the pages' read model: a page is the slice of the whole ordered result, and the
totals count every row, on a dataset built here (130 users, 260 reviews at most, 3 bad rows).

User ``uNNN`` writes ``NNN % 4 + 1`` reviews, one a day, of items in two L1 categories.
Users with 3 or more reviews hold the last two out (val, test), so the train counts are
1 (NNN % 4 = 0, cold), 2 (= 1), 1 (= 2, cold), 2 (= 3): the "most active first" order has
many ties, broken by user id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mgi_core.data.ingest import ingest_file
from mgi_core.store import Store
from mgi_core.store.queries import datasets
from mgi_core.store.queries import profiles as queries
from tests.conftest import write_csv

N_USERS = 130


def _rows() -> list[list[object]]:
    rows: list[list[object]] = []
    day = 1_600_000_000
    for u in range(N_USERS):
        for n in range(u % 4 + 1):
            item = (u + n) % 40
            category = "Audio > Headphones" if item % 2 else "Books > Novels"
            rows.append([f"u{u:03d}", f"i{item:02d}", f"review {n} of user {u} on item {item}",
                         n % 5 + 1, day + 86_400 * (u * 4 + n), category, f"Item {item}"])
    return rows


@pytest.fixture
def paged(store: Store, tmp_path: Path) -> Store:
    bad = [["u900", "i01", "no rating", "five", 1_600_000_000, "A", "t"] for _ in range(3)]
    ingest_file(store, write_csv(tmp_path / "many.csv", _rows() + bad), "many")
    return store


def test_find_users_pages_are_slices_of_the_whole_order(paged: Store) -> None:
    everyone = queries.find_users(paged, "many", limit=1_000)
    assert len(everyone) == N_USERS and (everyone["n_matching"] == N_USERS).all()
    page_2 = queries.find_users(paged, "many", limit=50, offset=50)
    # Page 2 of 50 holds users 51-100 of the full order, and still counts all matches.
    assert list(page_2["user_id"]) == list(everyone["user_id"].iloc[50:100])
    assert (page_2["n_matching"] == N_USERS).all()
    last = queries.find_users(paged, "many", limit=50, offset=100)
    assert list(last["user_id"]) == list(everyone["user_id"].iloc[100:])  # 30 users
    assert queries.find_users(paged, "many", limit=50, offset=150).empty  # past the end
    # Filters page the same way: the warm users (2 train reviews), u % 4 = 1 (33 of them:
    # u001 ... u129) or 3 (32: u003 ... u127).
    warm = queries.find_users(paged, "many", cold=False, limit=1_000)
    assert len(warm) == 65
    page = queries.find_users(paged, "many", cold=False, limit=10, offset=60)
    assert list(page["user_id"]) == list(warm["user_id"].iloc[60:])  # the last 5
    assert (page["n_matching"] == 65).all()


def test_sample_reviews_page_through_the_file_in_order(paged: Store) -> None:
    n = len(_rows())
    first = datasets.sample_reviews(paged, "many", limit=50)
    page_2 = datasets.sample_reviews(paged, "many", limit=50, offset=50)
    # Reviews 51-100 of the file, in file order, with their items' titles.
    expected = [r[2] for r in _rows()[50:100]]
    assert list(page_2["text"]) == expected
    assert list(first["text"]) == [r[2] for r in _rows()[:50]]
    assert list(page_2["item_title"]) == [r[6] for r in _rows()[50:100]]
    tail = datasets.sample_reviews(paged, "many", limit=50, offset=n - 7)
    assert list(tail["text"]) == [r[2] for r in _rows()[-7:]]
    assert datasets.sample_reviews(paged, "many", limit=50, offset=n).empty


def test_rejected_rows_page_by_line_and_count(paged: Store) -> None:
    assert datasets.count_rejected_rows(paged, "many") == 3
    lines = list(datasets.rejected_rows(paged, "many")["line"])
    assert len(lines) == 3 and lines == sorted(lines)
    assert list(datasets.rejected_rows(paged, "many", limit=2, offset=1)["line"]) == lines[1:]
    assert datasets.rejected_rows(paged, "many", limit=2, offset=3).empty


def test_user_reviews_page_newest_first_and_count(paged: Store) -> None:
    # u003 wrote 4 reviews, on days 12..15: newest first, two a page.
    assert queries.count_user_reviews(paged, "many", "u003") == 4
    whole = queries.user_reviews(paged, "many", "u003")
    assert list(whole["text"]) == [f"review {n} of user 3 on item {3 + n}" for n in (3, 2, 1, 0)]
    page_2 = queries.user_reviews(paged, "many", "u003", limit=2, offset=2)
    assert list(page_2["text"]) == list(whole["text"].iloc[2:])
    assert queries.count_user_reviews(paged, "many", "nobody") == 0
