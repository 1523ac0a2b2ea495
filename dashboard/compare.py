"""The Compare page's helpers: system pickers, evaluate-on-demand, the report's table and figures.

A *system* is a model version with a scorer, named ``"version:scorer"`` as in
``mgi_core.evaluation.compare``. The pure helpers (``systems_note``, ``users_text``,
``comparison_table``, ``forest_figure``, ``category_figure``, ``user_scatter_figure``,
``changed_label``) need no Streamlit. Widget state lives under ``compare_*`` keys. The words
that judge B against A (``metric_verdict``, ``ComparisonReport.verdict``) come from the core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import pending
from dashboard import ranking_tasks as tasks
from dashboard.background import Task
from dashboard.charts import empty_figure, plain_label
from dashboard.evaluation_sections import background_button
from dashboard.export import to_csv_bytes
from dashboard.text import plain
from mgi_core.evaluation.compare import (
    B_BETTER,
    B_WORSE,
    ComparisonReport,
    format_p,
    metric_label,
    metric_verdict,
    parse_spec,
)
from mgi_core.ranking.fusion import FULL_SCORER, REFERENCE_SCORER, SCORERS
from mgi_core.store import Store
from mgi_core.store.queries import evaluations as queries
from mgi_core.store.queries.profiles import data_stamp
from mgi_core.store.versions import BASE_VERSION

DEFAULT_A = f"{BASE_VERSION}:{REFERENCE_SCORER}"  # CF + overall content, base encoder
DEFAULT_B_SCORER = FULL_SCORER  # mgi_hybrid: every feature group
MAX_CATEGORIES = 20  # categories drawn in the per-category bars (the largest)
CHANGED_USERS = 5  # users offered in "changed most"; their lists are ranked on demand
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
_HEIGHT = 380
_UP, _DOWN, _FLAT = "#2b8a3e", "#c92a2a", "#868e96"


# ---------------------------------------------------------------- pure helpers


def default_systems(versions: Sequence[str]) -> tuple[str, str]:
    """(A, B): base with the reference scorer (CF + overall content, ``REFERENCE_SCORER``),
    and the newest fine-tuned version with mgi_hybrid (the full system).

    ``versions``: the selectable versions, newest first after base (``list_versions``
    order). Without a fine-tuned version B is base with mgi_hybrid.
    """
    tuned = [v for v in versions if v != BASE_VERSION]
    return DEFAULT_A, f"{tuned[0] if tuned else BASE_VERSION}:{DEFAULT_B_SCORER}"


def systems_note(a: str, b: str, defaults: tuple[str, str]) -> str | None:
    """A caption when A and B differ in both encoder version and scorer, else None.

    Such a Δ mixes what the encoder learned with how the scorer ranks; the default pair
    (``default_systems``) is one, on purpose.
    """
    (version_a, scorer_a), (version_b, scorer_b) = parse_spec(a), parse_spec(b)
    if version_a == version_b or scorer_a == scorer_b:
        return None
    if (a, b) == tuple(defaults):
        return ("The default pits the full system (the newest fine-tuned version with "
                f"{DEFAULT_B_SCORER}: CF, overall content and every finer granularity) against "
                f"the strongest system without granularity ({REFERENCE_SCORER}: CF and the "
                "overall content match, on the pre-trained encoder): it changes the encoder "
                "and the scorer at once. Set the same scorer on both sides to compare "
                "encoders only, or the same version to see what granularity adds.")
    return ("A and B differ in both the version and the scorer, so Δ mixes the two. Set the "
            "same scorer on both sides to compare encoders only, or the same version to "
            "compare scorers only.")


def users_text(n: int) -> str:
    """'1 user', '4 users', '1,234 users'."""
    return f"{n:,} user" + ("" if n == 1 else "s")


def comparison_table(report: ComparisonReport) -> pd.DataFrame:
    """The report as a table for people: one row per metric, B − A with its CI and p.

    Columns: Metric, Users, Mean A, Mean B, Δ (B − A), Δ % (of A; NaN when A is 0),
    95% CI (text), p-value (text), Verdict (the core's ``metric_verdict``).
    """
    rows = []
    for r in report.results:
        relative = r.diff / r.mean_a * 100 if r.mean_a else float("nan")
        rows.append({
            "Metric": metric_label(r.metric), "Users": r.n_users, "Mean A": r.mean_a,
            "Mean B": r.mean_b, "Δ (B − A)": r.diff, "Δ %": relative,
            "95% CI": f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]", "p-value": format_p(r.p_value),
            "Verdict": metric_verdict(r),
        })
    return pd.DataFrame(rows)


def comparison_csv_frame(report: ComparisonReport) -> pd.DataFrame:
    """The download: raw numbers, one row per metric, with the dataset and both systems."""
    frame = pd.DataFrame([vars(r) for r in report.results])
    frame.insert(0, "b", report.b)
    frame.insert(0, "a", report.a)
    frame.insert(0, "split", report.split)
    frame.insert(0, "dataset", report.dataset)
    return frame


def _layout(fig: go.Figure, title: str, x: str, y: str, legend: bool = False) -> go.Figure:
    fig.update_layout(title=title, margin=_MARGIN, height=_HEIGHT, showlegend=legend,
                      legend={"orientation": "h", "y": -0.2, "x": 0})
    fig.update_xaxes(title=x)
    fig.update_yaxes(title=y)
    return fig



def forest_figure(report: ComparisonReport) -> go.Figure:
    """Δ (B − A) per metric with its 95% CI as error bars; a line marks no difference.

    Metrics run top to bottom in report order, coloured by ``metric_verdict``: green B better,
    red B worse, grey no clear difference.
    """
    title = "Δ (B − A) with 95% CI"
    results = [r for r in report.results if math.isfinite(r.diff)]
    if not results:
        return empty_figure(title, "No metric to compare", _HEIGHT)
    colours = [{B_BETTER: _UP, B_WORSE: _DOWN}.get(metric_verdict(r), _FLAT) for r in results]
    fig = go.Figure(go.Scatter(
        x=[r.diff for r in results], y=[metric_label(r.metric) for r in results],
        mode="markers", marker={"size": 10, "color": colours},
        error_x={"type": "data", "symmetric": False,
                 "array": [r.ci_high - r.diff for r in results],
                 "arrayminus": [r.diff - r.ci_low for r in results]},
        customdata=[[r.ci_low, r.ci_high, format_p(r.p_value)] for r in results],
        hovertemplate="%{y}: Δ %{x:+.4f} [%{customdata[0]:+.4f}, %{customdata[1]:+.4f}], "
        "p %{customdata[2]}<extra></extra>",
    ))
    fig.add_vline(x=0, line={"color": "#495057", "width": 1})
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, x="B − A (per user, averaged)", y="")


def category_figure(per_category: pd.DataFrame) -> go.Figure:
    """Mean NDCG@10 of A and B per L1 category of the held-out item (grouped bars).

    ``per_category``: ``report.per_category`` (group, n_users, mean_a, mean_b, diff),
    largest groups first; the first ``MAX_CATEGORIES`` are drawn, largest on top.
    """
    title = "NDCG@10 per category of the held-out item"
    if per_category.empty:
        return empty_figure(title, "No categories", _HEIGHT)
    shown = per_category.head(MAX_CATEGORIES)
    labels = [plain_label(g) for g in shown["group"]]
    extra = shown[["n_users", "diff"]].to_numpy()
    fig = go.Figure()
    for column, name in (("mean_a", "A"), ("mean_b", "B")):
        fig.add_trace(go.Bar(
            y=labels, x=shown[column], name=name, orientation="h", customdata=extra,
            hovertemplate=f"%{{y}} · {name}: %{{x:.3f}} (%{{customdata[0]:,}} users, "
            "Δ %{customdata[1]:+.3f})<extra></extra>",
        ))
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig = _layout(fig, title, x="mean NDCG@10", y="", legend=True)
    fig.update_layout(height=max(_HEIGHT, 100 + 44 * len(shown)))
    return fig


def user_scatter_figure(points: pd.DataFrame) -> go.Figure:
    """Users' NDCG@10 under A (x) and B (y), one marker per pair of values sized by its
    users; above the diagonal B ranked the held-out item better.

    ``points``: columns ``a``, ``b``, ``n_users``, ``users`` (``queries.user_metric_points``).
    """
    title = "NDCG@10 per user"
    if points.empty:
        return empty_figure(title, "No users evaluated by both systems", _HEIGHT)
    n = points["n_users"].to_numpy()
    examples = [plain_label(", ".join(users) + (", …" if k > len(users) else ""))
                for users, k in zip(points["users"], n, strict=True)]
    fig = go.Figure(go.Scatter(
        x=points["a"], y=points["b"], mode="markers",
        marker={"size": 6 + 30 * np.sqrt(n / n.max()), "opacity": 0.6, "color": "#3b5bdb",
                "line": {"width": 0}},
        customdata=np.column_stack([n, examples]),
        hovertemplate="A %{x:.3f} → B %{y:.3f}: %{customdata[0]} users "
        "(%{customdata[1]})<extra></extra>",
    ))
    fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1,
                  line={"dash": "dash", "color": "#868e96", "width": 1})
    fig.update_xaxes(range=[-0.05, 1.05], constrain="domain")
    fig.update_yaxes(range=[-0.05, 1.05], scaleanchor="x", scaleratio=1)
    fig = _layout(fig, title, x="A", y="B")
    fig.update_layout(height=460)
    return fig


def changed_label(row: pd.Series) -> str:
    """One line per user in the 'changed most' picker: 'U7 · NDCG@10 0.000 → 1.000'."""
    return f"{row['user_id']} · NDCG@10 {row['a']:.3f} → {row['b']:.3f} ({row['diff']:+.3f})"


def mark_lists(a: pd.DataFrame, b: pd.DataFrame, held_out: str | None) -> tuple[
        pd.DataFrame, pd.DataFrame]:
    """Both top-k lists with two flags: in the other list, and the user's held-out item."""
    def flag(own: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
        return own.assign(
            **{"in both": own["item_id"].isin(other["item_id"]),
               "held out": own["item_id"] == held_out})
    return flag(a, b), flag(b, a)


# ---------------------------------------------------------------- Streamlit helpers


def show_report(report: ComparisonReport) -> None:
    """The comparison: the metrics table, the verdict, the download, forest and category
    plots."""
    n_users = max((r.n_users for r in report.results), default=0)
    for note in report.notes:
        st.warning(plain(note), icon=":material/history:")
    st.caption(f"A = {report.a}, B = {report.b}, on the {report.split} split of "
               f"{report.dataset}: {n_users:,} users, each with one held-out item ranked "
               "against every item they have not reviewed. Δ is the mean per-user difference "
               "B − A; 95% CI: bootstrap over users; p: two-sided Wilcoxon signed-rank test.")
    number = st.column_config.NumberColumn
    st.dataframe(comparison_table(report), hide_index=True, key="compare_table",
                 column_config={"Users": number(format="localized"),
                                **{c: number(format="%.4f") for c in ("Mean A", "Mean B")},
                                "Δ (B − A)": number(format="%+.4f"),
                                "Δ %": number(format="%+.1f%%")})
    st.markdown(plain(report.verdict()))
    name = f"compare_{report.dataset}_{report.a}_vs_{report.b}.csv".replace(":", "-")
    st.download_button("Download the comparison (CSV)",
                       to_csv_bytes(comparison_csv_frame(report)), file_name=name,
                       mime="text/csv", icon=":material/download:", key="compare_download")
    left, right = st.columns(2)
    left.plotly_chart(forest_figure(report), key="compare_forest")
    right.plotly_chart(category_figure(report.per_category), key="compare_categories")


def list_tasks(store: Store, dataset: str, system: str, users: Sequence[str],
               stamp: str | None) -> tuple[Task, Task]:
    """(the system's fitted recommender, ``Recommender.top_k(users)`` on it): the lists the
    evaluation measured, ranked in the background once per stored evaluation (``stamp``)."""
    version, scorer = parse_spec(system)
    key = (str(store.path), dataset, version, data_stamp(store, dataset, version))
    return (tasks.recommender(store, key, scorer),
            tasks.top_k_lists(store, key, scorer, users, stamp))


def pick_system(side: str, versions: Sequence[str], default: str) -> str:
    """'Version X' and 'Scorer X' select boxes; returns 'version:scorer'."""
    state = st.session_state
    version_key, scorer_key = f"compare_version_{side.lower()}", f"compare_scorer_{side.lower()}"
    default_version, default_scorer = parse_spec(default)
    if state.get(version_key) not in versions:
        state[version_key] = default_version
    if state.get(scorer_key) not in SCORERS:
        state[scorer_key] = default_scorer
    version = st.selectbox(f"Version {side}", versions, key=version_key)
    scorer = st.selectbox(f"Scorer {side}", list(SCORERS), key=scorer_key,
                          help="How items are ranked: one signal, or a fusion of signals "
                          "with weights learned on the validation split.")
    return f"{version}:{scorer}"


def ready(store: Store, dataset: str, systems: Sequence[str]) -> bool:
    """Whether both systems have stored evaluations of common users; else says what is missing.

    A version without embeddings for the dataset points to the Train page; systems that
    can be evaluated get one 'Evaluate' button, which evaluates them and measures their
    versions' next interest in the background (the page reruns when it ends).
    """
    missing = []
    for name, system in zip("AB", systems, strict=True):
        version, _ = parse_spec(system)
        if not queries.has_embeddings(store, version, dataset):
            what = ("Embed it with the pre-trained encoder: the Train page's 'Embed with the "
                    "pre-trained encoder (base)' button" if version == BASE_VERSION else
                    "Pick another version, or train one on this dataset")
            st.warning(plain(f"{name}: version {version} has no embeddings for {dataset}, "
                             f"so it cannot rank its items. {what}."), icon=":material/warning:")
            st.page_link("app_pages/train.py", label="Go to the Train page",
                         icon=":material/model_training:")
        elif queries.evaluation_stamp(store, dataset, system) is None:
            st.info(plain(f"{name}: {system} has no stored evaluation on {dataset} yet."),
                    icon=":material/info:")
            if system not in missing:
                missing.append(system)
    if missing:
        background_button(
            tasks.evaluation(store, dataset, missing),
            lambda: tasks.evaluation(store, dataset, missing, start=True),
            "The evaluation", "Evaluate", "compare_evaluate", primary=True,
            help=f"Rank every test user's held-out item with {' and '.join(missing)}, "
            "measure next interest for their versions, and store the per-user metrics.")
    if any(queries.evaluation_stamp(store, dataset, s) is None for s in systems):
        return False
    if not sum(queries.win_loss(store, dataset, *systems).values()):
        st.info(f"No user of {dataset} was ranked by both systems. The evaluation holds out "
                "the latest review of each user with at least 3 reviews; the dataset has no "
                "such user.", icon=":material/info:")
        return False
    return True


def show_changed_users(store: Store, dataset: str, a: str, b: str,
                       stamps: tuple[str, str]) -> None:
    """The users whose NDCG@10 moved most, and one's top-10 under A and B side by side."""
    changed = queries.most_changed_users(store, dataset, a, b, n=CHANGED_USERS)
    if changed.empty:
        st.caption("No users evaluated by both systems.")
        return
    labels = {row["user_id"]: changed_label(row) for _, row in changed.iterrows()}
    if st.session_state.get("compare_user") not in labels:  # other systems: other users
        st.session_state["compare_user"] = next(iter(labels))
    user = st.selectbox("User", list(labels), format_func=labels.get, key="compare_user")
    row = changed.set_index("user_id").loc[user]
    users = tuple(changed["user_id"])
    (fit_a, top_a), (fit_b, top_b) = (list_tasks(store, dataset, system, users, stamp)
                                      for system, stamp in zip((a, b), stamps, strict=True))
    what = "The top-10 lists"
    if not (pending.ready(fit_a, what) and pending.ready(fit_b, what)
            and pending.ready(top_a, what, wait_s=pending.QUICK_S)
            and pending.ready(top_b, what, wait_s=pending.QUICK_S)):
        return
    lists_a, lists_b = top_a.result().get(user), top_b.result().get(user)
    if lists_a is None or lists_b is None:
        st.text(f"{user} is no longer in {dataset}.")
        return
    held = row["item_id"] if isinstance(row["item_id"], str) else None
    title = row["title"] if isinstance(row["title"], str) else "no title"
    marked = mark_lists(lists_a, lists_b, held)
    st.text(f"Held-out item: {held} ({title}) · {int(marked[0]['in both'].sum())} of "
            f"{len(lists_a)} items in both top-{len(lists_a)} lists.")
    config = {"rank": st.column_config.NumberColumn("#", width=40),
              "title": st.column_config.TextColumn("title", width=250),
              **{flag: st.column_config.CheckboxColumn(flag, width=78)
                 for flag in ("in both", "held out")}}
    for column, side, system, frame in zip(st.columns(2), "AB", (a, b), marked, strict=True):
        column.caption(plain(f"{side}: {system}"))
        column.dataframe(frame, hide_index=True, column_config=config,
                         column_order=["rank", "title", "in both", "held out"])
