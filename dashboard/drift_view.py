"""Interest drift on the pages: one user's profile then and now (Profiles page), and every
user's category shares by month (Data page).

The user's drift is ``mgi_core.profiles.drift.drift``, run in the background
(``dashboard.background``): first the dataset's keyword frequencies (a full pass over the
train texts, kept per dataset and data stamp), then the user's two profiles (one user's
reviews: quick). The section draws nothing until asked (a toggle), so the page costs no
more when drift is not wanted.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, pending
from dashboard.background import registry
from mgi_core.profiles.drift import Drift, drift
from mgi_core.profiles.service import train_corpus
from mgi_core.store import Store
from mgi_core.store.drift import DatasetTimes, user_train_span
from mgi_core.store.queries import datasets as queries

_corpora = registry("keyword frequencies", 4)
_drifts = registry("interest drift", 64)
TOP_CATEGORIES = 8  # named categories in the monthly shares; the rest are summed
SHOWN_IN_CHART = 10  # categories per then/now chart (largest change first; the table has all)
NO_DATES = ("Drift needs review dates: {why} (ingest a file with a timestamp column mapped "
            "to see how interests moved).")


def _why_undated(times: DatasetTimes) -> str:
    if not times.has_timestamp:
        return "this dataset has no timestamps"
    return "this dataset's timestamps are small numbers that only order the reviews"


def show_category_shares(store: Store, dataset: str) -> None:
    """Data page: each month's reviews by L1 category, every user, every split."""
    st.subheader("Interest drift: category shares by month")
    times = queries.dataset_times(store, dataset)
    if not times.dated:
        st.caption(NO_DATES.format(why=_why_undated(times)))
        return
    shares = queries.category_shares_by_month(store, dataset, "l1", TOP_CATEGORIES)
    if shares["month"].nunique() < 2:
        st.caption("Every dated review falls in one month: there is no drift to show.")
        return
    rest = (f" The {TOP_CATEGORIES} largest categories by name, the rest summed as "
            f"{queries.OTHER_CATEGORIES}." if shares["is_other"].any() else "")
    st.caption("Each month's reviews by L1 category, all users and every stored review "
               f"(train, validation and test: this describes the data).{rest}")
    st.plotly_chart(charts.category_shares_figure(shares))


def category_drift_frame(result: Drift, level: str) -> pd.DataFrame:
    """One row per category of ``level`` ('l1' or 'l2'): change, shares (0 where absent),
    affinities (None where absent)."""
    return pd.DataFrame(
        [{"category": c.category, "change": c.change, "share then": c.share_then or 0.0,
          "share now": c.share_now or 0.0, "share change": c.share_delta,
          "affinity then": c.affinity_then, "affinity now": c.affinity_now,
          "reviews then": c.n_then, "reviews now": c.n_now}
         for c in getattr(result, level)],
        columns=["category", "change", "share then", "share now", "share change",
                 "affinity then", "affinity now", "reviews then", "reviews now"],
    )


def interest_drift_frame(result: Drift) -> pd.DataFrame:
    """One row per fine interest: persisted (with similarity and the keywords it gained and
    lost), appeared or faded."""
    def number(n: int | None) -> int | None:
        return None if n is None else n + 1  # numbered from 1, as the profile's table

    return pd.DataFrame(
        [{"status": i.status, "interest then": number(i.interest_then),
          "interest now": number(i.interest_now), "similarity": i.similarity,
          "reviews then": i.n_then, "reviews now": i.n_now,
          "keywords then": ", ".join(i.keywords_then), "keywords now": ", ".join(i.keywords_now),
          "keywords added": ", ".join(i.keywords_added) if i.status == "persisted" else "",
          "keywords dropped": ", ".join(i.keywords_dropped) if i.status == "persisted" else ""}
         for i in result.interests],
        columns=["status", "interest then", "interest now", "similarity", "reviews then",
                 "reviews now", "keywords then", "keywords now", "keywords added",
                 "keywords dropped"],
    )


def _pick_date(dataset: str, user: str, first: date, last: date) -> date:
    """The date input, on the midpoint of the user's train reviews until another is picked
    (and again for another user)."""
    state = st.session_state
    if state.get("prof_drift_of") != (dataset, user):  # another user: their own midpoint
        state.pop("prof_drift_date", None)
        state["prof_drift_of"] = (dataset, user)
    return st.date_input("Profile as of (end of day)", value=first + (last - first) / 2,
                         min_value=first, max_value=last, key="prof_drift_date",
                         help=f"Between the user's first ({first}) and last ({last}) train "
                         "review.")


def show_drift(key: tuple[Store, str, str, str, str], user: str) -> None:
    """Profiles page: the user's profile as of a date against now, per granularity.

    ``key``: ``profile_cache.key(...)``, (store, db, dataset, version, data stamp).
    """
    store, db, dataset, version, stamp = key
    st.subheader("How interests moved")
    times = queries.dataset_times(store, dataset)
    if not times.dated:
        st.caption(NO_DATES.format(why=_why_undated(times)))
        return
    span = user_train_span(store, dataset, user)
    if span.n_dated < 2 or span.first.date() == span.last.date():
        st.caption("This user's dated train reviews are all from one day (or there is only "
                   "one): there is no earlier profile to compare with.")
        return
    st.caption("The profile built from the user's train reviews up to a date, with the same "
               "model, against the current one: which categories rose or fell and which "
               "fine interests appeared or faded.")
    if not st.toggle("Compare with an earlier date", key="prof_drift"):
        return
    day = _pick_date(dataset, user, span.first.date(), span.last.date())
    corpus = _corpora.start((db, dataset, stamp), f"Counting the keywords of {dataset}",
                            lambda: train_corpus(store, dataset))
    if not pending.ready(corpus, "The keyword frequencies", wait_s=pending.QUICK_S):
        return
    task = _drifts.start((db, dataset, version, stamp, user, day), f"Drift of {user}",
                         lambda: drift(store, dataset, version, user, day,
                                       corpus=corpus.result()))
    if pending.ready(task, "The drift", wait_s=2.0):
        _draw(task.result())


def _draw(result: Drift) -> None:
    a, b, c = st.columns(3)
    a.metric("Train reviews then → now", f"{result.n_reviews_then} → {result.n_reviews_now}",
             border=True)
    b.metric("Overall similarity", f"{result.overall_similarity:.2f}", border=True,
             help="Cosine of the overall interest vector then and now (1: unchanged).")
    c.metric("Fine interests then → now", f"{len(result.then['interests'])} → "
             f"{len(result.now['interests'])}", border=True)
    frames = {name: category_drift_frame(result, level)
              for level, name in (("l1", "L1"), ("l2", "L2"))}
    for column, (name, frame) in zip(st.columns(2), frames.items(), strict=True):
        column.plotly_chart(charts.share_then_now_figure(
            frame.head(SHOWN_IN_CHART), f"{name} shares then and now", result.as_of.isoformat()))
    st.caption("Shares of the user's train reviews then and now, the largest changes first; "
               "affinity = share × sentiment (blended with the category head when the version "
               "has one).")
    for frame in frames.values():
        st.dataframe(frame, hide_index=True, column_config=_SHARES)
    st.caption(f"Fine interests matched by centre (cosine at least {result.match_threshold:g}): "
               "persisted ones with their similarity and keyword changes, then those that "
               "appeared (no match then) and faded (no match now).")
    st.dataframe(interest_drift_frame(result), hide_index=True)


_SHARES: dict[str, Any] = {
    c: st.column_config.NumberColumn(c, format="percent")
    for c in ("share then", "share now", "share change")
}
