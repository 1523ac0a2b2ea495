"""The Profiles page's plotly figures: a user's categories and the reasons for a ranking.

Pure builders (no Streamlit) from ``profile_tables`` frames or a recommendation list to a
``go.Figure``; an empty input gives an empty chart that says so. Labels that come from
user data are escaped before plotly sees them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import empty_figure, plain_label
from dashboard.profile_tables import GRANULARITIES

FIGURE_HEIGHT = 400
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
_ID_SEP = "\x1f"  # joins L1 and L2 into sunburst ids; cannot occur in a stored label


def style_figure(fig: go.Figure, title: str, x: str | None = None, y: str | None = None,
                 legend: bool = False) -> go.Figure:
    """The profile figures' common layout: title, margins, height, axis titles, legend."""
    fig.update_layout(title=title, margin=_MARGIN, height=FIGURE_HEIGHT, showlegend=legend)
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
        return empty_figure(title, "No categories", FIGURE_HEIGHT)
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
    return style_figure(fig, title)


def top_categories_figure(categories: pd.DataFrame, n: int = 10) -> go.Figure:
    """Horizontal bars of the ``n`` highest-affinity categories at the finest level present."""
    title = "Top categories by affinity"
    if categories.empty:
        return empty_figure(title, "No categories", FIGURE_HEIGHT)
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
    return style_figure(fig, f"{title} ({level})", x="affinity")


def affinity_comparison_figure(frame: pd.DataFrame) -> go.Figure:
    """Grouped bars of ``affinity_comparison_frame(...)``: one colour per version."""
    title = "L1 affinity by version"
    if frame.empty:
        return empty_figure(title, "No categories", FIGURE_HEIGHT)
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
    return style_figure(fig, title, x="affinity", legend=True)


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
        return empty_figure(title, "No recommendations", FIGURE_HEIGHT)
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
    fig.update_layout(barmode="relative", height=max(FIGURE_HEIGHT, 80 + 28 * len(items)))
    fig.update_yaxes(autorange="reversed")  # rank 1 on top
    fig = style_figure(fig, title, x="contribution to the score", legend=True)
    fig.update_layout(height=max(FIGURE_HEIGHT, 80 + 28 * len(items)))
    return fig
