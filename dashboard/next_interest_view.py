"""Next-interest tables and figures: does a version's profile put the user's next category
(or fine interest) first, against the baselines, and base against fine-tuned.

Pure functions from ``next_interest_summary`` frames and ``NextInterestResult`` objects
(``mgi_core.evaluation.next_interest``) to display frames and plotly figures; no Streamlit.
The systems are read from the results, never listed here: a system added to the core shows
up as one more row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import empty_figure
from mgi_core.evaluation.compare import B_BETTER, B_WORSE, format_p, metric_verdict
from mgi_core.evaluation.next_interest import (
    LEVELS,
    METRICS,
    NextInterestResult,
    compare_next_interest,
)
from mgi_core.evaluation.stats import PairedResult

PROFILE = "profile"  # the system under test; the others are baselines
LEVEL_LABELS = {"l1": "L1 categories", "l2": "L2 categories", "interest": "Fine interests"}
LEVEL_QUESTIONS = {
    "l1": "Does the profile's top L1 category match the L1 category of the user's next item?",
    "l2": "Does the profile's top L2 category match the L2 category of the user's next item?",
    "interest": "Does the user's largest fine interest hold their next item (the interest "
                "whose centroid is closest to it)?",
}
# How each known system orders the candidates (a system without a note shows none).
SYSTEM_NOTES = {
    "profile": "the version's profile: affinity (share × sentiment)",
    "popular": "baseline: most reviewed over all users first",
    "frequent": "baseline: the user's most reviewed first",
    "recent": "baseline: the user's latest reviews first",
    "learned": "fitted on val users: history, vectors, heads",
}
NI_METRIC_LABELS = {"hit@1": "Hit@1", "hit@3": "Hit@3", "ndcg@5": "NDCG@5"}
COMPARED_METRICS = ("hit@1", "ndcg@5")  # hit@3 is 1 for everybody with 2-3 interests
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
_HEIGHT = 380
_PROFILE_COLOUR, _BASELINE_COLOURS = "#3b5bdb", ("#adb5bd", "#868e96", "#ced4da", "#495057")


def level_label(level: str) -> str:
    """'l1' → 'L1 categories'; unknown levels pass through."""
    return LEVEL_LABELS.get(level, level)


def is_profile_system(system: str) -> bool:
    """Whether ``system`` ranks from the version's profile ('profile', 'profile_…')."""
    return system == PROFILE or system.startswith(f"{PROFILE}_")


