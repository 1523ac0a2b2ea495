"""Forget a user: every row of theirs in one transaction, then the copies on disk.

``forget(store, user_id, dataset)`` is what ``python -m mgi_core forget`` and the Profiles
page's "Forget this user" run. In one transaction (``store.forget.forget_user``): the user's
reviews, rejected rows, review vectors of every version, head probabilities, profiles and
their vectors, per-user evaluation and next-interest metrics, and any other table the
catalogue shows holding the user's id or review ids; the item vectors and counts derived
from the reviews are recomputed without them; each fine-tuned version whose training data
held them is recorded as "trained with forgotten data" (``forgotten_data``, counts only).
After the commit, the run folders' Parquet files (snapshots, vectors; ``forget_files``) are
rewritten without the user's rows, and the database file is checkpointed.

What stays: aggregates over all users (stored evaluation means, fusion weights, the counts
of past appends and redactions) and the model versions themselves (retrain to be rid of
what a version learned from the user). Copies made outside MGI (the original review file,
folders written by ``export --to``, downloads from the pages) are not tracked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from mgi_core.data.privacy import salt_source, stored_user_id
from mgi_core.errors import JobError, UnknownUserError
from mgi_core.jobs.forget_files import UserFootprint, clean_run_folders, run_folders
from mgi_core.jobs.manager import refresh_jobs, runs_root
from mgi_core.profiles.incremental import rank_keywords_again
from mgi_core.store import Store
from mgi_core.store import forget as forgetting
from mgi_core.store.datasets import dataset_names, get_dataset
from mgi_core.store.forget import ForgetResult, ForgottenVersion
from mgi_core.store.jobs import running_job_on_dataset
from mgi_core.store.profiles import drop_stale_profile_builds

log = logging.getLogger(__name__)

UNTRACKED = ("Copies made outside MGI are not tracked: the original review file, folders "
             "written by 'export --to' and files downloaded from the pages still hold the "
             "user's rows; remove them there.")


@dataclass(frozen=True)
class ForgetReport:
    """What a forget removed: rows per table, files, and the versions now "trained with
    forgotten data". No user id is kept in it."""

    datasets: tuple[str, ...]
    n_reviews: int
    deleted: dict[str, int]  # table -> rows deleted
    items_updated: int  # item vectors recomputed without the user's reviews
    items_removed: int  # items with no review left, removed from the catalogue
    item_vectors_removed: int  # item vectors with no train review left, deleted
    versions: tuple[ForgottenVersion, ...]
    files_rewritten: dict[str, int] = field(default_factory=dict)  # file -> rows removed
    files_removed: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "datasets": list(self.datasets), "reviews": self.n_reviews,
            "deleted": dict(self.deleted), "items_updated": self.items_updated,
            "items_removed": self.items_removed,
            "item_vectors_removed": self.item_vectors_removed,
            "trained_with_forgotten_data": [
                {"version": v.version, "dataset": v.dataset, "reviews": v.n_reviews}
                for v in self.versions],
            "files_rewritten": dict(self.files_rewritten),
            "files_removed": list(self.files_removed), "notices": list(self.notices),
        }

    def lines(self) -> list[str]:
        """The report in words, one line each (the CLI prints them)."""
        out = [f"Forgot {self.n_reviews:,} review(s) in {', '.join(self.datasets)}."]
        out += [f"  {n:>8,}  rows of {table}" for table, n in sorted(self.deleted.items())]
        if self.items_updated or self.item_vectors_removed or self.items_removed:
            out.append(f"  item vectors recomputed without them: {self.items_updated:,}; "
                       f"left with no train review (vector deleted): "
                       f"{self.item_vectors_removed:,}; items left with no review "
                       f"(removed): {self.items_removed:,}")
        out += [f"  {n:>8,}  rows removed from {path}"
                for path, n in sorted(self.files_rewritten.items())]
        out += [f"  removed {path}" for path in self.files_removed]
        if self.versions:
            out.append("Now trained with forgotten data (retrain them without it to be rid "
                       "of what they learned):")
            out += [f"  {v.version} on {v.dataset}: {v.n_reviews:,} of the user's reviews "
                    "were in its training snapshot" for v in self.versions]
        else:
            out.append("No fine-tuned version was trained with the user's reviews.")
        out += [f"note: {n}" for n in self.notices]
        return out


def stored_ids(store: Store, user_id: str, dataset: str) -> list[str]:
    """The forms ``user_id`` may have in ``dataset``: as given (the Profiles page passes the
    id as stored), and as the dataset stores the id a review file had
    (``privacy.stored_user_id``: the salted hash where the dataset hashes user ids).

    Raises:
        ConfigError: the dataset hashes user ids and no salt can be read.
    """
    if forgetting.dataset_hashing(store).get(dataset) is None:
        return list(dict.fromkeys([str(user_id), str(user_id).strip(" ")]))
    return list(dict.fromkeys([str(user_id), stored_user_id(store, dataset, str(user_id))]))


