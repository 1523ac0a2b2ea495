"""The Profiles page's helpers: cached loaders, frames, the PCA item map and plotly figures.

The pure helpers (``version_options``, ``category_frame``, the ``*_frame`` builders,
``fit_item_map`` and the ``*_figure`` builders) need no Streamlit and take the plain dicts
that ``mgi_core`` returns: ``user_profile(...)`` (l1, l2, interests) and
``Recommender.recommend(...)`` (items with per-granularity ``parts``). The cached loaders
wrap the core calls in ``st.cache_data`` / ``st.cache_resource`` keyed by (database path,
dataset, version, data stamp), so a page rerun with the same choices costs a few queries.
Labels that come from user data are escaped before plotly sees them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.charts import empty_figure, plain_label
from dashboard.export import to_csv_bytes, to_parquet_bytes
from mgi_core.profiles.service import ensure_profiles, user_profile
from mgi_core.ranking.recommend import Recommender
from mgi_core.store import Store
from mgi_core.store.embeddings import item_vectors
from mgi_core.store.queries import profiles as queries
from mgi_core.store.queries.profiles import UserVectors
from mgi_core.store.versions import BASE_VERSION

NONE = "— none —"
KINDS = {"All": None, "Warm": False, "Cold": True}  # the user-kind filter -> find_users(cold=)
GRANULARITIES = ("overall", "fine", "category", "subcategory", "collaborative", "popularity")
MAP_ITEMS_SHOWN = 5000  # catalogue points drawn on the map (all are projected)
MAP_FIT_ITEMS = 20000  # items the PCA is fitted on (a fixed sample beyond that)
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
_HEIGHT = 400
_ID_SEP = "\x1f"
_PATH_PUNCT = " >/|:;,-»›"


# ---------------------------------------------------------------- choices


def version_options(versions: Sequence[Mapping[str, Any]]) -> list[str]:
    """Usable versions for the picker: fine-tuned ones newest first, then ``base``.

    ``versions`` is ``list_versions(store, dataset, usable_only=True)`` (base first, then
    newest first); the page opens on the newest fine-tuned version.
    """
    ready = [v["version"] for v in versions if v.get("status", "ready") == "ready"]
    return [v for v in ready if v != BASE_VERSION] + [v for v in ready if v == BASE_VERSION]


def keep_choice(key: str, options: Sequence[Any]) -> None:
    """Point the widget ``key`` at the first option when its value is no longer offered."""
    if st.session_state.get(key) not in options and len(options):
        st.session_state[key] = options[0]


def file_stem(*parts: str) -> str:
    """A download file name from names that come from user data (letters, digits, ``._-``)."""
    return "_".join(re.sub(r"[^\w.-]+", "-", str(p)).strip("-.") or "x" for p in parts)


def user_label(row: Mapping[str, Any]) -> str:
    """How a user reads in the picker: id, train reviews, main L1, cold flag."""
    parts = [str(row["user_id"]), f"{int(row['n_train_reviews'])} train reviews"]
    if isinstance(row.get("top_l1"), str):
        parts.append(row["top_l1"])
    if row.get("cold"):
        parts.append("cold")
    return " · ".join(parts)


# ---------------------------------------------------------------- frames


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


# ---------------------------------------------------------------- the item map


@dataclass
class ItemMap:
    """The catalogue's item vectors projected on their first two principal components."""

    item_ids: np.ndarray  # (n_items,)
    coords: np.ndarray  # (n_items, 2)
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (2, d); zero rows when fewer than two components exist
    explained: tuple[float, float]  # share of variance on each axis

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """(m, d) vectors -> (m, 2) map coordinates, with the catalogue's projection."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, len(self.mean))
        return (vectors - self.mean) @ self.components.T

    def coords_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """(m, 2) coordinates of the given items; items not on the map are left out."""
        position = {i: k for k, i in enumerate(self.item_ids)}
        rows = [position[i] for i in item_ids if i in position]
        return self.coords[rows].reshape(-1, 2)


def fit_item_map(
    item_ids: np.ndarray, vectors: np.ndarray, max_fit: int = MAP_FIT_ITEMS, seed: int = 0
) -> ItemMap:
    """PCA (scikit-learn) of item vectors (n, d), fitted on at most ``max_fit`` of them."""
    from sklearn.decomposition import PCA

    vectors = np.asarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    components = np.zeros((2, d), dtype=np.float32)
    mean = vectors.mean(axis=0) if n else np.zeros(d, dtype=np.float32)
    explained = [0.0, 0.0]
    k = min(2, n - 1, d)  # PCA needs at least two points for one component
    if k >= 1:
        fit = vectors
        if n > max_fit:
            rng = np.random.default_rng(seed)
            fit = vectors[np.sort(rng.choice(n, size=max_fit, replace=False))]
        pca = PCA(n_components=k, random_state=seed).fit(fit)
        components[:k] = pca.components_
        mean = pca.mean_.astype(np.float32)
        explained[:k] = [float(v) for v in pca.explained_variance_ratio_]
    item_map = ItemMap(np.asarray(item_ids, dtype=object), np.zeros((n, 2)), mean, components,
                       (explained[0], explained[1]))
    item_map.coords = item_map.project(vectors)
    return item_map


# ---------------------------------------------------------------- figures


def _layout(fig: go.Figure, title: str, x: str | None = None, y: str | None = None,
            legend: bool = False) -> go.Figure:
    fig.update_layout(title=title, margin=_MARGIN, height=_HEIGHT, showlegend=legend)
    if x is not None:
        fig.update_xaxes(title=x)
    if y is not None:
        fig.update_yaxes(title=y)
    return fig



def affinity_sunburst_figure(categories: pd.DataFrame) -> go.Figure:
    """Sunburst of a user's categories, L1 inside, L2 outside.

    Size is the number of the user's train reviews in the category; colour is the affinity
    (share × sentiment: red dislike, blue like). ``categories``: ``category_frame(...)``.
    """
    title = "Category affinity (L1 → L2)"
    if categories.empty:
        return empty_figure(title, "No categories", _HEIGHT)
    l2 = categories[categories["level"] == "L2"]
    l1 = categories[categories["level"] == "L1"].set_index("category")
    ids, parents, labels, values, colors, hover = [], [], [], [], [], []
    for name in sorted(set(l1.index) | set(l2["l1"])):
        row = l1.loc[name] if name in l1.index else None
        children = l2[l2["l1"] == name]
        own = int(row["n_reviews"]) if row is not None else 0
        ids.append(name)
        parents.append("")
        labels.append(plain_label(name))
        values.append(max(own, int(children["n_reviews"].sum())))
        colors.append(float(row["affinity"]) if row is not None else 0.0)
        hover.append(plain_label(name))
        for child in children.itertuples(index=False):
            ids.append(name + _ID_SEP + child.category)
            parents.append(name)
            labels.append(plain_label(child.label))
            values.append(int(child.n_reviews))
            colors.append(float(child.affinity))
            hover.append(plain_label(child.category))
    bound = max(1e-6, max(abs(c) for c in colors))
    fig = go.Figure(
        go.Sunburst(
            ids=ids, parents=parents, labels=labels, values=values, branchvalues="total",
            customdata=np.column_stack([hover, colors]),
            marker={"colors": colors, "colorscale": "RdBu", "cmin": -bound, "cmax": bound,
                    "cmid": 0, "showscale": True, "colorbar": {"title": "affinity"}},
            hovertemplate="%{customdata[0]}: %{value:,} reviews, affinity "
            "%{customdata[1]:.2f}<extra></extra>",
        )
    )
    return _layout(fig, title)


def top_categories_figure(categories: pd.DataFrame, n: int = 10) -> go.Figure:
    """Horizontal bars of the ``n`` highest-affinity categories at the finest level present."""
    title = "Top categories by affinity"
    if categories.empty:
        return empty_figure(title, "No categories", _HEIGHT)
    level = "L2" if (categories["level"] == "L2").any() else "L1"
    top = (categories[categories["level"] == level]
           .sort_values(["affinity", "category"], ascending=[False, True]).head(n))
    top = top.iloc[::-1]  # largest on top
    fig = go.Figure(
        go.Bar(
            x=top["affinity"], y=[plain_label(c) for c in top["category"]], orientation="h",
            marker={"color": ["#2166ac" if a >= 0 else "#b2182b" for a in top["affinity"]]},
            customdata=top["n_reviews"],
            hovertemplate="%{y}: affinity %{x:.2f} (%{customdata} reviews)<extra></extra>",
        )
    )
    return _layout(fig, f"{title} ({level})", x="affinity")


def affinity_comparison_figure(frame: pd.DataFrame) -> go.Figure:
    """Grouped bars of ``affinity_comparison_frame(...)``: one colour per version."""
    title = "L1 affinity by version"
    if frame.empty:
        return empty_figure(title, "No categories", _HEIGHT)
    versions = [c for c in frame.columns if c.endswith(" affinity")]
    fig = go.Figure(
        [
            go.Bar(name=plain_label(v), y=[plain_label(c) for c in frame["category"]],
                   x=frame[v], orientation="h",
                   hovertemplate="%{y}: %{x:.2f}<extra>" + plain_label(v) + "</extra>")
            for v in versions
        ]
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, x="affinity", legend=True)


def _item_label(rank: int, item: Mapping[str, Any]) -> str:
    name = item.get("title") or item["item_id"]
    return plain_label(f"{rank}. {name}")


def recommendation_parts_figure(rec: Mapping[str, Any]) -> go.Figure:
    """Stacked bars: each recommended item's score split into its granularity parts.

    Parts are weighted z-scores, so some are negative; the bars stack both ways
    (``barmode="relative"``) and their sum is the item's score.
    """
    title = "Why these items: score parts by granularity"
    items = rec["items"]
    if not items:
        return empty_figure(title, "No recommendations", _HEIGHT)
    labels = [_item_label(n, i) for n, i in enumerate(items, start=1)]
    names = [g for g in GRANULARITIES if any(g in i["parts"] for i in items)]
    names += sorted({p for i in items for p in i["parts"]} - set(names))
    fig = go.Figure(
        [
            go.Bar(name=g, y=labels, x=[i["parts"].get(g, 0.0) for i in items],
                   orientation="h", hovertemplate="%{y}<br>" + g + ": %{x:.2f}<extra></extra>")
            for g in names
        ]
    )
    fig.update_layout(barmode="relative", height=max(_HEIGHT, 80 + 28 * len(items)))
    fig.update_yaxes(autorange="reversed")  # rank 1 on top
    fig = _layout(fig, title, x="contribution to the score", legend=True)
    fig.update_layout(height=max(_HEIGHT, 80 + 28 * len(items)))
    return fig


def embedding_map_figure(
    item_map: ItemMap,
    user: UserVectors | None = None,
    recommended: Sequence[str] = (),
    titles: Mapping[str, str | None] | None = None,
    max_items: int = MAP_ITEMS_SHOWN,
) -> go.Figure:
    """The catalogue on its first two principal components, with one user on top.

    Traces: catalogue items (grey; a fixed sample of ``max_items`` when larger), the
    user's train reviews, their interest centroids and overall vector, and the
    recommended items (numbered by rank).
    """
    title = "Embedding map (PCA of item vectors)"
    if not len(item_map.item_ids):
        return empty_figure(title, "No item vectors", _HEIGHT)
    titles = titles or {}
    shown = np.arange(len(item_map.item_ids))
    if len(shown) > max_items:
        shown = np.sort(np.random.default_rng(0).choice(shown, size=max_items, replace=False))
    ids = item_map.item_ids[shown]
    names = [plain_label(titles.get(i) or i) for i in ids]
    scatter = go.Scattergl if len(shown) > 1000 else go.Scatter
    traces = [scatter(x=item_map.coords[shown, 0], y=item_map.coords[shown, 1], mode="markers",
                      name="Catalogue items", text=names,
                      marker={"size": 5, "color": "#c7c7c7"},
                      hovertemplate="%{text}<extra>item</extra>")]
    if user is not None and len(user.reviews):
        xy = item_map.project(user.reviews)
        traces.append(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="User's train reviews",
            text=[plain_label(f"review {r} on {i}") for r, i in
                  zip(user.review_ids, user.item_ids, strict=True)],
            marker={"size": 9, "color": "#1f77b4"}, hovertemplate="%{text}<extra></extra>"))
    if user is not None and len(user.interests):
        xy = item_map.project(user.interests)
        traces.append(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers+text", name="Interest centroids",
            text=[f"interest {n}" for n in range(1, len(xy) + 1)], textposition="top center",
            marker={"size": 16, "symbol": "star", "color": "#2ca02c",
                    "line": {"width": 1, "color": "#000"}},
            hovertemplate="%{text}<extra></extra>"))
    if user is not None and user.overall is not None:
        xy = item_map.project(user.overall)
        traces.append(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="Overall interest",
            marker={"size": 14, "symbol": "x", "color": "#000"},
            hovertemplate="overall interest<extra></extra>"))
    position = {i: k for k, i in enumerate(item_map.item_ids)}
    ranked = [(n, i) for n, i in enumerate(recommended, start=1) if i in position]
    if ranked:
        xy = item_map.coords[[position[i] for _, i in ranked]]
        traces.append(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers+text", name="Recommended items",
            text=[str(n) for n, _ in ranked], textposition="middle right",
            customdata=[plain_label(titles.get(i) or i) for _, i in ranked],
            marker={"size": 12, "symbol": "diamond", "color": "#ff7f0e",
                    "line": {"width": 1, "color": "#000"}},
            hovertemplate="#%{text}: %{customdata}<extra>recommended</extra>"))
    fig = go.Figure(traces)
    x_share, y_share = item_map.explained
    fig = _layout(fig, title, x=f"PC1 ({x_share:.0%} of variance)",
                  y=f"PC2 ({y_share:.0%} of variance)", legend=True)
    fig.update_layout(height=520)
    return fig


# ---------------------------------------------------------------- cached loaders


@st.cache_data(show_spinner=False, max_entries=16)
def categories(_store: Store, db: str, dataset: str, stamp: str) -> tuple[list[str], dict]:
    """(L1 categories with train reviews, L2 -> L1) of a dataset."""
    return queries.l1_categories(_store, dataset), queries.category_parents(_store, dataset)


@st.cache_data(show_spinner=False, max_entries=64)
def find_users(_store: Store, db: str, dataset: str, stamp: str, l1: str | None,
               min_train_reviews: int, cold: bool | None, id_contains: str) -> pd.DataFrame:
    """``queries.find_users`` cached per filter combination."""
    return queries.find_users(_store, dataset, l1=l1, min_train_reviews=min_train_reviews,
                             cold=cold, id_contains=id_contains or None)


@st.cache_data(show_spinner=False, max_entries=16)
def profiles_ready(_store: Store, db: str, dataset: str, version: str, stamp: str) -> bool:
    """Compute and store the version's profiles once (seconds on the first call)."""
    ensure_profiles(_store, dataset, version)
    return True