def level_tables(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One table per level, in ``LEVELS`` order: the systems measured at that level.

    Args:
        summary: ``next_interest_summary`` (level, system, n_users, hit@1, hit@3, ndcg@5).

    Returns:
        level -> columns System, Users, Hit@1, Hit@3, NDCG@5, How it ranks
        (``SYSTEM_NOTES``; empty for a system without one); profile-based systems first
        (``is_profile_system``), then the others in the summary's order.
    """
    tables = {}
    present = list(dict.fromkeys(summary["level"])) if len(summary) else []
    for level in [*(lv for lv in LEVELS if lv in present),
                  *(lv for lv in present if lv not in LEVELS)]:
        rows = summary[summary["level"] == level]
        first = rows["system"].map(is_profile_system).to_numpy()
        ordered = pd.concat([rows[first], rows[~first]])
        table = ordered[["system", "n_users", *METRICS]].rename(
            columns={"system": "System", "n_users": "Users", **NI_METRIC_LABELS})
        table["How it ranks"] = table["System"].map(SYSTEM_NOTES).fillna("")
        tables[level] = table.reset_index(drop=True)
    return tables


def highlight_profile(table: pd.DataFrame) -> pd.io.formats.style.Styler:
    """``table`` (a ``level_tables`` value) styled: profile-based rows bold on a tint."""
    def row_style(row: pd.Series) -> list[str]:
        own = is_profile_system(str(row["System"]))
        return [("font-weight: bold; background-color: rgba(59, 91, 219, 0.12)" if own
                 else "") for _ in row]

    return table.style.apply(row_style, axis=1).format(
        {label: "{:.3f}" for label in NI_METRIC_LABELS.values() if label in table.columns})


def levels_figure(summary: pd.DataFrame, metric: str = "hit@1") -> go.Figure:
    """Grouped bars: ``metric`` per level (x), one bar per system; profile in colour, the
    baselines in greys."""
    label = NI_METRIC_LABELS.get(metric, metric)
    title = f"Next interest: {label} per granularity"
    if summary.empty or metric not in summary.columns:
        return empty_figure(title, "No next-interest metrics", _HEIGHT)
    tables = level_tables(summary)
    systems = list(dict.fromkeys(s for t in tables.values() for s in t["System"]))
    fig = go.Figure()
    greys = iter(_BASELINE_COLOURS * len(systems))
    for system in systems:
        levels = [lv for lv, t in tables.items() if system in set(t["System"])]
        rows = [tables[lv].set_index("System").loc[system] for lv in levels]
        fig.add_trace(go.Bar(
            x=[level_label(lv) for lv in levels], y=[r[label] for r in rows], name=system,
            marker={"color": _PROFILE_COLOUR if is_profile_system(system) else next(greys)},
            customdata=[int(r["Users"]) for r in rows],
            hovertemplate=f"%{{x}} · {system}: {label} %{{y:.3f}} "
            "(%{customdata:,} users)<extra></extra>"))
    fig.update_yaxes(range=[0, 1.02], title=f"{label} (mean over users)")
    fig.update_layout(title=title, margin=_MARGIN, height=_HEIGHT, barmode="group",
                      legend={"orientation": "h", "y": -0.2, "x": 0})
    return fig


def compared_systems(a: NextInterestResult, b: NextInterestResult, level: str) -> list[str]:
    """The systems of ``level`` measured in both results worth pairing: the profile-based
    ones (``is_profile_system``) always, and any other whose per-user metrics differ between
    the two versions (one that reads the version's vectors or heads). The baselines that
    read train activity only give the same numbers under every version and are left out.
    Profile-based systems first, then the others in ``a``'s order.
    """
    both = [s for lv, s in a.per_user if lv == level and (lv, s) in b.per_user]
    kept = [s for s in both if is_profile_system(s)
            or not a.per_user[(level, s)].equals(b.per_user[(level, s)])]
    return sorted(kept, key=lambda s: not is_profile_system(s))


def paired_next_interest(
    a: NextInterestResult, b: NextInterestResult,
    metrics: Sequence[str] = COMPARED_METRICS,
) -> list[tuple[str, str, PairedResult]]:
    """(level, system, paired result of B against A) for every level measured in both, every
    ``compared_systems`` system, and every metric (``compare_next_interest``)."""
    pairs = []
    for level in a.levels():
        for system in compared_systems(a, b, level):
            pairs.extend((level, system, compare_next_interest(a, b, level, system, m))
                         for m in metrics)
    return pairs


def paired_table(pairs: Sequence[tuple[str, str, PairedResult]]) -> pd.DataFrame:
    """The paired results for people: Level, System, Metric, Users, Mean A, Mean B,
    Δ (B − A), 95% CI (text), p-value (text), Verdict (the core's ``metric_verdict``)."""
    rows = [{
        "Level": level_label(level), "System": system,
        "Metric": NI_METRIC_LABELS.get(r.metric, r.metric), "Users": r.n_users,
        "Mean A": r.mean_a, "Mean B": r.mean_b, "Δ (B − A)": r.diff,
        "95% CI": (f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]" if math.isfinite(r.ci_low)
                   else "—"),
        "p-value": format_p(r.p_value), "Verdict": metric_verdict(r),
    } for level, system, r in pairs]
    columns = ["Level", "System", "Metric", "Users", "Mean A", "Mean B", "Δ (B − A)",
               "95% CI", "p-value", "Verdict"]
    return pd.DataFrame(rows, columns=columns)


def paired_verdicts(pairs: Sequence[tuple[str, str, PairedResult]], version_a: str,
                    version_b: str) -> list[str]:
    """One sentence per significant difference of the profile ('B (v2) puts the next L1
    category first more often than A (base): Hit@1 +0.050, p < 0.001'); none when
    nothing is clear."""
    sentences = []
    for level, system, r in pairs:
        outcome = metric_verdict(r)
        if outcome not in (B_BETTER, B_WORSE):
            continue
        word = "better" if outcome == B_BETTER else "worse"
        p = format_p(r.p_value)
        sentences.append(
            f"B ({version_b}) is significantly {word} than A ({version_a}) at "
            f"{level_label(level).lower()} ({system}, "
            f"{NI_METRIC_LABELS.get(r.metric, r.metric)}): Δ {r.diff:+.4f}, 95% CI "
            f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}], p {p if p.startswith('<') else '= ' + p}, "
            f"{r.n_users:,} users.")
    return sentences


def summary_stamp(summary: pd.DataFrame) -> tuple:
    """A hashable fingerprint of a ``next_interest_summary`` (changes when the stored
    metrics do): the key of the background task that reads them."""
    return tuple(tuple(row) for row in summary.itertuples(index=False))
