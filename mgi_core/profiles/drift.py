"""Interest drift: a user's profile as of a past date, and how it moved since.

``profile_as_of`` builds the profile a user had on a date: ``build_user_profiles`` over the
user's *train* reviews written up to the end of that day (reviews without a time are left
out: nothing says they came before), with the version's stored review vectors and head
probabilities. The model is the same on both sides; only the reviews move, so a change is
the user's, not the encoder's. Nothing is stored.

``drift`` compares that profile with the current one (every train review, built the same
way, so equal to the stored profile under the same settings) per granularity: the overall
vector's cosine, L1 and L2 shares and affinities, and fine interests matched by centroid
cosine. Profiles are cumulative (the current one still holds the old reviews), so a
category the user left shows as falling, and a fine interest the new reviews absorbed as
faded.

Keywords use the frequencies of all the dataset's train reviews (``train_corpus``), as the
stored profiles do. That is a full pass over the train texts: a caller asking for several
users or dates (the Profiles page) computes it once and passes it as ``corpus``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from mgi_core.config import ProfileConfig
from mgi_core.data.datasets import get_dataset
from mgi_core.errors import ConfigError, MgiError, UnknownUserError
from mgi_core.profiles.builder import UserProfiles, build_user_profiles
from mgi_core.profiles.keywords import CorpusFrequencies
from mgi_core.profiles.service import (
    dataset_profile_config,
    head_probabilities,
    load_train_embeddings,
    train_corpus,
)
from mgi_core.store import Store
from mgi_core.store import drift as drift_store
from mgi_core.store.versions import get_version

log = logging.getLogger(__name__)

MATCH_THRESHOLD = 0.8  # centroid cosine at or above which two fine interests are the same one
STEADY = 0.005  # a share change smaller than this (half a percentage point) is "steady"


def parse_date(value: date | datetime | str) -> date:
    """A calendar date from a ``date``, a ``datetime`` (its day) or ``'YYYY-MM-DD'``.

    Raises:
        ConfigError: a string that is not a date in that form.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(
            f"{value!r} is not a date: give it as YYYY-MM-DD, e.g. 2023-06-30."
        ) from None


def _end_of(day: date) -> datetime:
    """The first instant after ``day``: reviews before it were written on or before ``day``."""
    return datetime.combine(day + timedelta(days=1), time())


def require_dates(store: Store, dataset: str) -> drift_store.DatasetTimes:
    """The dataset's time span; raises MgiError when its reviews have no dates."""
    get_dataset(store, dataset)
    times = drift_store.dataset_times(store, dataset)
    if not times.has_timestamp:
        raise MgiError(
            f"Dataset {dataset!r} has no review timestamps, and drift needs dates. Ingest "
            "the file again with its timestamp column mapped."
        )
    if not times.dated:
        raise MgiError(
            f"The timestamps of dataset {dataset!r} are small numbers that only order the "
            "reviews, not dates, and drift needs dates. Ingest a file whose timestamps are "
            "dates (unix time or YYYY-MM-DD)."
        )
    return times


@dataclass
class _UserTrain:
    """One user's train reviews (time order as stored: review_id), vectors and head
    probabilities, row-aligned."""

    reviews: pd.DataFrame
    vectors: np.ndarray  # (n, d)
    probs: dict[str, tuple[list[str], np.ndarray]]

    def up_to(self, before: datetime | None) -> _UserTrain:
        if before is None:
            return self
        keep = (self.reviews["ts"].notna() & (self.reviews["ts"] < before)).to_numpy()
        return _UserTrain(self.reviews[keep].reset_index(drop=True), self.vectors[keep],
                          {t: (labels, p[keep]) for t, (labels, p) in self.probs.items()})


def _user_train(store: Store, dataset: str, version: str, user_id: str) -> _UserTrain:
    users = (user_id, user_id)
    reviews, vectors = load_train_embeddings(store, dataset, version, users)
    heads = get_version(store, version).get("heads") or {}
    probs = head_probabilities(store, version, dataset, reviews["review_id"].to_numpy(), heads,
                               users)
    return _UserTrain(reviews, vectors, probs)


def _build(train: _UserTrain, version: str, dataset: str, config: ProfileConfig,
           corpus: CorpusFrequencies) -> UserProfiles:
    return build_user_profiles(train.reviews, train.vectors, config, train.probs, version,
                               dataset, corpus=corpus)