@st.cache_data(show_spinner=False, max_entries=256)
def profile(_store: Store, db: str, dataset: str, version: str, stamp: str,
            user_id: str) -> dict[str, Any]:
    """``user_profile`` cached per user."""
    return user_profile(_store, dataset, version, user_id)


@st.cache_resource(show_spinner=False, max_entries=4)
def recommender(_store: Store, db: str, dataset: str, version: str, stamp: str,
                scorer: str) -> Recommender:
    """A fitted ``Recommender`` per (dataset, version, scorer): fitting takes seconds."""
    return Recommender.load(_store, dataset, version, scorer)


@st.cache_resource(show_spinner=False, max_entries=8)
def item_map(_store: Store, db: str, dataset: str, version: str, stamp: str) -> ItemMap:
    """The catalogue's PCA map per (dataset, version)."""
    return fit_item_map(*item_vectors(_store, version, dataset))


def key(store: Store, dataset: str, version: str) -> tuple[Store, str, str, str, str]:
    """The leading arguments of the per-version loaders: (store, db, dataset, version, stamp)."""
    return store, str(store.path), dataset, version, queries.data_stamp(store, dataset, version)


# ---------------------------------------------------------------- page sections

TEXT = {"text": st.column_config.TextColumn("text", width="large")}


def pick_user(store: Store, db: str, dataset: str, stamp: str) -> str | None:
    """The user finder: L1, activity, cold/warm and id filters over a user picker.

    Returns the picked user id, or None (after saying so) when no user matches.
    """
    l1s, _ = categories(store, db, dataset, stamp)
    keep_choice("prof_l1", ["All", *l1s])
    a, b, c, d = st.columns(4)
    l1 = a.selectbox("L1 category", ["All", *l1s], key="prof_l1",
                     help="Users with train reviews in this category.")
    least = b.number_input("Min train reviews", 1, 100_000, 1, key="prof_min_reviews")
    kind = c.radio("Users", list(KINDS), key="prof_kind", horizontal=True,
                   help="Cold users have a single train review.")
    search = d.text_input("User id contains", key="prof_search")
    users = find_users(store, db, dataset, stamp, None if l1 == "All" else l1, int(least),
                       KINDS[kind], search.strip())
    if users.empty:
        st.info("No user matches these filters: loosen them.", icon=":material/filter_alt_off:")
        return None
    labels = {row["user_id"]: user_label(row) for row in users.to_dict("records")}
    keep_choice("prof_user", list(labels))  # else the most active match
    user = st.selectbox("User", list(labels), format_func=labels.get, key="prof_user")
    st.caption(f"{int(users['n_matching'].iloc[0]):,} users match; the list holds the "
               f"{len(users):,} most active.")
    return user


