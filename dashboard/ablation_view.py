"""The ablation's chart and table: what the full system loses without each feature group.

Pure functions from ``AblationReport.to_frame()`` (``mgi_core.evaluation.ablation``: one row
per (variant, metric) with mean_full, mean_variant, diff = variant − full, its 95% CI, p and
n_users) to a plotly figure and a display frame; no Streamlit. The variants are read from
the frame, never listed here.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import empty_figure, plain_label
from mgi_core.evaluation.compare import (
    B_BETTER,
    B_WORSE,
    format_p,
    metric_label,
    metric_verdict,
)
from mgi_core.evaluation.stats import PairedResult

CHART_METRICS = ("ndcg@10", "top_l1_hit@1")  # drawn when the report has them
HURTS, HELPS, UNCLEAR = "removing it hurts", "removing it helps", "no clear difference"
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
_HEIGHT = 380
_HURTS_COLOUR, _HELPS_COLOUR, _FLAT = "#c92a2a", "#2b8a3e", "#868e96"


def _paired(row: pd.Series) -> PairedResult:
    return PairedResult(str(row["metric"]), int(row["n_users"]), float(row["mean_full"]),
                        float(row["mean_variant"]), float(row["diff"]), float(row["ci_low"]),
                        float(row["ci_high"]), float(row["p_value"]))


def effect(row: pd.Series) -> str:
    """What taking the group out does, in words: ``HURTS`` when the variant is significantly
    worse than the full system (CI below 0 and p < 0.05, the core's ``metric_verdict``),
    ``HELPS`` when significantly better, else ``UNCLEAR``."""
    return {B_WORSE: HURTS, B_BETTER: HELPS}.get(metric_verdict(_paired(row)), UNCLEAR)


def variant_label(row: pd.Series, sep: str = " · ", escape: bool = False) -> str:
    """A variant for people: 'without_cf · removes CF (popularity, item-kNN, MF)'; the
    variant alone when nothing is said about what it removes. ``escape``: for plotly."""
    text = plain_label if escape else str
    removed = row.get("removed")
    if removed is None or (isinstance(removed, float) and math.isnan(removed)) or not str(
            removed):
        return text(row["variant"])
    return f"{text(row['variant'])}{sep}removes {text(removed)}"


def ablation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The report for people: Variant, Metric, Users, Full, Variant mean, Δ (variant −
    full), 95% CI (text), p-value (text), Effect (``effect``)."""
    rows = [{
        "Variant": variant_label(row), "Metric": metric_label(row["metric"]),
        "Users": int(row["n_users"]), "Full": row["mean_full"],
        "Without": row["mean_variant"], "Δ (variant − full)": row["diff"],
        "95% CI": (f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"
                   if math.isfinite(row["ci_low"]) else "—"),
        "p-value": format_p(row["p_value"]), "Effect": effect(row),
    } for _, row in frame.iterrows()]
    columns = ["Variant", "Metric", "Users", "Full", "Without", "Δ (variant − full)",
               "95% CI", "p-value", "Effect"]
    return pd.DataFrame(rows, columns=columns)


def chart_metrics(frame: pd.DataFrame) -> list[str]:
    """The ``CHART_METRICS`` the report has, in that order."""
    present = set(frame["metric"]) if len(frame) else set()
    return [m for m in CHART_METRICS if m in present]


def ablation_figure(frame: pd.DataFrame, metric: str = "ndcg@10",
                    full: str = "the full system") -> go.Figure:
    """Horizontal bars: Δ ``metric`` (variant − full) of each variant, with its 95% CI as
    error bars; each bar's label gives Δ and p, its hover what the variant removes.

    Variants run top to bottom in the report's order; red where removing the group hurts
    significantly, green where it helps, grey otherwise (``effect``).
    """
    label = metric_label(metric)
    title = f"Δ {label} vs {full}"
    rows = frame[frame["metric"] == metric] if len(frame) else frame
    rows = rows[rows["diff"].map(lambda d: math.isfinite(float(d)))] if len(rows) else rows
    if rows.empty:
        return empty_figure(title, f"No {label} in the ablation", _HEIGHT)
    effects = [effect(row) for _, row in rows.iterrows()]
    colours = [{HURTS: _HURTS_COLOUR, HELPS: _HELPS_COLOUR}.get(e, _FLAT) for e in effects]
    diffs = rows["diff"].astype(float).to_numpy()
    names = [f"{plain_label(v)}<br>Δ {d:+.4f}, p {format_p(p)}"
             for v, d, p in zip(rows["variant"], diffs, rows["p_value"], strict=True)]
    removed = [variant_label(row, escape=True) for _, row in rows.iterrows()]
    fig = go.Figure(go.Bar(
        x=diffs, y=names, orientation="h", marker={"color": colours},
        error_x={"type": "data", "symmetric": False,
                 "array": (rows["ci_high"].astype(float) - diffs).tolist(),
                 "arrayminus": (diffs - rows["ci_low"].astype(float)).tolist(),
                 "color": "#343a40"},
        customdata=[[r["ci_low"], r["ci_high"], format_p(r["p_value"]), r["mean_variant"],
                     r["mean_full"], int(r["n_users"]), e, what]
                    for (_, r), e, what in zip(rows.iterrows(), effects, removed,
                                               strict=True)],
        hovertemplate="%{customdata[7]}<br>Δ %{x:+.4f} [%{customdata[0]:+.4f}, "
        "%{customdata[1]:+.4f}], p %{customdata[2]}<br>" + label + " %{customdata[3]:.4f} "
        "without, %{customdata[4]:.4f} full, %{customdata[5]:,} users: %{customdata[6]}"
        "<extra></extra>",
    ))
    fig.add_vline(x=0, line={"color": "#495057", "width": 1})
    span = max(float(max(abs(rows["ci_low"].astype(float)).max(),
                         abs(rows["ci_high"].astype(float)).max())), 1e-4)
    fig.update_xaxes(title="variant − full (per user, averaged)",
                     range=[-1.15 * span, 1.15 * span], zeroline=False)
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_layout(title=title, margin=_MARGIN, showlegend=False,
                      height=max(_HEIGHT, 120 + 56 * len(rows)))
    return fig
