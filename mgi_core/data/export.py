"""A dataset (and a version's vectors) as folders of Parquet for other engines.

``python -m mgi_core export --dataset D [--version V] --to URI`` writes ``URI/reviews/``
(the training snapshot's columns: ids, text, rating, time, split, item title and category
levels) and, with a version, ``URI/review_embeddings/`` and ``URI/item_embeddings/``
(``embedding`` a fixed-size float list, ``FLOAT[d]`` to DuckDB). DuckDB (a glob over a
folder's ``*.parquet``), Ray Data, pandas / pyarrow and the trainer's snapshot reader all
read them. ``URI`` is a folder or an object
store location (``s3://…``, ``gs://…``) where credentials are configured
(``mgi_core.data.lake``). Rows stream from DuckDB to the files in batches: memory holds one
batch, whatever the dataset's size.
"""

from __future__ import annotations

from mgi_core.data import lake
from mgi_core.store import Store
from mgi_core.store.datasets import get_dataset, review_batches
from mgi_core.store.embeddings import embedding_dim, vector_batches

ROWS_PER_FILE = 250_000


def export_dataset(store: Store, dataset: str, uri: str, version: str | None = None,
                   rows_per_file: int = ROWS_PER_FILE) -> dict[str, int]:
    """Write ``dataset`` (and ``version``'s vectors on it) under ``uri``; return the rows
    written per folder. A folder that already holds Parquet is refused before anything is
    written; a failure removes what this call wrote.

    Raises:
        DatasetNotFoundError: no such dataset.
        ModelVersionNotFound: ``version`` has no vectors for ``dataset``.
        ConfigError: an unusable location, or one that already holds Parquet files.
    """
    get_dataset(store, dataset)
    sources = {"reviews": lambda: review_batches(store, dataset)}
    if version is not None:
        embedding_dim(store, version, dataset)  # raises before anything is written
        sources["review_embeddings"] = lambda: vector_batches(store, version, dataset,
                                                              "reviews")
        sources["item_embeddings"] = lambda: vector_batches(store, version, dataset, "items")
    sinks = {name: lake.ParquetSink(lake.join(uri, name), rows_per_file) for name in sources}
    try:
        for name, batches in sources.items():
            for batch in batches():
                sinks[name].write(batch)
            sinks[name].close()
    except BaseException:
        for sink in sinks.values():
            sink.abort()
        raise
    return {name: sink.rows for name, sink in sinks.items()}
