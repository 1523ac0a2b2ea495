"""The Metrics page's helpers: validation metrics across versions, stored evaluations, heat map.

Pure functions from small frames (``versions_frame``, and ``evaluation_table`` and
``category_metric`` of ``mgi_core.store.queries.evaluations``) to display frames and plotly
figures; no Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import empty_figure, plain_label
from dashboard.compare import metric_label
from dashboard.training import HEADLINE, versions_frame

MAX_CURVE_VERSIONS = 6  # newest fine-tuned versions given a tab of training curves
BAR_METRICS = ("ndcg@10", "recall@10")
# The evaluation table's metrics: the held-out item's rank, then the top-10 lists' breadth.
TABLE_METRICS = ("ndcg@10", "recall@10", "mrr", "hit@10", "coverage@10", "diversity@10")
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
_HEIGHT = 380


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, margin=_MARGIN, height=_HEIGHT, barmode="group",
                      legend={"orientation": "h", "y": -0.25, "x": 0})
    fig.update_xaxes(title=x)
    fig.update_yaxes(title=y)
    return fig



def tuned_versions(versions: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Fine-tuned versions that have finished (ready, failed or cancelled), newest first."""
    return [v for v in versions if v.get("kind") != "base" and v.get("status") != "running"]


def next_interest_versions(versions: Sequence[Mapping[str, Any]]) -> list[str]:
    """The versions whose next interest can be shown (ready: embedded), the newest fine-tuned
    first, base last."""
    ready = [v for v in versions if v.get("status") == "ready"]
    return [v["version"] for v in sorted(ready, key=lambda v: v.get("kind") == "base")]


def validation_table(versions: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Best-epoch validation metrics per fine-tuned version (the Train page's headline), and
    whether it was trained with forgotten data."""
    columns = ["version", "strategy", "status", "created_at",
               *(label for label, _ in HEADLINE.values()), "forgotten data"]
    return versions_frame(tuned_versions(versions))[columns]


def validation_figure(table: pd.DataFrame) -> go.Figure:
    """Grouped bars: each headline validation metric (x), one bar per version."""
    title = "Validation metrics (best epoch)"
    labels = [label for label, _ in HEADLINE.values()]
    scored = table.dropna(how="all", subset=labels)
    if scored.empty:
        return empty_figure(
            title, "No validation metrics: fine-tuned versions record them", _HEIGHT)
    fig = go.Figure()
    for _, row in scored.iterrows():
        fig.add_trace(go.Bar(x=labels, y=[row[label] for label in labels], name=row["version"],
                             hovertemplate=f"{row['version']} · %{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_yaxes(range=[0, 1.02])
    return _layout(fig, title, x="", y="score")


def evaluation_display(table: pd.DataFrame,
                       metrics: Sequence[str] = TABLE_METRICS) -> pd.DataFrame:
    """``queries.evaluation_table`` narrowed to fit the page: system, users, ``metrics`` (with
    people's names, those stored), evaluated.

    The 20-item metrics and the category entropy are left out (the Compare page has the
    @20 ones); a metric no system stored is not a column.
    """
    present = [m for m in metrics if m in table.columns]
    shown = table[["system", "n_users", *present, "evaluated_at"]]
    return shown.rename(columns={"n_users": "users", "evaluated_at": "evaluated",
                                 **{m: metric_label(m) for m in present}})


def evaluation_figure(table: pd.DataFrame, metrics: Sequence[str] = BAR_METRICS) -> go.Figure:
    """Grouped bars: one group per system (version:scorer), one bar per metric."""
    title = "Ranking quality on the test split"
    present = [m for m in metrics if m in table.columns]
    if table.empty or not present:
        return empty_figure(title, "No stored evaluation", _HEIGHT)
    fig = go.Figure()
    for metric in present:
        fig.add_trace(go.Bar(
            x=table["system"], y=table[metric], name=metric_label(metric),
            customdata=table["n_users"],
            hovertemplate=f"%{{x}} · {metric_label(metric)}: %{{y:.3f}} "
            "(%{customdata:,} users)<extra></extra>"))
    return _layout(fig, title, x="", y="mean over users")


def heatmap_frame(long: pd.DataFrame, value: str = "mean") -> pd.DataFrame:
    """Pivot of ``queries.category_metric``: rows L1 categories, columns systems.

    Both keep the order of ``long`` (categories by users, systems as evaluated); a system
    with no user in a category leaves NaN there.
    """
    if long.empty:
        return pd.DataFrame()
    rows = list(dict.fromkeys(long["l1"]))
    columns = list(dict.fromkeys(long["system"]))
    return long.pivot(index="l1", columns="system", values=value).reindex(
        index=rows, columns=columns)


def heatmap_figure(long: pd.DataFrame) -> go.Figure:
    """Mean NDCG@10 per L1 category of the held-out item (rows) and system (columns)."""
    title = "NDCG@10 per category of the held-out item"
    means = heatmap_frame(long)
    if means.empty:
        return empty_figure(title, "No per-user metrics", _HEIGHT)
    users = heatmap_frame(long, "n_users")
    fig = go.Figure(go.Heatmap(
        z=means.to_numpy(), x=list(means.columns), y=[plain_label(c) for c in means.index],
        customdata=users.to_numpy(), colorscale="Blues", zmin=0,
        texttemplate="%{z:.3f}", colorbar={"title": "NDCG@10"},
        hovertemplate="%{y} · %{x}: %{z:.3f} (%{customdata:,} users)<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(_HEIGHT, 120 + 32 * len(means)))
    fig.update_layout(title=title, margin=_MARGIN)
    return fig