def _as_plain_data(built: UserProfiles, reviews: pd.DataFrame, user_id: str) -> dict[str, Any]:
    """One user's built profile in the shape of ``service.user_profile``, in its order."""
    rows = built.rows.to_dict("records")
    texts = dict(zip(reviews["review_id"].astype(int), reviews["text"].astype(str),
                     strict=True))
    overall = next(r for r in rows if r["level"] == "overall")

    def cats(level: str) -> list[dict[str, Any]]:
        found = sorted((r for r in rows if r["level"] == level),
                       key=lambda r: (-r["affinity"], r["key"]))
        return [{"key": r["key"], "n_reviews": int(r["n_reviews"]), "share": float(r["share"]),
                 "sentiment": float(r["sentiment"]), "head_prob": _number(r["head_prob"]),
                 "affinity": float(r["affinity"]), "category": r["key"]} for r in found]

    interests = sorted((r for r in rows if r["level"] == "interest"),
                       key=lambda r: (-r["n_reviews"], r["key"]))
    return {
        "user_id": user_id, "version": built.version, "dataset": built.dataset,
        "cold": bool(overall["cold"]), "n_train_reviews": int(overall["n_reviews"]),
        "mean_sentiment": float(overall["sentiment"]), "l1": cats("l1"), "l2": cats("l2"),
        "interests": [
            {"interest": int(r["key"]), "n_reviews": int(r["n_reviews"]),
             "share": float(r["share"]), "sentiment": float(r["sentiment"]),
             "keywords": [str(k) for k in r["keywords"] or []],
             "representative_reviews": [{"review_id": int(i), "text": texts.get(int(i), "")}
                                        for i in (r["review_ids"] or [])]}
            for r in interests
        ],
    }


def _number(value: Any) -> float | None:
    """A float, or None for a missing value (None or NaN in a built frame)."""
    return None if value is None or pd.isna(value) else float(value)


def _vectors_by_key(built: UserProfiles, level: str) -> dict[str, np.ndarray]:
    rows, vectors = built.vectors_of(level)
    return {str(k): v for k, v in zip(rows["key"], vectors, strict=True)}


def _before_first(user_id: str, day: date, span: drift_store.UserTrainSpan) -> MgiError:
    if span.first is None:
        return MgiError(f"User {user_id!r} has no dated train review, so there is no profile "
                        f"as of {day.isoformat()}.")
    return MgiError(
        f"User {user_id!r} has no train review on or before {day.isoformat()}: their first "
        f"is from {span.first.date().isoformat()}. Pick that date or a later one."
    )


def _unknown_user(user_id: str, dataset: str) -> UnknownUserError:
    return UnknownUserError(
        f"User {user_id!r} has no training reviews in dataset {dataset!r}. Check the id "
        "(the Profiles page lists users), or pick another dataset."
    )


def profile_as_of(
    store: Store, dataset: str, version: str, user_id: str, as_of: date | datetime | str,
    corpus: CorpusFrequencies | None = None,
) -> dict[str, Any]:
    """The user's profile as it was at the end of ``as_of``, as plain data (the shape of
    ``service.user_profile``), built in memory from their train reviews up to that day.

    Args:
        corpus: the dataset's ``train_corpus`` when the caller has it (computing it is a
            full pass over the train texts); computed here when None.

    Raises:
        MgiError: the dataset has no dates; the user has no train review on or before
            ``as_of`` (the message gives their first review's date).
        UnknownUserError: the user has no train review at all.
        ConfigError: ``as_of`` is not a date.
    """
    *_, then = _train_then(store, dataset, version, user_id, as_of)
    corpus = corpus if corpus is not None else train_corpus(store, dataset)
    built = _build(then, version, dataset, dataset_profile_config(store, dataset), corpus)
    return _as_plain_data(built, then.reviews, user_id)


def _train_then(store: Store, dataset: str, version: str, user_id: str, as_of: object):
    """(the day, the user's train span, all their train reviews, those up to the end of the
    day), after the checks both views make: dates, a known user, a review by then."""
    day = parse_date(as_of)
    require_dates(store, dataset)
    span = drift_store.user_train_span(store, dataset, user_id)
    if not span.n_reviews:
        raise _unknown_user(user_id, dataset)
    train = _user_train(store, dataset, version, user_id)
    then = train.up_to(_end_of(day))
    if then.reviews.empty:
        raise _before_first(user_id, day, span)
    return day, span, train, then


# ------------------------------------------------------------------------ drift


