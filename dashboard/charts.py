"""Plotly figure builders for the dashboard: pure functions from a small frame to a figure.

Each builder takes the aggregate frame that ``mgi_core.store.queries.datasets`` returns (a few
hundred rows at most) and returns a ``go.Figure``; an empty frame gives an empty chart
that says so. Labels that come from user data are escaped, so plotly shows them as plain
text rather than reading ``<b>``-style tags.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
_HEIGHT = 380
_ID_SEP = "\x1f"  # joins category levels into sunburst ids; cannot occur in a stored label
_PATH_PUNCT = " >/|:;,-»›"  # what may join a parent path and a child level ("A > B")


def plain_label(text: object) -> str:
    """``text`` escaped for plotly, which reads a subset of HTML tags in labels."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _layout(fig: go.Figure, title: str, x: str | None = None, y: str | None = None) -> go.Figure:
    fig.update_layout(title=title, margin=_MARGIN, height=_HEIGHT, showlegend=False)
    if x is not None:
        fig.update_xaxes(title=x)
    if y is not None:
        fig.update_yaxes(title=y)
    return fig


def _count_axis(values: pd.Series) -> dict[str, object]:
    """Axis settings for counts: whole-number ticks (no 0.5 users), from zero."""
    top = float(values.max()) if len(values) else 0.0
    return {"tickformat": ",d", "rangemode": "tozero", **({"dtick": 1} if top <= 8 else {})}


def empty_figure(title: str, message: str, height: int = _HEIGHT) -> go.Figure:
    """A titled chart with ``message`` in place of data (every page's empty state)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, margin=_MARGIN, height=height, showlegend=False)
    return fig


def reviews_per_user_figure(df: pd.DataFrame) -> go.Figure:
    """Bar chart of how many users wrote exactly n reviews.

    Args:
        df: columns ``n_reviews``, ``n_users`` (one row per distinct n).

    The y axis turns logarithmic when the counts span more than two orders of magnitude,
    as they do in real review data (many users with one review, few with hundreds).
    """
    title = "Reviews per user"
    if df.empty:
        return empty_figure(title, "No reviews")
    fig = go.Figure(
        go.Bar(
            x=df["n_reviews"], y=df["n_users"],
            hovertemplate="%{y:,} users wrote %{x:,} reviews<extra></extra>",
        )
    )
    fig.update_xaxes(**_count_axis(df["n_reviews"]))
    counts = df["n_users"][df["n_users"] > 0]
    if len(counts) and counts.max() / counts.min() > 100:
        fig.update_yaxes(type="log", tickformat=",d")
    else:
        fig.update_yaxes(**_count_axis(df["n_users"]))
    return _layout(fig, title, x="reviews written", y="users")


def rating_figure(df: pd.DataFrame) -> go.Figure:
    """Bar chart of the rating distribution. ``df``: columns ``rating``, ``n_reviews``."""
    title = "Ratings"
    if df.empty:
        return empty_figure(title, "No reviews")
    fig = go.Figure(
        go.Bar(
            x=df["rating"].astype(float), y=df["n_reviews"],
            hovertemplate="rating %{x}: %{y:,} reviews<extra></extra>",
        )
    )
    fig.update_xaxes(tickvals=df["rating"].astype(float).tolist())
    fig.update_yaxes(**_count_axis(df["n_reviews"]))
    return _layout(fig, title, x="rating", y="reviews")


def _category_nodes(df: pd.DataFrame) -> pd.DataFrame:
    """Sunburst nodes (id, parent, label, value) from (l1, l2, l3, n_reviews) rows.

    A path stops at its first missing level, so ("Audio", None, "x") counts under "Audio".
    A node's value is the total of every row passing through it (``branchvalues="total"``);
    reviews that stop at a node show as the unfilled part of its ring.
    """
    values: dict[tuple[str, ...], int] = {}
    for row in df.itertuples(index=False):
        path: list[str] = []
        for level in (row.l1, row.l2, row.l3):
            if level is None or pd.isna(level) or str(level) == "":
                break
            path.append(str(level))
        if not path:
            path = ["(no category)"]
        for depth in range(1, len(path) + 1):
            key = tuple(path[:depth])
            values[key] = values.get(key, 0) + int(row.n_reviews)
    return pd.DataFrame(
        {
            "id": [_ID_SEP.join(k) for k in values],
            "parent": [_ID_SEP.join(k[:-1]) for k in values],
            "label": [plain_label(_short_label(k)) for k in values],
            "path": [plain_label(k[-1]) for k in values],
            "value": list(values.values()),
        }
    )


def _short_label(path: tuple[str, ...]) -> str:
    """A level's own name: stored L2/L3 repeat their parent ("Audio > Headphones")."""
    name = path[-1]
    if len(path) > 1 and name.startswith(path[-2]) and len(name) > len(path[-2]):
        return name[len(path[-2]) :].lstrip(_PATH_PUNCT) or name
    return name


def category_sunburst_figure(df: pd.DataFrame) -> go.Figure:
    """Sunburst of reviews by category, L1 in the centre ring, then L2, then L3.

    Args:
        df: columns ``l1``, ``l2``, ``l3``, ``n_reviews``; lower levels may be missing.
    """
    title = "Categories (L1 → L2 → L3)"
    if df.empty:
        return empty_figure(title, "No categories")
    nodes = _category_nodes(df)
    fig = go.Figure(
        go.Sunburst(
            ids=nodes["id"], parents=nodes["parent"], labels=nodes["label"],
            values=nodes["value"], customdata=nodes["path"], branchvalues="total", maxdepth=3,
            hovertemplate="%{customdata}: %{value:,} reviews (%{percentRoot:.1%})"
            "<extra></extra>",
        )
    )
    return _layout(fig, title)


