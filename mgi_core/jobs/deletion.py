"""Deleting a dataset: a service above jobs (it refuses while a job runs on the dataset)."""

from __future__ import annotations

from mgi_core.errors import JobError
from mgi_core.jobs.manager import refresh_jobs
from mgi_core.store import Store
from mgi_core.store.datasets import get_dataset, purge_dataset
from mgi_core.store.jobs import running_job_on_dataset
from mgi_core.store.versions import retire_unembedded


def delete_dataset(store: Store, name: str) -> None:
    """Remove a dataset and everything derived from it, in one transaction.

    Gone: its reviews, items and rejected rows, every version's embeddings of it (review,
    item, head probabilities), the user profiles, evaluations, per-user metrics, fusion
    weights and finished job records made on it. Model versions *trained* on it keep their
    row and training log (the Train page still shows what was trained, and how). A ready
    one left with no embeddings of any dataset (a fine-tuned version is only embedded on
    its own training data) becomes ``retired``, with a message that says why, so
    ``get_version`` refuses it and ``list_versions(usable_only=True)`` leaves it out; and
    ``list_versions(store, dataset=name)`` offers only runs made after the dataset's current
    ingest, so a dataset added again under the same name starts clean. Other datasets, the
    ``base`` version and its embeddings of them are untouched. Run folders on disk stay.

    Raises:
        DatasetNotFoundError: no dataset of that name.
        JobError: a job is running on the dataset (its results would land on deleted data);
            wait for it or cancel it on the Train page first.
    """
    get_dataset(store, name)
    refresh_jobs(store)  # a job whose process has ended is not running any more
    running = running_job_on_dataset(store, name)
    if running is not None:
        raise JobError(
            f"A {running.kind} job ({running.version}) is running on dataset {name!r}. Wait "
            "for it to finish or cancel it on the Train page, then delete the dataset."
        )
    with store.transaction() as tx:
        purge_dataset(tx, name)
        retire_unembedded(tx, name)
