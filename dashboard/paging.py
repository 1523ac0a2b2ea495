"""Paging through a table that stays in the database: a page number in, one ``OFFSET`` out.

``page_span`` is pure arithmetic; ``page_offset`` draws the page picker (only when there is
more than one page) with a caption that says which rows are shown of how many. The query
itself reads ``page_size`` rows at the returned offset (``LIMIT ? OFFSET ?``).
"""

from __future__ import annotations

import math

import streamlit as st


def page_count(total: int, page_size: int) -> int:
    """Pages needed for ``total`` rows, at least 1 (an empty table is one empty page)."""
    return max(math.ceil(max(total, 0) / page_size), 1)


def page_span(page: int, total: int, page_size: int) -> tuple[int, int, int]:
    """(offset, first, last) of 1-based ``page``: rows ``first``..``last`` (1-based) are
    shown; ``page`` is clamped to the pages that exist. An empty table gives (0, 0, 0)."""
    page = min(max(int(page), 1), page_count(total, page_size))
    offset = (page - 1) * page_size
    last = min(offset + page_size, max(total, 0))
    return offset, (offset + 1 if last else 0), last


def page_offset(key: str, total: int, page_size: int, what: str = "rows") -> int:
    """A 'Page' picker under the widget ``key`` and a caption; the offset of the page.

    With a single page nothing is drawn. A page beyond the last (the table shrank, e.g.
    after a filter) falls back to the last page.
    """
    pages = page_count(total, page_size)
    if pages == 1:
        st.session_state.pop(key, None)
        return 0
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = pages
    left, right = st.columns([1, 4], vertical_alignment="bottom")
    page = left.number_input("Page", 1, pages, key=key, help=f"{page_size:,} {what} a page.")
    offset, first, last = page_span(int(page), total, page_size)
    right.caption(f"Page {int(page):,} of {pages:,}: {what} {first:,}–{last:,} of {total:,}.")
    return offset