def reviews_over_time_figure(df: pd.DataFrame) -> go.Figure:
    """Monthly review counts as a line. ``df``: columns ``month``, ``n_reviews``."""
    title = "Reviews per month"
    if df.empty:
        return empty_figure(title, "No timestamps")
    # Months without reviews are absent from the query; show them as zero, not as a slope.
    months = pd.to_datetime(df["month"])
    series = df.assign(month=months).set_index("month")["n_reviews"]
    full = pd.date_range(months.min(), months.max(), freq="MS")
    series = series.reindex(full, fill_value=0)
    fig = go.Figure(
        go.Scatter(
            x=series.index, y=series.to_numpy(), mode="lines+markers",
            hovertemplate="%{x|%b %Y}: %{y:,} reviews<extra></extra>",
        )
    )
    fig.update_xaxes(tickformat="%b %Y", **({"dtick": "M1"} if len(full) <= 12 else {}))
    fig.update_yaxes(**_count_axis(series))
    return _layout(fig, title, x="month", y="reviews")


def rejects_by_reason_figure(df: pd.DataFrame) -> go.Figure:
    """Horizontal bars of rejected rows per reason. ``df``: columns ``reason``, ``n_rows``."""
    title = "Rejected rows by reason"
    if df.empty:
        return empty_figure(title, "No rejected rows")
    ordered = df.sort_values(["n_rows", "reason"], ascending=[True, False])  # largest on top
    fig = go.Figure(
        go.Bar(
            x=ordered["n_rows"], y=[plain_label(r) for r in ordered["reason"]],
            orientation="h", hovertemplate="%{y}: %{x:,} rows<extra></extra>",
        )
    )
    fig.update_xaxes(**_count_axis(ordered["n_rows"]))
    fig = _layout(fig, title, x="rows")
    fig.update_layout(height=min(_HEIGHT, 120 + 40 * len(ordered)))
    return fig


_OTHER_COLOUR = "#b0b0b0"  # the summed "(other)" categories, behind the named ones


def category_shares_figure(df: pd.DataFrame, level: str = "L1") -> go.Figure:
    """Stacked areas of each month's reviews by category (shares of the month, to 100%).

    Args:
        df: ``queries.datasets.category_shares_by_month``: columns ``month``, ``category``,
            ``is_other``, ``n_reviews``, ``share``; the named categories in order, the
            summed rest (``is_other``) last.
    """
    title = f"{level} category shares by month"
    if df.empty:
        return empty_figure(title, "No timestamps")
    frame = df.assign(month=pd.to_datetime(df["month"]))
    shares = frame.pivot_table(index="month", columns="category", values="share",
                               aggfunc="sum", fill_value=0.0, sort=False).sort_index()
    counts = frame.pivot_table(index="month", columns="category", values="n_reviews",
                               aggfunc="sum", fill_value=0, sort=False).sort_index()
    other = set(frame.loc[frame["is_other"], "category"])
    totals = frame.groupby("category")["n_reviews"].sum()
    # Largest overall at the bottom of the stack (the query's order), the rest on top.
    order = sorted(totals.index, key=lambda c: (c in other, -int(totals[c]), str(c)))
    fig = go.Figure([
        go.Scatter(
            x=shares.index, y=shares[cat].to_numpy(), customdata=counts[cat].to_numpy(),
            name=plain_label(cat), mode="lines", stackgroup="shares", line={"width": 0.5},
            **({"fillcolor": _OTHER_COLOUR, "line": {"width": 0.5, "color": _OTHER_COLOUR}}
               if cat in other else {}),
            hovertemplate="%{x|%b %Y}: %{y:.1%} (%{customdata:,} reviews)<extra>"
            + plain_label(cat) + "</extra>",
        )
        for cat in order
    ])
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    fig.update_xaxes(tickformat="%b %Y")
    fig = _layout(fig, title, x="month", y="share of the month's reviews")
    fig.update_layout(showlegend=True, legend={"traceorder": "reversed"})
    return fig


def share_then_now_figure(df: pd.DataFrame, title: str, then: str, now: str = "now") -> go.Figure:
    """Grouped horizontal bars of each category's share of a user's reviews then and now.

    Args:
        df: columns ``category``, ``share then``, ``share now`` (None or NaN: absent),
            top to bottom in the order given.
        then: the legend label of the earlier profile (e.g. its date).
    """
    if df.empty:
        return empty_figure(title, "No categories")
    labels = [plain_label(c) for c in df["category"]]
    fig = go.Figure([
        go.Bar(name=plain_label(name), y=labels, x=df[column].fillna(0.0), orientation="h",
               hovertemplate="%{y}: %{x:.0%}<extra>" + plain_label(name) + "</extra>")
        for name, column in ((then, "share then"), (now, "share now"))
    ])
    fig.update_layout(barmode="group")
    fig.update_xaxes(tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(autorange="reversed")
    fig = _layout(fig, title, x="share of the user's train reviews")
    fig.update_layout(showlegend=True, height=min(_HEIGHT + 120, 140 + 44 * len(df)))
    return fig