def show_profile(profile: Mapping[str, Any], parents: Mapping[str, str],
                 compared: Mapping[str, Any] | None = None) -> None:
    """Cold note, headline numbers, category charts, the version comparison, interests."""
    if profile["cold"]:
        st.warning("Cold user: one training review, so the profile is that single review. "
                   "Recommendations fall back to popularity within their categories plus "
                   "similarity to that review.", icon=":material/ac_unit:")
    a, b, c = st.columns(3)
    a.metric("Train reviews", profile["n_train_reviews"], border=True)
    b.metric("Mean sentiment", f"{profile['mean_sentiment']:+.2f}", border=True,
             help="Mean rating on a −1 (worst) to +1 (best) scale.")
    c.metric("Fine interests", len(profile["interests"]), border=True)
    cats = category_frame(profile, parents)
    a, b = st.columns(2)
    a.plotly_chart(affinity_sunburst_figure(cats))
    b.plotly_chart(top_categories_figure(cats))
    if compared is not None:
        st.subheader(f"{profile['version']} compared with {compared['version']}")
        delta = affinity_comparison_frame(profile, compared)
        a, b = st.columns(2)
        a.dataframe(delta, hide_index=True)
        b.plotly_chart(affinity_comparison_figure(delta))
    st.subheader("Fine interests")
    st.caption("Clusters of the user's review embeddings, with c-TF-IDF keywords and the "
               "reviews closest to each centre.")
    st.dataframe(interests_frame(profile), hide_index=True)
    st.dataframe(representative_reviews_frame(profile), hide_index=True, column_config=TEXT)


def show_recommendations(rec: Mapping[str, Any]) -> None:
    """Cold-start note, score parts per item, the ranked table and the matching reviews."""
    if rec["note"]:
        st.info(rec["note"], icon=":material/ac_unit:")
    st.plotly_chart(recommendation_parts_figure(rec))
    st.dataframe(recommendations_frame(rec), hide_index=True)
    st.caption("The user's past train reviews that match each recommended item best.")
    st.dataframe(matching_reviews_frame(rec), hide_index=True, column_config=TEXT)


def export_buttons(stem: str, frames: Mapping[str, pd.DataFrame]) -> None:
    """A CSV and a Parquet download per frame (cells escaped against formula injection)."""
    with st.container(horizontal=True):
        for what, frame in frames.items():
            name = file_stem(stem, what)
            st.download_button(f"{what.capitalize()} (CSV)", to_csv_bytes(frame),
                               f"{name}.csv", "text/csv", key=f"prof_{what}_csv")
            st.download_button(f"{what.capitalize()} (Parquet)", to_parquet_bytes(frame),
                               f"{name}.parquet", "application/vnd.apache.parquet",
                               key=f"prof_{what}_parquet")