def share_change(then: float | None, now: float | None, steady: float = STEADY) -> str:
    """How a category's share moved: 'new' (absent then), 'gone' (absent now), 'rose',
    'fell', or 'steady' (changed by less than ``steady``)."""
    if then is None and now is None:
        raise ValueError("a category absent both then and now has no change")
    if then is None:
        return "new"
    if now is None:
        return "gone"
    if now - then >= steady:
        return "rose"
    if then - now >= steady:
        return "fell"
    return "steady"


@dataclass(frozen=True)
class CategoryDrift:
    """One L1 or L2 category then and now (None: not in that profile)."""

    category: str
    change: str  # new | gone | rose | fell | steady (by share)
    share_then: float | None
    share_now: float | None
    affinity_then: float | None
    affinity_now: float | None
    n_then: int
    n_now: int

    @property
    def share_delta(self) -> float:
        return (self.share_now or 0.0) - (self.share_then or 0.0)


@dataclass(frozen=True)
class InterestDrift:
    """A fine interest then and now: 'persisted' (matched, with its centroid cosine),
    'appeared' (no interest then matches it) or 'faded' (no interest now matches it)."""

    status: str
    interest_then: int | None
    interest_now: int | None
    similarity: float | None
    n_then: int
    n_now: int
    keywords_then: list[str]
    keywords_now: list[str]

    @property
    def keywords_added(self) -> list[str]:
        return [k for k in self.keywords_now if k not in self.keywords_then]

    @property
    def keywords_dropped(self) -> list[str]:
        return [k for k in self.keywords_then if k not in self.keywords_now]


@dataclass(frozen=True)
class Drift:
    """How one user's profile moved from ``as_of`` to now, per granularity."""

    user_id: str
    dataset: str
    version: str
    as_of: date
    first_review: date | None
    last_review: date | None
    n_reviews_then: int
    n_reviews_now: int
    overall_similarity: float  # cosine of the overall vectors then and now
    l1: list[CategoryDrift]  # largest share change first
    l2: list[CategoryDrift]
    interests: list[InterestDrift]  # persisted (most similar first), appeared, faded
    match_threshold: float
    then: dict[str, Any] = field(repr=False)  # profile_as_of(as_of)
    now: dict[str, Any] = field(repr=False)  # the current profile, same shape

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (dates as YYYY-MM-DD)."""
        out = asdict(self)
        for key in ("as_of", "first_review", "last_review"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        for cat in (*out["l1"], *out["l2"]):
            cat["share_delta"] = (cat["share_now"] or 0.0) - (cat["share_then"] or 0.0)
        for got, interest in zip(out["interests"], self.interests, strict=True):
            got["keywords_added"] = interest.keywords_added
            got["keywords_dropped"] = interest.keywords_dropped
        return out

    def lines(self) -> list[str]:
        """The drift as text lines (the CLI prints them)."""
        out = [f"drift of {self.user_id} from {self.as_of.isoformat()} to now "
               f"({self.n_reviews_then} -> {self.n_reviews_now} train reviews): overall "
               f"similarity {self.overall_similarity:.2f}"]
        for level, cats in (("l1", self.l1), ("l2", self.l2)):
            for c in cats:
                if c.change == "steady":
                    continue
                out.append(f"  {level} {c.category:<40} {c.change:<6} share "
                           f"{c.share_then or 0:.0%} -> {c.share_now or 0:.0%}")
        for i in self.interests:
            words = ", ".join(i.keywords_now or i.keywords_then)
            sim = f" (similarity {i.similarity:.2f})" if i.similarity is not None else ""
            extra = ""
            if i.status == "persisted" and (i.keywords_added or i.keywords_dropped):
                extra = (f"; +{', '.join(i.keywords_added) or '-'} "
                         f"/ -{', '.join(i.keywords_dropped) or '-'}")
            out.append(f"  interest {i.status:<9} {words}{sim}{extra}")
        return out


def _category_drift(then: dict[str, Any], now: dict[str, Any], level: str) -> list[CategoryDrift]:
    before = {c["key"]: c for c in then[level]}
    after = {c["key"]: c for c in now[level]}
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        out.append(CategoryDrift(
            category=key,
            change=share_change(a and a["share"], b and b["share"]),
            share_then=a and float(a["share"]), share_now=b and float(b["share"]),
            affinity_then=a and float(a["affinity"]), affinity_now=b and float(b["affinity"]),
            n_then=int(a["n_reviews"]) if a else 0, n_now=int(b["n_reviews"]) if b else 0,
        ))
    return sorted(out, key=lambda c: (-abs(c.share_delta), c.category))


def match_interests(then: np.ndarray, now: np.ndarray,
                    threshold: float = MATCH_THRESHOLD) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of centroids ``then`` (m, d) to ``now`` (n, d), unit
    vectors: repeatedly the most similar unmatched pair, while its cosine is at least
    ``threshold``. Returns (row of then, row of now, cosine), most similar first."""
    if not len(then) or not len(now):
        return []
    sims = then @ now.T  # (m, n)
    pairs = []
    free = np.ones_like(sims, dtype=bool)
    while free.any():
        masked = np.where(free, sims, -np.inf)
        i, j = np.unravel_index(int(np.argmax(masked)), sims.shape)
        if masked[i, j] < threshold:
            break
        pairs.append((int(i), int(j), float(sims[i, j])))
        free[i, :] = False
        free[:, j] = False
    return pairs


