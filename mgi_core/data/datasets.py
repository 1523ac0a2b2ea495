"""The dataset registry, as the domain code uses it: look a dataset up, list them.

The rows live in ``mgi_core.store.datasets``; the Data page's aggregate views are in
``mgi_core.store.queries.datasets``; deleting a dataset is ``mgi_core.jobs.deletion``
(it must know the running jobs).
"""

from __future__ import annotations

from mgi_core.store.datasets import DATASET_COLUMNS, dataset_names, get_dataset, list_datasets
from mgi_core.store.embeddings import vector_tables

__all__ = ["DATASET_COLUMNS", "dataset_names", "get_dataset", "list_datasets", "vector_tables"]
