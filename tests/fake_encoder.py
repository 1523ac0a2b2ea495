"""A fake encoder: keyword one-hot vectors, registered as a model version in the store.

It makes profile and ranking numbers exact and needs no model: every review's embedding is
the normalised count vector of a fixed vocabulary in its text.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mgi_core.store import Store
from mgi_core.store.embeddings import load_embedding_set

# The demo's product words: a keyword fake encoder over them separates the planted interests.
DEMO_VOCAB = ["headphones", "speaker", "lens", "camera", "laptop", "keyboard", "coffee",
              "knife", "novel", "plot", "bike", "tent", "battery", "sound"]


def keyword_vectors(texts: list[str], vocab: list[str]) -> np.ndarray:
    index = {w: k for k, w in enumerate(vocab)}
    out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            if word in index:
                out[row, index[word]] += 1.0
    out[:, -1] += 1e-3  # no all-zero rows
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def register_fake_version(store: Store, dataset: str, vocab: list[str],
                          version: str = "fake") -> None:
    """Embed every review with keyword one-hots; item vectors = mean of train reviews."""
    reviews = store.cursor().execute(
        "SELECT review_id, item_id, text, split FROM reviews WHERE dataset = ? "
        "ORDER BY review_id", [dataset]).df()
    vecs = keyword_vectors(list(reviews["text"]), vocab)
    d = vecs.shape[1]
    train = reviews["split"].to_numpy() == "train"
    items, item_vecs, counts = [], [], []
    for item in sorted(reviews["item_id"].unique()):
        mask = train & (reviews["item_id"].to_numpy() == item)
        if mask.any():
            v = vecs[mask].mean(0)
            items.append(item)
            item_vecs.append(v / np.linalg.norm(v))
            counts.append(int(mask.sum()))
    tmp = Path(tempfile.mkdtemp())
    pq.write_table(pa.table({
        "review_id": pa.array(reviews["review_id"].astype("int64")),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), d),
    }), tmp / "r.parquet")
    pq.write_table(pa.table({
        "item_id": pa.array(items), "n_train_reviews": pa.array(counts, pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(np.stack(item_vecs).astype(np.float32).reshape(-1)), d),
    }), tmp / "i.parquet")
    with store.transaction() as tx:
        load_embedding_set(tx, version, dataset, d, tmp / "r.parquet", tmp / "i.parquet")
        tx.execute(
            "INSERT INTO model_versions (version, kind, dataset, base_model, config, "
            "library_versions, status, dim) VALUES (?, 'fine-tuned', ?, 'fake', '{}', ?, "
            "'ready', ?)",
            [version, dataset, json.dumps({"fake": True}), d],
        )


def add_search_and_ablation_rows(store, dataset: str, version: str) -> None:
    """A search study with one trial, a training ablation row, an append and a record of
    forgotten data of ``dataset`` (for the tests that check a dataset's rows are found in
    every table)."""
    cur = store.cursor()
    cur.execute("INSERT INTO search_studies (study, dataset, base_config, space, objective, "
                "direction) VALUES (?, ?, '{}', '{}', 'val/objective', 'minimize')",
                [f"s_{dataset}", dataset])
    cur.execute("INSERT INTO search_trials (study, dataset, trial, state, params, value) "
                "VALUES (?, ?, 0, 'complete', '{}', 1.0)", [f"s_{dataset}", dataset])
    cur.execute("INSERT INTO training_ablations (name, dataset, variant, version, overrides) "
                "VALUES (?, ?, 'reference', ?, '{}')", [f"a_{dataset}", dataset, version])
    cur.execute("INSERT INTO dataset_appends (dataset, seq, file_name, file_hash, "
                "first_review_id, last_review_id, n_reviews, n_rejected, n_users, "
                "n_new_users, n_moved) VALUES (?, 1, 'more.csv', 'h', 0, 0, 0, 0, 0, 0, 0)",
                [dataset])
    cur.execute("INSERT INTO forgotten_data (version, dataset, n_reviews) VALUES (?, ?, 1)",
                [version, dataset])
