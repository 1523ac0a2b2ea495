"""Training examples per task, built from a dataset snapshot (train and val rows only).

Pure pandas/numpy: no torch, so it is quick to test. Leakage guard: every example for
fine-tuning comes from ``split == 'train'`` rows; validation examples use ``val`` rows for
their labels/targets and train rows for context (a user's history, an item's text).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mgi_core.config import TrainConfig

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass
class ClassificationSet:
    """Texts with per-task integer labels (IGNORE where a label is missing)."""

    texts: list[str]
    labels: dict[str, np.ndarray]  # task -> (n,)

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class PairSet:
    """(anchor, positive) text pairs for the in-batch contrastive ``match`` task."""

    anchors: list[str]
    positives: list[str]

    def __len__(self) -> int:
        return len(self.anchors)


@dataclass
class TaskData:
    """Everything the trainer needs; ``tasks`` are the ones the data supports."""

    tasks: list[str]
    vocab: dict[str, list[str]]  # category tasks: label names in index order
    train: ClassificationSet
    val: ClassificationSet
    train_pairs: PairSet
    val_pairs: PairSet
    class_counts: dict[str, np.ndarray] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def _subcategory(df: pd.DataFrame) -> pd.Series:
    """L3 where present, else L2 (the finest level up to three)."""
    l3 = df["l3"] if "l3" in df else pd.Series(None, index=df.index, dtype=object)
    l2 = df["l2"] if "l2" in df else pd.Series(None, index=df.index, dtype=object)
    return l3.where(l3.notna(), l2)


def _item_reviews(train: pd.DataFrame) -> dict[str, list[tuple[str, str]]]:
    """item_id -> [(text, user_id)] of its train reviews."""
    out: dict[str, list[tuple[str, str]]] = {}
    for item, text, user in zip(train["item_id"], train["text"], train["user_id"], strict=True):
        out.setdefault(item, []).append((str(text), user))
    return out


def _pairs(history: pd.DataFrame, targets: pd.DataFrame,
           item_reviews: dict[str, list[tuple[str, str]]], like: float,
           rng: np.random.Generator) -> PairSet:
    """Pairs (the user's latest earlier liked review, another user's review of the target).

    ``history``: train rows with their position in time (``order``). ``targets``: the liked
    rows to predict. The positive is a train review of the target item by another user, so
    the pair teaches "history → next item", never the target review itself.
    """
    anchors, positives = [], []
    liked = history[history["rating"] >= like]
    by_user = {u: g for u, g in liked.groupby("user_id", sort=False)}
    for row in targets.itertuples(index=False):
        hist = by_user.get(row.user_id)
        if hist is None:
            continue
        earlier = hist[hist["order"] < row.order]
        others = [t for t, u in item_reviews.get(row.item_id, []) if u != row.user_id]
        if earlier.empty or not others:
            continue
        anchors.append(str(earlier.iloc[-1]["text"]))
        positives.append(others[int(rng.integers(len(others)))])
    return PairSet(anchors, positives)


def build_task_data(snapshot: pd.DataFrame, config: TrainConfig) -> TaskData:
    """Examples for every requested task the data supports (others skipped with a notice).

    ``snapshot`` columns: review_id, user_id, item_id, text, rating, ts, row_number, split,
    l1, l2, l3. Rows of the ``test`` split are dropped here whatever the caller passed.
    """
    rng = np.random.default_rng(config.seed)
    df = snapshot[snapshot["split"].isin(["train", "val"])].copy()
    df["sub"] = _subcategory(df)
    df = df.sort_values(["user_id", "ts", "row_number"], na_position="first", kind="stable")
    df["order"] = np.arange(len(df))
    train_all = df[df["split"] == "train"]
    val = df[df["split"] == "val"]
    train = train_all
    if config.max_train_reviews is not None and len(train) > config.max_train_reviews:
        keep = rng.choice(len(train), size=config.max_train_reviews, replace=False)
        train = train.iloc[np.sort(keep)]
    if len(val) > config.eval_max_reviews:
        keep = rng.choice(len(val), size=config.eval_max_reviews, replace=False)
        val = val.iloc[np.sort(keep)]

    tasks: list[str] = []
    notices: list[str] = []
    vocab: dict[str, list[str]] = {}
    train_labels: dict[str, np.ndarray] = {}
    val_labels: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    like = config.like_threshold
    for task in config.tasks:
        if task == "overall":
            y = (train["rating"] >= like).to_numpy().astype(np.int64)
            if y.min(initial=1) == y.max(initial=0):
                notices.append("overall skipped: every training review is on one side of "
                               f"the like threshold ({like}).")
                continue
            train_labels[task] = y
            val_labels[task] = (val["rating"] >= like).to_numpy().astype(np.int64)
            counts[task] = np.bincount(y, minlength=2)
        elif task in ("category", "subcategory"):
            column = "l1" if task == "category" else "sub"
            values = train[column] if column in train else pd.Series(dtype=object)
            names = sorted(v for v in values.dropna().unique())
            if len(names) < 2:
                notices.append(f"{task} skipped: the data has fewer than 2 "
                               f"{'L1' if task == 'category' else 'L2/L3'} categories.")
                continue
            index = {n: i for i, n in enumerate(names)}
            vocab[task] = names
            train_labels[task] = values.map(index).fillna(IGNORE).to_numpy().astype(np.int64)
            val_labels[task] = (
                val[column].map(index).fillna(IGNORE).to_numpy().astype(np.int64)
            )
            known = train_labels[task][train_labels[task] != IGNORE]
            counts[task] = np.bincount(known, minlength=len(names))
        elif task == "match":
            tasks.append(task)  # decided below, once pairs exist
            continue
        tasks.append(task)

    train_pairs = val_pairs = PairSet([], [])
    if "match" in tasks:
        reviews = _item_reviews(train_all)
        liked_train = train[train["rating"] >= like]
        train_pairs = _pairs(train_all, liked_train, reviews, like, rng)
        val_pairs = _pairs(train_all, val[val["rating"] >= like], reviews, like, rng)
        if len(train_pairs) < 2:
            tasks.remove("match")
            notices.append("match skipped: too few users with an earlier liked review "
                           "followed by another liked item.")
    for note in notices:
        log.info(note)
    return TaskData(
        tasks=tasks, vocab=vocab,
        train=ClassificationSet(list(train["text"].astype(str)), train_labels),
        val=ClassificationSet(list(val["text"].astype(str)), val_labels),
        train_pairs=train_pairs, val_pairs=val_pairs, class_counts=counts, notices=notices,
    )
