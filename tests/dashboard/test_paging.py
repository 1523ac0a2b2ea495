"""Page arithmetic of the paged tables: offsets and the 1-based rows each page shows."""

from __future__ import annotations

from dashboard.paging import page_count, page_span


def test_pages_needed() -> None:
    assert page_count(0, 50) == 1  # an empty table is one (empty) page
    assert page_count(50, 50) == 1
    assert page_count(51, 50) == 2
    assert page_count(99_996, 500) == 200


def test_page_span_rows_and_clamping() -> None:
    assert page_span(1, 120, 50) == (0, 1, 50)
    assert page_span(2, 120, 50) == (50, 51, 100)  # page 2 shows rows 51-100
    assert page_span(3, 120, 50) == (100, 101, 120)  # the last page is short
    assert page_span(9, 120, 50) == (100, 101, 120)  # past the end: the last page
    assert page_span(0, 120, 50) == (0, 1, 50)
    assert page_span(1, 0, 50) == (0, 0, 0)
