"""The Metrics page's hyper-parameter search helpers: trials, best config, importance.

Pure functions from the rows of ``mgi_core.store.search`` (and the importances of
``mgi_core.jobs.search.param_importances``) to display frames and plotly figures; no
Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import empty_figure

_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
_HEIGHT = 340


def search_command(dataset: str, trials: int = 10) -> str:
    """The CLI that runs (or continues) a search on ``dataset``."""
    return f"python -m mgi_core search --dataset {dataset} --trials {trials}"


def study_label(study: Mapping[str, Any]) -> str:
    """'NAME · 3 of 4 trials complete · best 1.234' for a study picker."""
    best = study.get("best_value")
    return (f"{study['study']} · {study.get('n_complete', 0)} of {study.get('n_trials', 0)} "
            f"trials complete" + ("" if best is None else f" · best {best:.4f}"))


def param_names(space: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> list[str]:
    """The searched fields in the space's order (then any other a trial holds)."""
    names = list(space)
    for t in trials:
        names += [p for p in t.get("params") or {} if p not in names]
    return names


def trials_frame(trials: Sequence[Mapping[str, Any]],
                 space: Mapping[str, Any]) -> pd.DataFrame:
    """One row per trial: trial, state, value (validation objective), seconds, then one
    column per searched field."""
    names = param_names(space, trials)
    rows = [{"trial": t["trial"], "state": t["state"], "value": t.get("value"),
             "seconds": t.get("seconds"),
             **{n: (t.get("params") or {}).get(n) for n in names}} for t in trials]
    return pd.DataFrame(rows, columns=["trial", "state", "value", "seconds", *names])


def best_config_frame(base_config: Mapping[str, Any], params: Mapping[str, Any]
                      ) -> pd.DataFrame:
    """The best trial's values of the searched fields beside the base config's."""
    return pd.DataFrame({
        "field": list(params),
        "best": [str(v) if not isinstance(v, float) else f"{v:.4g}" for v in params.values()],
        "base": [_shown(base_config.get(k)) for k in params],
    })


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def importance_figure(values: Mapping[str, float], note: str | None = None) -> go.Figure:
    """Horizontal bars: each searched field's share of the objective's variation (the
    largest on top); ``note`` in place of bars when there are none."""
    title = "Parameter importance"
    if not values:
        return empty_figure(title, note or "No importance", _HEIGHT)
    ordered = sorted(values.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(
        x=[v for _, v in ordered], y=[k for k, _ in ordered], orientation="h",
        hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(title=title, margin=_MARGIN, height=_HEIGHT, showlegend=False)
    fig.update_xaxes(title="importance (sums to 1)", rangemode="tozero")
    return fig


def trials_figure(trials: Sequence[Mapping[str, Any]]) -> go.Figure:
    """The validation objective of each complete trial (markers) and the best so far
    (a step line): whether more trials still help."""
    title = "Validation objective per trial (lower is better)"
    done = [t for t in trials if t.get("state") == "complete" and t.get("value") is not None]
    if not done:
        return empty_figure(title, "No complete trial yet", _HEIGHT)
    numbers = [t["trial"] for t in done]
    values = [float(t["value"]) for t in done]
    best = pd.Series(values).cummin().tolist()
    fig = go.Figure([
        go.Scatter(x=numbers, y=values, mode="markers", name="trial",
                   hovertemplate="trial %{x}: %{y:.4f}<extra></extra>"),
        go.Scatter(x=numbers, y=best, mode="lines", line={"shape": "hv"}, name="best so far",
                   hovertemplate="best after trial %{x}: %{y:.4f}<extra></extra>"),
    ])
    fig.update_layout(title=title, margin=_MARGIN, height=_HEIGHT,
                      legend={"orientation": "h", "y": -0.25, "x": 0})
    fig.update_xaxes(title="trial", tickformat=",d")
    fig.update_yaxes(title="objective")
    return fig
