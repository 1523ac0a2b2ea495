"""Incremental updates: a version's vectors and profiles after an append, without retraining.

An append (``data.append``) stores new reviews only. ``apply_update`` takes their vectors,
embedded with a version by the update job (``jobs.worker``, kind ``update``), and brings the
version's state on the dataset to what a full recompute would give:

- the new review vectors and head probabilities are added;
- every item whose train reviews changed (a new or a moved review: its count of train
  reviews differs from its vector's) gets its vector again: the normalised mean of its
  train review vectors, in review order, as ``jobs.worker.item_vectors_from_reviews``
  computes it (new items without a train review: their title vector, from the job);
- when the version has stored profiles of the dataset, the touched users' profiles are
  built again from all their train reviews (``build_user_profiles``, with the dataset's
  recency half-life: an append moves a user's latest review, so every weight of theirs
  decays anew) against the keyword corpus of all train reviews, and replace their rows.

A user the append did not touch keeps their vectors, shares and affinities; only their
keyword labels move, since c-TF-IDF ranks a user's words against the whole train corpus,
which the appended texts changed: they are ranked again from each interest's stored
reviews (``profile_interest_members``), without clustering anything again.

Only the touched users and their items are read, plus two streamed passes over the train
texts (the corpus frequencies, then every interest's texts for its labels). Everything is
written in one transaction (``store.embedding_updates.write_update``), and the result
equals a full rebuild, labels included (``tests/profiles/test_incremental.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mgi_core.profiles.builder import build_user_profiles
from mgi_core.profiles.keywords import CorpusFrequencies, ctfidf_keywords
from mgi_core.profiles.service import HEAD_TASKS, dataset_profile_config, train_corpus
from mgi_core.store import Store
from mgi_core.store import embedding_updates as updates
from mgi_core.store import profiles as profile_store
from mgi_core.store.embeddings import embedding_dim, item_means
from mgi_core.store.versions import get_version, list_versions

log = logging.getLogger(__name__)


@dataclass
class UpdateResult:
    """What one update did for (version, dataset)."""

    version: str
    dataset: str
    n_reviews: int  # review vectors added
    n_items: int  # item vectors written again
    n_users: int  # users whose profile was built again (0: no stored profiles)

    def summary(self) -> str:
        profiles = (f"the profiles of {self.n_users:,} users rebuilt" if self.n_users
                    else "no stored profiles to update (built on first use)")
        return (f"{self.n_reviews:,} new review vectors, {self.n_items:,} item vectors "
                f"updated, {profiles}.")


def current_version(store: Store, dataset: str) -> str | None:
    """The version an append updates by default: the newest ready version that has
    embedded ``dataset`` (a fine-tuned one before ``base``); None when none has."""
    versions = [v for v in list_versions(store, dataset=dataset, usable_only=True)]
    tuned = [v for v in versions if v["kind"] != "base"]
    pick = tuned[0] if tuned else (versions[0] if versions else None)
    return None if pick is None else str(pick["version"])


def versions_behind(store: Store, dataset: str) -> dict[str, int]:
    """version -> how many reviews of ``dataset`` it has not embedded (only those behind)."""
    return updates.sets_behind(store, dataset)


def _read_vectors(path: Path, id_column: str) -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(path)
    ids = table.column(id_column).to_numpy(zero_copy_only=False)
    if table.num_rows == 0:
        return ids, np.zeros((0, 0), np.float32)
    emb = table.column("embedding").combine_chunks()
    d = emb.type.list_size
    return ids, emb.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, d)


def _vectors_for(store: Store, version: str, dataset: str, d: int, review_ids: np.ndarray,
                 new: dict[int, np.ndarray]) -> np.ndarray:
    """(n, d) vectors of ``review_ids``: the new ones from ``new``, the rest stored."""
    stored_ids, stored = updates.stored_vectors_of(
        store, version, dataset, d, [int(r) for r in review_ids if int(r) not in new])
    position = {int(r): k for k, r in enumerate(stored_ids)}
    out = np.empty((len(review_ids), d), np.float32)
    for row, r in enumerate(review_ids):
        r = int(r)
        out[row] = new[r] if r in new else stored[position[r]]
    return out


def _item_vectors(store: Store, version: str, dataset: str, d: int, items: list[str],
                  new: dict[int, np.ndarray], cold: dict[str, np.ndarray]) -> pd.DataFrame:
    """item_id, n_train_reviews, vector of ``items`` (those with neither a train review nor
    a title vector in ``cold`` are left out: they keep what they have)."""
    review_ids, item_ids = updates.train_reviews_of_items(store, dataset, items)
    vectors = _vectors_for(store, version, dataset, d, review_ids, new)
    uniq, counts, means = item_means(item_ids, vectors)
    rows = [(str(i), int(n), v) for i, n, v in zip(uniq, counts, means, strict=True)]
    have = {r[0] for r in rows}
    rows += [(i, 0, v) for i, v in cold.items() if i not in have]
    return pd.DataFrame(rows, columns=["item_id", "n_train_reviews", "vector"])


def _head_probs(store: Store, version: str, dataset: str, review_ids: np.ndarray,
                heads: dict[str, list[str]], new_probs: dict[str, dict[int, list[float]]]
                ) -> dict[str, tuple[list[str], np.ndarray]]:
    stored = updates.stored_head_probs(store, version, dataset,
                                       [int(r) for r in review_ids])
    out = {}
    for task, labels in heads.items():
        if task not in HEAD_TASKS:
            continue
        by_id = {**stored.get(task, {}), **new_probs.get(task, {})}
        if not by_id:
            continue
        out[task] = (labels, np.array([by_id.get(int(r), [0.0] * len(labels))
                                       for r in review_ids], dtype=np.float32))
    return out


def ranked_keywords(store: Store, version: str, dataset: str, corpus: CorpusFrequencies,
                    n_keywords: int, skip: set[str] = frozenset()) -> pd.DataFrame:
    """user_id, interest, keywords of every stored fine interest (but those of ``skip``),
    ranked against ``corpus`` from the interest's reviews (``profile_interest_members``):
    c-TF-IDF weighs a user's words against the whole train corpus, so when it changes every
    user's labels are ranked again, as a full rebuild would rank them. One streamed pass
    over the texts; memory: one user's texts."""
    out: list[tuple[str, int, list[str]]] = []
    user, groups = None, {}

    def flush() -> None:
        if user is not None and user not in skip and groups:
            keys = sorted(groups)
            words = ctfidf_keywords([groups[k] for k in keys], corpus, n_keywords)
            out.extend((user, k, w) for k, w in zip(keys, words, strict=True))

    for batch in updates.interest_texts(store, version, dataset):
        for u, k, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(),
                              batch.column(2).to_pylist(), strict=True):
            if u != user:
                flush()
                user, groups = u, {}
            groups.setdefault(int(k), []).append(str(text))
    flush()
    return pd.DataFrame(out, columns=["user_id", "interest", "keywords"])


