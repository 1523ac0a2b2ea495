"""The Profiles page's tables: pure frame builders over a profile or a recommendation list.

No Streamlit here. The inputs are the plain dicts that ``mgi_core`` returns:
``user_profile(...)`` (l1, l2, interests) and ``Recommender.recommend(...)`` (items with
per-granularity ``parts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

GRANULARITIES = ("overall", "fine", "category", "subcategory", "collaborative", "popularity")
_PATH_PUNCT = " >/|:;,-»›"  # what may join an L1 and its L2's own name ("A > B")


def _own_name(path: str, parent: str | None) -> str:
    """An L2's own name: stored L2 paths repeat their L1 ("Audio > Headphones")."""
    if parent and path.startswith(parent) and len(path) > len(parent):
        return path[len(parent) :].lstrip(_PATH_PUNCT) or path
    return path


def _parent_of(l2: str, parents: Mapping[str, str]) -> str:
    if l2 in parents:
        return parents[l2]
    head, sep, _ = l2.partition(">")
    return head.strip() if sep else "(no L1)"


CATEGORY_COLUMNS = ["level", "l1", "category", "label", "n_reviews", "share", "sentiment",
                    "head_prob", "affinity"]


def category_frame(profile: Mapping[str, Any], parents: Mapping[str, str]) -> pd.DataFrame:
    """One row per L1 and L2 category of a profile, with its L1 and its own short name.

    Args:
        profile: ``user_profile(...)``.
        parents: L2 -> L1 (``queries.category_parents``); an L2 missing there is placed
            under the text before its first ``>``.
    """
    rows = [
        {"level": "L1", "l1": c["key"], "category": c["key"], "label": c["key"]}
        | {k: c.get(k) for k in CATEGORY_COLUMNS[4:]}
        for c in profile.get("l1", [])
    ]
    for c in profile.get("l2", []):
        l1 = _parent_of(c["key"], parents)
        own = {"level": "L2", "l1": l1, "category": c["key"], "label": _own_name(c["key"], l1)}
        rows.append(own | {k: c.get(k) for k in CATEGORY_COLUMNS[4:]})
    return pd.DataFrame(rows, columns=CATEGORY_COLUMNS)


def interests_frame(profile: Mapping[str, Any]) -> pd.DataFrame:
    """One row per fine interest: number (from 1), size, share, sentiment, keywords."""
    return pd.DataFrame(
        [
            {"interest": n, "n_reviews": i["n_reviews"], "share": i["share"],
             "sentiment": i["sentiment"], "keywords": ", ".join(i["keywords"])}
            for n, i in enumerate(profile.get("interests", []), start=1)
        ],
        columns=["interest", "n_reviews", "share", "sentiment", "keywords"],
    )


def representative_reviews_frame(profile: Mapping[str, Any]) -> pd.DataFrame:
    """The representative reviews of each fine interest (closest to its centroid first)."""
    return pd.DataFrame(
        [
            {"interest": n, "review_id": r["review_id"], "text": r["text"]}
            for n, i in enumerate(profile.get("interests", []), start=1)
            for r in i["representative_reviews"]
        ],
        columns=["interest", "review_id", "text"],
    )


PROFILE_EXPORT_COLUMNS = ["user_id", "version", "level", "key", "n_reviews", "share",
                          "sentiment", "head_prob", "affinity", "cold", "keywords",
                          "representative_review_ids"]


def profile_export_frame(profile: Mapping[str, Any]) -> pd.DataFrame:
    """The whole profile as one long table (overall, L1, L2, interests) for the download."""
    base = {"user_id": profile["user_id"], "version": profile["version"],
            "cold": bool(profile["cold"])}
    rows = [base | {"level": "overall", "key": "", "n_reviews": profile["n_train_reviews"],
                    "share": 1.0, "sentiment": profile["mean_sentiment"]}]
    for level in ("l1", "l2"):
        rows += [base | {"level": level} | {k: c.get(k) for k in PROFILE_EXPORT_COLUMNS[3:9]}
                 for c in profile.get(level, [])]
    rows += [
        base | {"level": "interest", "key": str(n), "n_reviews": i["n_reviews"],
                "share": i["share"], "sentiment": i["sentiment"],
                "keywords": ", ".join(i["keywords"]),
                "representative_review_ids": ", ".join(
                    str(r["review_id"]) for r in i["representative_reviews"])}
        for n, i in enumerate(profile.get("interests", []), start=1)
    ]
    return pd.DataFrame(rows, columns=PROFILE_EXPORT_COLUMNS)


def affinity_comparison_frame(
    a: Mapping[str, Any], b: Mapping[str, Any], level: str = "l1"
) -> pd.DataFrame:
    """Affinity per category under two versions of one user's profile, side by side.

    Columns ``category``, ``<a> affinity``, ``<b> affinity``, ``change`` (b - a; missing
    when a version lacks the category), largest absolute change first.
    """
    col_a, col_b = f"{a['version']} affinity", f"{b['version']} affinity"
    left = pd.Series({c["key"]: c["affinity"] for c in a.get(level, [])}, dtype=float)
    right = pd.Series({c["key"]: c["affinity"] for c in b.get(level, [])}, dtype=float)
    out = pd.DataFrame({col_a: left, col_b: right})
    out["change"] = out[col_b] - out[col_a]
    out = out.rename_axis("category").reset_index()
    order = out["change"].abs().fillna(-1.0)
    return out.iloc[np.lexsort((out["category"].to_numpy(), -order.to_numpy()))].reset_index(
        drop=True
    )


def recommendations_frame(rec: Mapping[str, Any]) -> pd.DataFrame:
    """One row per recommended item: rank, id, title, category, score and its parts.

    The parts are one column per granularity (``overall``, ``fine``, ``category``, …), so
    the item's own category is ``item_category``.
    """
    parts = [g for g in GRANULARITIES if any(g in i["parts"] for i in rec["items"])]
    extra = sorted({p for i in rec["items"] for p in i["parts"]} - set(parts))
    return pd.DataFrame(
        [
            {"rank": n, "item_id": i["item_id"], "title": i["title"],
             "item_category": i["category"], "score": i["score"]}
            | {p: i["parts"].get(p, 0.0) for p in parts + extra}
            for n, i in enumerate(rec["items"], start=1)
        ],
        columns=["rank", "item_id", "title", "item_category", "score", *parts, *extra],
    )


def matching_reviews_frame(rec: Mapping[str, Any]) -> pd.DataFrame:
    """Per recommended item, the user's past train reviews whose embeddings match it best."""
    return pd.DataFrame(
        [
            {"rank": n, "item_id": i["item_id"], "matched_item_id": m["item_id"],
             "rating": m["rating"], "similarity": m["similarity"], "text": m["text"]}
            for n, i in enumerate(rec["items"], start=1)
            for m in i["matching_reviews"]
        ],
        columns=["rank", "item_id", "matched_item_id", "rating", "similarity", "text"],
    )


def recommendations_export_frame(rec: Mapping[str, Any]) -> pd.DataFrame:
    """The recommendations table plus the user, version, scorer and the matching reviews."""
    out = recommendations_frame(rec)
    out.insert(0, "scorer", rec["scorer"])
    out.insert(0, "version", rec["version"])
    out.insert(0, "user_id", rec["user_id"])
    matches = matching_reviews_frame(rec).groupby("rank")
    out["matching_review_texts"] = out["rank"].map(
        lambda r: " | ".join(matches.get_group(r)["text"]) if r in matches.groups else ""
    )
    return out
