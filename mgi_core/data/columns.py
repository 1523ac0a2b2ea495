"""The canonical review columns and the guess that maps a file's headers onto them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from mgi_core.errors import DataValidationError

REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "text", "rating")
OPTIONAL_COLUMNS: tuple[str, ...] = ("timestamp", "category", "item_title")
CANONICAL_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

# Header spellings seen in public review datasets, most specific first (normalised:
# lower case, letters and digits only). Amazon: reviewerID, asin, reviewText, overall,
# unixReviewTime; Yelp: user_id, business_id, text, stars, date.
ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("userid", "reviewerid", "customerid", "user", "reviewer", "customer",
                "author", "uid", "username", "用户id", "用户"),
    "item_id": ("itemid", "asin", "productid", "businessid", "movieid", "bookid", "parentasin",
                "sku", "item", "product", "iid", "pid", "商品id", "商品"),
    "text": ("text", "reviewtext", "review", "reviewbody", "body", "content", "comment",
             "comments", "评论", "内容", "评价"),
    "rating": ("rating", "overall", "stars", "star", "score", "ratings", "starrating",
               "评分", "星级"),
    "timestamp": ("timestamp", "unixreviewtime", "unixtime", "time", "datetime", "date",
                  "reviewtime", "createdat", "reviewdate", "时间", "日期"),
    "category": ("category", "categorypath", "categories", "genre", "maincategory",
                 "类别", "类目", "分类"),
    "item_title": ("itemtitle", "producttitle", "productname", "itemname", "title",
                   "name", "商品名称", "标题"),
}


def _normalise(name: str) -> str:
    return re.sub(r"[\W_]+", "", name.strip().lower())


def guess_mapping(columns: Iterable[str]) -> dict[str, str]:
    """Map canonical column names to a file's columns by name.

    Returns:
        ``{canonical: source}`` for every canonical column with a plausible source; each
        source column is used at most once.
    """
    columns = list(columns)
    by_norm: dict[str, str] = {}
    for col in columns:
        by_norm.setdefault(_normalise(col), col)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for canonical in CANONICAL_COLUMNS:
        for alias in (_normalise(canonical), *ALIASES[canonical]):
            source = by_norm.get(alias)
            if source is not None and source not in used:
                mapping[canonical] = source
                used.add(source)
                break
    return mapping


def parse_mapping_args(pairs: Iterable[str]) -> dict[str, str]:
    """Parse CLI ``SRC=DST`` pairs (file column = canonical column) into ``{DST: SRC}``."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise DataValidationError(
                f"Mapping {pair!r} is not of the form SOURCE=COLUMN, e.g. reviewerID=user_id."
            )
        dst = dst.strip()
        if dst not in CANONICAL_COLUMNS:
            raise DataValidationError(
                f"Mapping {pair!r} names {dst!r}, which is not an MGI column; "
                f"use one of {', '.join(CANONICAL_COLUMNS)}."
            )
        mapping[dst] = src.strip()
    return mapping


def columns_text(columns: list[str], shown: int = 30, width: int = 60) -> str:
    """The columns of a file for a message: the first ``shown``, each cut at ``width``."""
    names = [repr(c if len(c) <= width else c[:width] + "…") for c in columns[:shown]]
    more = f" and {len(columns) - shown:,} more" if len(columns) > shown else ""
    return (", ".join(names) or "none") + more


def resolve_mapping(
    columns: list[str], explicit: Mapping[str, str | None] | None
) -> dict[str, str]:
    """The mapping to ingest with: the guess, overridden by ``explicit`` entries.

    An optional canonical column mapped to ``None`` is left out even if a file column
    would match it.

    Raises:
        DataValidationError: an explicit source column is absent, a source is used twice,
            or a required column has no source. The message lists the columns found.
    """
    found = columns_text(columns)
    explicit = dict(explicit or {})
    # A canonical column mapped to None is left out on purpose (an optional one only).
    excluded = {c for c, s in explicit.items() if s is None}
    for canonical in excluded:
        if canonical in REQUIRED_COLUMNS:
            raise DataValidationError(f"{canonical} is required and cannot be left out.")
    explicit = {c: s for c, s in explicit.items() if s is not None}
    for canonical, source in explicit.items():
        if canonical not in CANONICAL_COLUMNS:
            raise DataValidationError(
                f"{canonical!r} is not an MGI column; use one of {', '.join(CANONICAL_COLUMNS)}."
            )
        if source not in columns:
            raise DataValidationError(
                f"The mapping uses column {source!r} for {canonical}, but the file has no such "
                f"column. Columns found: {found}."
            )
    mapping = {
        k: v for k, v in guess_mapping(columns).items()
        if v not in explicit.values() and k not in excluded
    }
    mapping.update(explicit)
    sources = list(mapping.values())
    twice = sorted({s for s in sources if sources.count(s) > 1})
    if twice:
        raise DataValidationError(
            f"Column(s) {twice} are mapped to more than one MGI column; map each once."
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in mapping]
    if missing:
        raise DataValidationError(
            f"Missing required column(s): {', '.join(missing)}. Columns found: {found}. "
            "Rename them in the file or map them (CLI: --mapping SOURCE=COLUMN; "
            "Data page: column mapping)."
        )
    return {c: mapping[c] for c in CANONICAL_COLUMNS if c in mapping}