def rank_keywords_again(store: Store, dataset: str) -> int:
    """After the train corpus of ``dataset`` changed (a user forgotten), rank every stored
    interest's keywords again, for each version with stored profiles, each in one
    transaction. Returns the interests ranked."""
    config = dataset_profile_config(store, dataset)
    corpus = train_corpus(store, dataset)
    n = 0
    for version in profile_store.profile_versions(store, dataset):
        keywords = ranked_keywords(store, version, dataset, corpus, config.n_keywords)
        with store.transaction() as tx:
            updates.replace_keywords(tx, version, dataset, keywords)
        n += len(keywords)
    return n


def apply_update(store: Store, version: str, dataset: str, review_parquet: Path,
                 head_probs_parquet: Path | None = None,
                 cold_items_parquet: Path | None = None) -> UpdateResult:
    """Store the vectors of the reviews ``version`` had not embedded (``review_parquet``:
    review_id, embedding; head probabilities and title vectors of new items when given)
    and bring the items and profiles they touch up to date, in one transaction.

    Writing the same update twice changes nothing the second time.
    """
    d = embedding_dim(store, version, dataset)
    ids, vecs = _read_vectors(review_parquet, "review_id")
    new = {int(r): vecs[k] for k, r in enumerate(ids)}
    new_probs: dict[str, dict[int, list[float]]] = {}
    if head_probs_parquet is not None and Path(head_probs_parquet).exists():
        for row in pq.read_table(head_probs_parquet).to_pylist():
            new_probs.setdefault(row["task"], {})[int(row["review_id"])] = row["probs"]
    cold: dict[str, np.ndarray] = {}
    if cold_items_parquet is not None and Path(cold_items_parquet).exists():
        cold_ids, cold_vecs = _read_vectors(cold_items_parquet, "item_id")
        cold = {str(i): cold_vecs[k] for k, i in enumerate(cold_ids)}
    touched = updates.reviews_touched(store, dataset, [int(r) for r in ids])
    users = sorted(touched["user_id"].astype(str).unique())
    items = updates.items_whose_train_changed(
        store, version, dataset, d, sorted(set(touched["item_id"].astype(str))))
    items = sorted(set(items) | set(cold))
    item_frame = _item_vectors(store, version, dataset, d, items, new, cold)
    update = updates.VectorUpdate(review_parquet, head_probs_parquet
                                  if new_probs else None, item_frame)
    if users and profile_store.has_profiles(store, version, dataset):
        reviews = updates.train_reviews_of_users(store, dataset, users)
        review_ids = reviews["review_id"].to_numpy()
        vectors = _vectors_for(store, version, dataset, d, review_ids, new)
        heads = get_version(store, version).get("heads") or {}
        config = dataset_profile_config(store, dataset)
        corpus = train_corpus(store, dataset)
        profiles = build_user_profiles(
            reviews, vectors, config,
            _head_probs(store, version, dataset, review_ids, heads, new_probs),
            version, dataset, corpus=corpus)
        update.members = profiles.members
        update.keywords = ranked_keywords(store, version, dataset, corpus, config.n_keywords,
                                          skip=set(users))
        update.users = [str(u) for u in profiles.rows["user_id"].unique()] if len(
            profiles.rows) else []
        update.users = sorted(set(update.users) | set(users))
        update.profile_rows, update.profile_vectors = profiles.rows, profiles.vectors
    added = updates.write_update(store, version, dataset, d, update)
    result = UpdateResult(version, dataset, added, len(item_frame),
                          len(users) if update.users is not None else 0)
    log.info("updated %s on %s: %d review vectors, %d items, %d profiles", version, dataset,
             result.n_reviews, result.n_items, result.n_users)
    return result