def _interest_drift(then: dict[str, Any], now: dict[str, Any], then_built: UserProfiles,
                    now_built: UserProfiles, threshold: float) -> list[InterestDrift]:
    a, b = _vectors_by_key(then_built, "interest"), _vectors_by_key(now_built, "interest")
    before = {str(i["interest"]): i for i in then["interests"]}
    after = {str(i["interest"]): i for i in now["interests"]}
    keys_a, keys_b = list(before), list(after)
    mat_a = np.stack([a[k] for k in keys_a]) if keys_a else np.zeros((0, 1), np.float32)
    mat_b = np.stack([b[k] for k in keys_b]) if keys_b else np.zeros((0, 1), np.float32)
    out, seen_a, seen_b = [], set(), set()
    for i, j, sim in match_interests(mat_a, mat_b, threshold):
        x, y = before[keys_a[i]], after[keys_b[j]]
        seen_a.add(keys_a[i])
        seen_b.add(keys_b[j])
        out.append(InterestDrift("persisted", x["interest"], y["interest"], sim, x["n_reviews"],
                                 y["n_reviews"], x["keywords"], y["keywords"]))
    out += [InterestDrift("appeared", None, y["interest"], None, 0, y["n_reviews"], [],
                          y["keywords"]) for k, y in after.items() if k not in seen_b]
    out += [InterestDrift("faded", x["interest"], None, None, x["n_reviews"], 0,
                          x["keywords"], []) for k, x in before.items() if k not in seen_a]
    return out


def drift(
    store: Store, dataset: str, version: str, user_id: str, as_of: date | datetime | str,
    corpus: CorpusFrequencies | None = None, threshold: float = MATCH_THRESHOLD,
) -> Drift:
    """How ``user_id``'s profile moved between the end of ``as_of`` and now.

    Both profiles are built in memory the same way (``profile_as_of``; "now" from every
    train review), with the dataset's half-life when set. ``corpus``: the dataset's
    ``train_corpus`` when the caller has it (a full pass otherwise).

    Raises:
        MgiError: the dataset has no dates; the user has no train review on or before
            ``as_of`` (the message gives their first review's date).
        UnknownUserError: the user has no train review at all.
        ConfigError: ``as_of`` is not a date.
    """
    day, span, train, earlier = _train_then(store, dataset, version, user_id, as_of)
    corpus = corpus if corpus is not None else train_corpus(store, dataset)
    config = dataset_profile_config(store, dataset)
    then_built = _build(earlier, version, dataset, config, corpus)
    now_built = _build(train, version, dataset, config, corpus)
    then = _as_plain_data(then_built, earlier.reviews, user_id)
    now = _as_plain_data(now_built, train.reviews, user_id)
    overall = float(_vectors_by_key(then_built, "overall")[""]
                    @ _vectors_by_key(now_built, "overall")[""])
    return Drift(
        user_id=user_id, dataset=dataset, version=version, as_of=day,
        first_review=span.first.date() if span.first else None,
        last_review=span.last.date() if span.last else None,
        n_reviews_then=then["n_train_reviews"], n_reviews_now=now["n_train_reviews"],
        overall_similarity=overall,
        l1=_category_drift(then, now, "l1"), l2=_category_drift(then, now, "l2"),
        interests=_interest_drift(then, now, then_built, now_built, threshold),
        match_threshold=threshold, then=then, now=now,
    )
