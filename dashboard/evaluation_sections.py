"""Page sections over stored evaluations: next interest per granularity, the ablation, and
the button that runs missing work in the background.

The tables and figures come from ``dashboard.next_interest_view`` and
``dashboard.ablation_view`` (pure); the work from ``dashboard.ranking_tasks`` (background
tasks), so a page never blocks on a bootstrap or an evaluation.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard import ablation_view, pending
from dashboard import next_interest_view as ni_view
from dashboard import ranking_tasks as tasks
from dashboard.background import Task
from dashboard.resources import show_error
from dashboard.text import plain
from mgi_core.errors import MgiError
from mgi_core.evaluation.ablation import ABLATION_SCORER_NAMES, missing_scorers
from mgi_core.ranking.fusion import FULL_SCORER, REFERENCE_SCORER
from mgi_core.store import Store
from mgi_core.store.next_interest import next_interest_summary
from mgi_core.store.queries import evaluations as queries

NI_CAPTION = (
    "Next interest asks, per granularity, whether a user's train profile puts the category "
    "of their next (held-out) item first: does the profile's top category match the "
    "category of the user's next item? Hit@1: the share of users for whom it does; Hit@3: "
    "within the top 3; NDCG@5: credit by the rank of the right category (1 first, 0.63 "
    "second, …). The baselines order categories by popularity over all users (popular), by "
    "the user's own review counts (frequent) or by their latest review (recent). Fine "
    "interests are the clusters of a user's train reviews (users with at least two); the "
    "right one is the cluster closest to the next item.")


def next_interest_command(dataset: str, version: str) -> str:
    """The CLI that computes and stores next interest (with the evaluation)."""
    return f"python -m mgi_core evaluate --dataset {dataset} --version {version}"


def ablation_command(dataset: str, version: str) -> str:
    """The CLI that runs and stores the ablation."""
    return f"python -m mgi_core ablate --dataset {dataset} --version {version}"


def code(text: str) -> str:
    """``text`` as inline code in markdown; as escaped plain text when it holds a backtick
    or a line break (user data could close the code span)."""
    return f"`{text}`" if "`" not in text and "\n" not in text else plain(text)


def background_button(task: Task | None, start: Callable[[], object], what: str, label: str,
                      key: str, help: str, primary: bool = False) -> None:
    """Draw where background work stands, or a button that starts it.

    A running ``task`` shows its status (``pending``; the page reruns when it ends); one that
    failed shows its error, then the button again so it can be retried.
    """
    if task is not None and not task.done:
        pending.ready(task, what)
        return
    if task is not None and task.error is not None:
        if not isinstance(task.error, MgiError):
            task.result()  # a bug is shown as one, never hidden
        show_error(task.error)
    if st.button(label, key=key, help=help, icon=":material/play_arrow:",
                 type="primary" if primary else "secondary"):
        start()
        st.rerun()


# ------------------------------------------------------------------------ next interest


def show_next_interest(store: Store, dataset: str, version: str, key: str) -> None:
    """The Metrics page's section: per level, the systems' next-interest metrics for
    ``version``, the profile highlighted; or how to compute them."""
    summary = next_interest_summary(store, version, dataset)
    if summary.empty:
        st.info(plain(f"No next-interest metrics for {version} on {dataset} yet. They are "
                      "computed with every evaluation from this dashboard, or run ")
                + code(next_interest_command(dataset, version)) + ".",
                icon=":material/info:")
        background_button(
            tasks.next_interest_run(store, dataset, version), lambda: tasks.next_interest_run(
                store, dataset, version, start=True),
            "The next-interest metrics", "Measure next interest", f"{key}_run",
            f"Rank every test user's categories and interests with {version}'s profiles and "
            "the baselines, and store the per-user metrics.")
        return
    st.caption(NI_CAPTION)
    tables = ni_view.level_tables(summary)
    number = st.column_config.NumberColumn
    for level, table in tables.items():
        users = int(table["Users"].max()) if len(table) else 0
        st.markdown(f"**{ni_view.level_label(level)}** · {users:,} users · "
                    f"{ni_view.LEVEL_QUESTIONS.get(level, '')}")
        st.dataframe(ni_view.highlight_profile(table), hide_index=True,
                     key=f"{key}_{level}", column_config={
                         "How it ranks": st.column_config.TextColumn(width="large"),
                         "Users": number(format="localized", width="small"),
                         "System": st.column_config.TextColumn(width="small"),
                         **{m: number(format="%.3f", width="small")
                            for m in ni_view.NI_METRIC_LABELS.values()}})
    st.plotly_chart(ni_view.levels_figure(summary), key=f"{key}_bars")


def show_next_interest_comparison(store: Store, dataset: str, version_a: str,
                                  version_b: str) -> None:
    """The Compare page's section: next interest of A's version against B's, paired over
    users at each level, for the systems that depend on the version."""
    if version_a == version_b:
        st.caption(f"A and B use the same version ({version_a}): next interest depends on the "
                   "version's profiles only, so there is nothing to compare. Pick another "
                   "version for A or B.")
        return
    summaries = [next_interest_summary(store, v, dataset) for v in (version_a, version_b)]
    missing = [v for v, s in zip((version_a, version_b), summaries, strict=True) if s.empty]
    for version in missing:
        st.info(plain(f"No next-interest metrics for {version} on {dataset} yet: run ")
                + code(next_interest_command(dataset, version)) + ", or measure them here.",
                icon=":material/info:")
        background_button(
            tasks.next_interest_run(store, dataset, version),
            lambda v=version: tasks.next_interest_run(store, dataset, v, start=True),
            f"The next-interest metrics of {version}", f"Measure next interest for {version}",
            f"compare_next_interest_run_{version}",
            f"Rank every test user's categories and interests with {version}'s profiles and "
            "store the per-user metrics.")
    if missing:
        return
    stamps = tuple(ni_view.summary_stamp(s) for s in summaries)
    loaded = tasks.next_interest_results(store, dataset, (version_a, version_b), stamps)
    if not pending.ready(loaded, "The next-interest comparison"):
        return
    pairs = ni_view.paired_next_interest(*loaded.result())
    st.caption(f"A = {version_a}, B = {version_b}: does each version's profile put the "
               "category (or fine interest) of the user's next item first? Paired over the "
               "users both measured; Δ = B − A, 95% bootstrap CI, Wilcoxon p. The profile is "
               "compared at every level, and any other system whose numbers differ between "
               "the versions; the baselines that read train activity only (popularity, the "
               "user's history) are the same under every version and are left out.")
    if not pairs:
        st.caption("No level with a profile-based system measured under both versions.")
        return
    number = st.column_config.NumberColumn
    st.dataframe(ni_view.paired_table(pairs), hide_index=True, key="compare_next_interest",
                 height="content", column_config={"Users": number(format="localized"),
                                **{c: number(format="%.4f") for c in ("Mean A", "Mean B")},
                                "Δ (B − A)": number(format="%+.4f")})
    verdicts = ni_view.paired_verdicts(pairs, version_a, version_b)
    st.markdown("\n".join(f"- {plain(v)}" for v in verdicts) if verdicts else plain(
        f"No clear difference between B ({version_b}) and A ({version_a}) on next interest "
        "at any level (a verdict needs the CI to exclude 0 and p < 0.05)."))


# ------------------------------------------------------------------------ ablation


def show_ablation(store: Store, dataset: str, version: str) -> None:
    """The Compare page's ablation of ``version``: Δ of each variant against the full system,
    or the command and a button that runs it."""
    run = tasks.ablation_run(store, dataset, version)
    if missing_scorers(store, dataset, version) or (run is not None and not run.done):
        st.info(plain(f"No ablation of {version} on {dataset} yet. It evaluates the full "
                      f"system ({FULL_SCORER}), {REFERENCE_SCORER} and one variant without "
                      "each feature group. Run ") + code(ablation_command(dataset, version))
                + ", or run it here.",
                icon=":material/info:")
        background_button(run, lambda: tasks.ablation_run(store, dataset, version, start=True),
                          "The ablation", "Run the ablation", "compare_ablation_run",
                          f"Evaluate {version} with {len(ABLATION_SCORER_NAMES)} scorers (the "
                          "full system, "
                          "the reference and each variant) and store the per-user metrics; "
                          "at size this takes as long as that many evaluations.")
        return
    stamps = tuple(queries.evaluation_stamp(store, dataset, f"{version}:{s}")
                   for s in ABLATION_SCORER_NAMES)
    report = tasks.ablation(store, dataset, version, stamps)
    if not pending.ready(report, "The ablation"):
        return
    frame = report.result().to_frame()
    st.caption(f"Each variant is {FULL_SCORER} of {version} with one feature group taken out "
               f"(its fusion weights learned again); {REFERENCE_SCORER} keeps CF and the "
               "overall content match only. Δ = variant − full per user, averaged: below 0, "
               "the group helps the full system. Bars: 95% bootstrap CI; p: Wilcoxon.")
    for metric in ablation_view.chart_metrics(frame):
        st.plotly_chart(ablation_view.ablation_figure(frame, metric, f"{version}:{FULL_SCORER}"),
                        key=f"compare_ablation_{metric}")
    number = st.column_config.NumberColumn
    with st.expander("Every metric of the ablation"):
        st.dataframe(ablation_view.ablation_table(frame), hide_index=True,
                     key="compare_ablation_table",
                     column_config={"Users": number(format="localized"),
                                    **{c: number(format="%.4f") for c in ("Full", "Without")},
                                    "Δ (variant − full)": number(format="%+.4f")})