def find_user(store: Store, user_id: str, dataset: str | None = None) -> dict[str, int]:
    """dataset -> the user's number of reviews there, for every dataset (``dataset`` only,
    when given) holding a row of the user.

    Raises:
        DatasetNotFoundError: no dataset named ``dataset``.
        UnknownUserError: no row of the user there.
    """
    return {name: n for name, (_, n) in _locate(store, user_id, dataset).items()}


def _locate(store: Store, user_id: str,
            dataset: str | None) -> dict[str, tuple[list[str], int]]:
    """dataset -> (the user's id as stored there first, then its other forms; reviews)."""
    if not str(user_id).strip():
        raise UnknownUserError("No user id given: pass the id of the user to forget.")
    if dataset is not None:
        get_dataset(store, dataset)
    names = [dataset] if dataset is not None else dataset_names(store)
    found: dict[str, tuple[list[str], int]] = {}
    for name in sorted(names):
        forms = stored_ids(store, user_id, name)
        held = {f: forgetting.user_datasets(store.cursor(), [f], name).get(name)
                for f in forms}
        present = [f for f in forms if held[f] is not None]
        if present:
            stored = max(present, key=lambda f: held[f])  # the form the reviews have
            found[name] = ([stored, *(f for f in forms if f != stored)], held[stored])
    if not found:
        where = f"dataset {dataset!r}" if dataset is not None else "any dataset"
        hashed = [n for n in names if forgetting.dataset_hashing(store).get(n)]
        salt = (f" {', '.join(hashed)} store(s) salted hashes of user ids: the salt from "
                f"{salt_source()} must be the one they were ingested with." if hashed else "")
        raise UnknownUserError(
            f"No user {user_id!r} in {where}: nothing to forget. Check the id (the Profiles "
            f"page finds users by part of their id).{salt}")
    return found


def forget(store: Store, user_id: str, dataset: str | None = None) -> ForgetReport:
    """Remove every row of ``user_id`` in ``dataset`` (every dataset holding one when None)
    in one transaction, then the user's rows in the run folders' files.

    Raises:
        DatasetNotFoundError: no dataset named ``dataset``.
        UnknownUserError: the user has no row there.
        JobError: a job is running on one of those datasets (its results would bring the
            user's rows back), or a profile build has staged the user's profile.
    """
    refresh_jobs(store)  # a finished run is registered before, not after, the forget
    located = _locate(store, user_id, dataset)
    for name in located:
        running = running_job_on_dataset(store, name)
        if running is not None:
            raise JobError(
                f"A {running.kind} job ({running.version}) is running on dataset {name!r}: "
                "its results would bring the user's rows back. Wait for it to finish or "
                "cancel it on the Train page, then forget the user.")
    drop_stale_profile_builds(store)
    result = ForgetResult()
    with store.transaction() as tx:
        for name, (forms, _) in located.items():
            result.add(forgetting.forget_user(tx, forms[0], name, also=forms[1:]))
    log.info("forgot a user: %d review(s) in %s", len(result.review_ids),
             ", ".join(result.datasets))
    for name in result.datasets:  # the train corpus changed: keyword labels, as a rebuild
        rank_keywords_again(store, name)
    cleanup = clean_run_folders(
        run_folders(runs_root(store), forgetting.run_folders_of(store, list(located)),
                    list(located)),
        _footprints(located, result))
    notices = [f"Could not clean {failure}" for failure in cleanup.failed]
    if not forgetting.checkpoint(store):
        notices.append("The database file is written in full at its next checkpoint "
                       "(another transaction was active).")
    return ForgetReport(
        datasets=tuple(result.datasets), n_reviews=len(result.review_ids),
        deleted=dict(result.deleted), items_updated=result.items_updated,
        items_removed=result.items_removed,
        item_vectors_removed=result.item_vectors_removed,
        versions=tuple(result.versions), files_rewritten=dict(cleanup.rewritten),
        files_removed=tuple(cleanup.removed), notices=(*notices, UNTRACKED),
    )


def _footprints(located: dict[str, tuple[list[str], int]],
                result: ForgetResult) -> dict[str, UserFootprint]:
    """Per dataset: the user's id forms, former review ids and train items (for files)."""
    return {name: UserFootprint(frozenset(forms), frozenset(result.review_ids),
                                frozenset(result.train_items.get(name, ())))
            for name, (forms, _) in located.items()}
